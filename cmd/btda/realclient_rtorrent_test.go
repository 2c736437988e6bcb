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
	registerRealClient(realClient{name: "rtorrent", ip: "127.0.0.23", encrypt: true, start: startRTorrent})
}

// startRTorrent starts Debian's rtorrent 0.9.8 (rakshasa's libtorrent 0.13.8) as a leecher
// (requiring RC4 encryption when o.Encrypt), or returns nil (logged) when rtorrent is not
// installed. rtorrent speaks no uTP. It wants a terminal; with system.daemon.set (0.9.7 and
// later) it runs without one and quits on SIGTERM within a second, announcing `stopped`.
//
// What it does on the wire at its defaults (REFERENCE.md): no bitfield while it has nothing;
// the haves of the pieces it completes are queued and go out only with the next message it
// writes for another reason (a choke or unchoke, its 2-minute keep-alive, PEX); and when the
// last piece arrives it closes every peer connection, re-checks the whole download
// (pieces.hash.on_completion, default yes) and only then runs event.download.finished, a
// few seconds later (the truth's finish time), reconnecting as a seed.
func startRTorrent(t *testing.T, o realClientOpts) *otherLeecher {
	t.Helper()
	bin, err := exec.LookPath("rtorrent")
	if err != nil {
		t.Logf("rtorrent not installed (apt-get install rtorrent): rtorrent leecher NOT tested")
		return nil
	}
	marker := filepath.Join(o.Dir, "complete")
	hook := writeHook(t, o.Dir, marker)
	download, session := filepath.Join(o.Dir, "download"), filepath.Join(o.Dir, "session")
	for _, d := range []string{download, session} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// rtorrent's option parser splits on commas and ends an argument at white space; the
	// test's paths (t.TempDir) have neither.
	for _, p := range []string{o.Dir, o.Torrent} {
		if strings.ContainsAny(p, ", \t\"") {
			t.Fatalf("rtorrent: path %q has a comma, blank or quote its configuration cannot carry", p)
		}
	}
	port := freePort(t)
	rc := []string{
		"system.daemon.set = true", // no terminal, no curses
		// bind_address covers listening, outgoing peer connections and the tracker requests
		// (curl); local_address is the ip= it announces.
		"network.bind_address.set = " + o.IP,
		"network.local_address.set = " + o.IP,
		fmt.Sprintf("network.port_range.set = %d-%d", port, port),
		"network.port_random.set = no",
		"dht.mode.set = disable",
		"protocol.pex.set = yes",
		"trackers.use_udp.set = yes",
		"directory.default.set = " + download,
		"session.path.set = " + session,
		// event.download.finished fires once the last piece is hash-checked.
		`method.set_key = event.download.finished, btda_done, "execute.nothrow=` + hook + `"`,
	}
	if o.Rate > 0 {
		rc = append(rc, fmt.Sprintf("throttle.global_down.max_rate.set_kb = %d", max(1, o.Rate>>10)))
	}
	if o.Encrypt {
		// Refuse plaintext both ways, RC4 only (no plaintext after the MSE handshake).
		rc = append(rc, "protocol.encryption.set = require,require_RC4,allow_incoming,try_outgoing")
	}
	rc = append(rc, "load.start = "+o.Torrent)
	rcPath := filepath.Join(o.Dir, "rtorrent.rc")
	if err := os.WriteFile(rcPath, []byte(strings.Join(rc, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// -n: no ~/.rtorrent.rc; HOME inside Dir so nothing of the machine's user is read or locked.
	cmd := exec.Command(bin, "-n", "-o", "import="+rcPath)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "HOME="+o.Dir, "TERM=dumb")
	stop := startProgram(t, "rtorrent", cmd)
	return &otherLeecher{name: "rtorrent", addr: fmt.Sprintf("%s:%d", o.IP, port), done: markerDone(marker), stop: stop}
}
