package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func init() {
	registerRealClient(realClient{name: "qbittorrent", ip: "127.0.0.22", encrypt: true, utpOnly: true, start: startQBittorrent})
}

// startQBittorrent starts Debian's qbittorrent-nox 4.5.2 (libtorrent-rasterbar 2.0) as a
// leecher, requiring encryption when o.Encrypt (else allowing it, its default) and speaking
// uTP only when o.UTPOnly, or returns nil (logged) when it is not installed. Its profile, home
// and download live in o.Dir; the torrent goes in on the command line, its completion runs
// the hook that writes the marker, and its Web UI answers on 127.0.0.1 without a password.
func startQBittorrent(t *testing.T, o realClientOpts) *otherLeecher {
	t.Helper()
	bin, err := exec.LookPath("qbittorrent-nox")
	if err != nil {
		t.Logf("qbittorrent-nox not installed (apt-get install qbittorrent-nox): qBittorrent leecher NOT tested")
		return nil
	}
	profile, home, dl := filepath.Join(o.Dir, "profile"), filepath.Join(o.Dir, "home"), filepath.Join(o.Dir, "download")
	conf := filepath.Join(profile, "qBittorrent", "config")
	for _, d := range []string{conf, home, dl} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(o.Dir, "complete")
	hook := writeHook(t, o.Dir, marker)
	port := freePort(t)
	encryption := 0 // allow encryption, qBittorrent's default (libtorrent pe_enabled)
	if o.Encrypt {
		encryption = 1 // require it (pe_forced both ways, RC4)
	}
	protocol := "Both"
	if o.UTPOnly {
		protocol = "UTP" // libtorrent's enable_{incoming,outgoing}_tcp off
	}
	// The key names are qBittorrent 4.5's; each one was checked against what 4.5.2 reports in
	// /api/v2/app/preferences and against its sockets (ss -tunap).
	ini := []string{
		"[LegalNotice]",
		"Accepted=true",
		"",
		"[BitTorrent]",
		// Its own loopback address only, for listening (TCP and uTP), dialling and announcing:
		// an address without an interface name makes libtorrent bind every socket to it. (Its
		// log calls the address not found, since lo carries only 127.0.0.1/8, and binds anyway.
		// With Interface=lo it hands libtorrent the device, not the address, for dialling.)
		"Session\\Interface=",
		"Session\\InterfaceName=",
		"Session\\InterfaceAddress=" + o.IP,
		fmt.Sprintf("Session\\Port=%d", port),
		// Never leave loopback: no DHT, no local service discovery, no UPnP/NAT-PMP.
		"Session\\DHTEnabled=false",
		"Session\\LSDEnabled=false",
		"Session\\PeXEnabled=true",
		"Session\\AnonymousModeEnabled=false",
		fmt.Sprintf("Session\\Encryption=%d", encryption),
		"Session\\BTProtocol=" + protocol,
		// KiB/s; 0 is no limit.
		fmt.Sprintf("Session\\GlobalDLSpeedLimit=%d", (o.Rate+1023)/1024),
		"Session\\DefaultSavePath=" + dl,
		"Session\\TempPathEnabled=false",
		"Session\\QueueingSystemEnabled=false",
		"Session\\GlobalMaxRatio=-1",
		"Session\\GlobalMaxSeedingMinutes=-1",
		"",
		"[Network]",
		"PortForwardingEnabled=false",
		"",
		"[Preferences]",
		"Connection\\UPnP=false",
		"Connection\\ResolvePeerCountries=false",
		"General\\Locale=en",
		"WebUI\\Enabled=true",
		"WebUI\\Address=127.0.0.1",
		fmt.Sprintf("WebUI\\Port=%d", freePort(t)),
		"WebUI\\LocalHostAuth=false",
		"WebUI\\HostHeaderValidation=false",
		"WebUI\\CSRFProtection=false",
		"WebUI\\UseUPnP=false",
		"",
		"[AutoRun]",
		"enabled=true",
		"program=" + hook,
		"",
	}
	if err := os.WriteFile(filepath.Join(conf, "qBittorrent.conf"), []byte(strings.Join(ini, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(profile, "qBittorrent", "data", "logs", "qbittorrent.log")
	t.Cleanup(func() { // runs after startProgram's cleanup has stopped it
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("qBittorrent's log:\n%s", b)
		}
	})
	cmd := exec.Command(bin, "--profile="+profile, "--save-path="+dl, o.Torrent)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	stop := startProgram(t, "qbittorrent-nox", cmd)
	return &otherLeecher{name: "qbittorrent", addr: fmt.Sprintf("%s:%d", o.IP, port), done: markerDone(marker), stop: stop}
}
