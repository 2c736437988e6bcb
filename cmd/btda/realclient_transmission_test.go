package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/btda/btda/discovery/metainfo"
)

func init() {
	// transmission 3.00 speaks uTP but cannot turn TCP off, so it joins only the encrypted swarm.
	registerRealClient(realClient{name: "transmission", ip: "127.0.0.21", encrypt: true, start: startTransmission})
}

// transmissionSpeedK is the unit of transmission-daemon's speed settings: transmission 3.00's
// daemon counts speeds in kB/s of 1000 bytes (daemon.c, SPEED_K).
const transmissionSpeedK = 1000

// startTransmission starts Debian's transmission-daemon 3.00 as a leecher (requiring encryption
// when o.Encrypt, else preferring it, its default), or returns nil (logged) when it is not
// installed or the torrent is v2 or hybrid. Everything it keeps lives in o.Dir; the torrent
// goes in through its watch directory, its completion runs the hook that writes the marker.
func startTransmission(t *testing.T, o realClientOpts) *otherLeecher {
	t.Helper()
	bin, err := exec.LookPath("transmission-daemon")
	if err != nil {
		t.Logf("transmission-daemon not installed (apt-get install transmission-daemon): transmission leecher NOT tested")
		return nil
	}
	// transmission 3.00 calls a v2 or hybrid torrent corrupt (its watch directory says "Failed to
	// add (corrupted?) torrent file"; transmission-show cannot parse it): it never joins.
	if tor, err := metainfo.Load(o.Torrent); err != nil {
		t.Fatalf("transmission: %v", err)
	} else if !tor.InfoHashV2.IsZero() {
		t.Logf("transmission 3.00 cannot read a v2 or hybrid torrent: transmission leecher NOT tested in this swarm")
		return nil
	}
	conf, watch, dl := filepath.Join(o.Dir, "config"), filepath.Join(o.Dir, "watch"), filepath.Join(o.Dir, "download")
	for _, d := range []string{conf, watch, dl} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(o.Dir, "complete")
	hook := writeHook(t, o.Dir, marker)
	port := freePort(t)
	encryption := 1 // prefer encryption, transmission's default: it still accepts plaintext
	if o.Encrypt {
		encryption = 2 // require it both ways
	}
	settings := map[string]any{
		// Its own loopback address for listening (TCP and the uTP socket), for its outgoing peer
		// connections and for tracker announces; transmission keeps one peer per IP.
		"bind-address-ipv4":         o.IP,
		"bind-address-ipv6":         "::1",
		"peer-port":                 port,
		"peer-port-random-on-start": false,
		// Never leave loopback: no DHT, no local peer discovery, no UPnP/NAT-PMP.
		"dht-enabled":              false,
		"lpd-enabled":              false,
		"port-forwarding-enabled":  false,
		"pex-enabled":              true,
		"utp-enabled":              true,
		"encryption":               encryption,
		"speed-limit-down-enabled": o.Rate > 0,
		"speed-limit-down":         (o.Rate + transmissionSpeedK - 1) / transmissionSpeedK,
		"speed-limit-up-enabled":   false,
		"alt-speed-enabled":        false,
		// RPC only on loopback, for a look at its state by hand (transmission-remote PORT -l).
		"rpc-enabled":                  true,
		"rpc-bind-address":             "127.0.0.1",
		"rpc-port":                     freePort(t),
		"rpc-whitelist-enabled":        true,
		"rpc-whitelist":                "127.0.0.1",
		"rpc-host-whitelist-enabled":   false,
		"rpc-authentication-required":  false,
		"watch-dir-enabled":            true,
		"watch-dir":                    watch,
		"trash-original-torrent-files": false,
		"start-added-torrents":         true,
		"download-dir":                 dl,
		"incomplete-dir-enabled":       false,
		"script-torrent-done-enabled":  true,
		"script-torrent-done-filename": hook,
		// Keep seeding after the finish until stopped; no queue holds it back.
		"ratio-limit-enabled":        false,
		"idle-seeding-limit-enabled": false,
		"download-queue-enabled":     false,
		"seed-queue-enabled":         false,
		"queue-stalled-enabled":      false,
		"blocklist-enabled":          false,
		"preallocation":              0,
		"message-level":              2, // its default: start, listen, errors; a dozen lines a run
	}
	raw, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// The watch directory is scanned at start, so the torrent is there before the daemon is.
	torrent, err := os.ReadFile(o.Torrent)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(watch, "swarm.torrent"), torrent, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", "-g", conf)
	cmd.Env = append(os.Environ(), "HOME="+o.Dir, "TRANSMISSION_HOME="+conf)
	stop := startProgram(t, "transmission-daemon", cmd)
	return &otherLeecher{name: "transmission", addr: fmt.Sprintf("%s:%d", o.IP, port), done: markerDone(marker), stop: stop}
}
