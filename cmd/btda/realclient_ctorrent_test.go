package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

func init() {
	registerRealClient(realClient{name: "ctorrent", ip: "127.0.0.24", start: startCTorrent})
}

// startCTorrent starts Debian's ctorrent (Enhanced CTorrent dnh3.3.2) as a leecher, or returns
// nil (logged) when ctorrent is not installed. ctorrent speaks neither MSE nor uTP, no BEP 10
// and no Fast extension, and sends no bitfield while it has nothing. It listens on o.IP only
// and announces from it (the tracker hands out o.IP and its port), but its outgoing peer
// connections leave from whatever address the kernel picks (127.0.0.1), without a BEP 10
// `p`: one client with two addresses, as real hosts have; btda must count it once.
// It quits within about two seconds of SIGTERM (it announces `stopped` first).
func startCTorrent(t *testing.T, o realClientOpts) *otherLeecher {
	t.Helper()
	bin, err := exec.LookPath("ctorrent")
	if err != nil {
		t.Logf("ctorrent not installed (apt-get install ctorrent): ctorrent leecher NOT tested")
		return nil
	}
	marker := filepath.Join(o.Dir, "complete")
	hook := writeHook(t, o.Dir, marker)
	port := freePort(t)
	// No -s: for a single-file torrent it names the file, not a directory; ctorrent saves under
	// the torrent's name in its working directory (o.Dir). -b keeps its bitfield file there too
	// (the default is next to the shared .torrent). -e 1: seed on for an hour after completion
	// (the test stops it). -X runs the hook through the shell once the last piece is checked.
	args := []string{"-i", o.IP, "-p", fmt.Sprint(port), "-e", "1", "-b", filepath.Join(o.Dir, "bitfield"), "-X", hook}
	if o.Rate > 0 {
		args = append(args, "-D", fmt.Sprint(max(1, o.Rate>>10)))
	}
	// Its status line goes to stdout every second; stdin is /dev/null (no console keys).
	cmd := exec.Command(bin, append(args, o.Torrent)...)
	cmd.Dir = o.Dir
	stop := startProgram(t, "ctorrent", cmd)
	return &otherLeecher{name: "ctorrent", addr: fmt.Sprintf("%s:%d", o.IP, port), done: markerDone(marker), stop: stop}
}
