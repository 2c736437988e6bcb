package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Real BitTorrent programs nobody here wrote, started as leechers of a loopback swarm for the
// acceptance tests. Each program has a starter in its own file that registers itself in
// realClients from an init function; a starter skips (returns nil, logged) when its program
// is not installed.

// realClientOpts says how a real program joins a loopback swarm.
type realClientOpts struct {
	Dir     string // its own empty directory: configuration, state and download
	Torrent string // the .torrent file (names the swarm's tracker)
	IP      string // its own 127.0.0.N: it listens on and dials from this address only
	Rate    int    // download limit in bytes/s (0: none)
	Encrypt bool   // require MSE/PE with RC4 both ways (only where realClient.encrypt)
	UTPOnly bool   // speak uTP only (only where realClient.utpOnly)
}

// realClient is one program: its starter and what it can be set to.
type realClient struct {
	name    string
	ip      string // its fixed loopback address, distinct per program
	encrypt bool   // can require encryption
	utpOnly bool   // can speak uTP only
	start   func(t *testing.T, o realClientOpts) *otherLeecher
}

// realClients by name; filled by the starters' init functions.
var realClients = map[string]realClient{}

func registerRealClient(c realClient) { realClients[c.name] = c }

// otherLeecher is a leecher run by another program than libtorrent.
type otherLeecher struct {
	name, addr string
	// done reports the program's own completion signal (a file its completion hook writes,
	// or its own status query); the first time it is true is the truth of the finish time.
	done func() bool
	// stop ends the program (SIGTERM, then SIGKILL) and waits for it; safe to call twice.
	stop func()
}

// startRealClients starts every registered program that pick accepts (with the options it
// returns), each on its own address under dir, in name order.
func startRealClients(t *testing.T, dir, torrent string, pick func(realClient) (realClientOpts, bool)) []*otherLeecher {
	t.Helper()
	names := make([]string, 0, len(realClients))
	for n := range realClients {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*otherLeecher
	for _, n := range names {
		c := realClients[n]
		o, ok := pick(c)
		if !ok {
			continue
		}
		o.Dir, o.Torrent, o.IP = filepath.Join(dir, c.name), torrent, c.ip
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if l := c.start(t, o); l != nil {
			out = append(out, l)
		}
	}
	return out
}

// startProgram runs a real program in its own process group, its output kept for the log
// when the test fails. The returned stop ends the group (SIGTERM, SIGKILL after 5 s) and
// waits; it also runs at cleanup.
func startProgram(t *testing.T, name string, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	out := &lockedWriter{w: new(bytes.Buffer)}
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers it left behind
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out)
		}
	})
	return stop
}

// markerDone is a done func for a completion hook that creates marker.
func markerDone(marker string) func() bool {
	return func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}
}

// writeHook writes an executable shell script that creates marker, for a program's
// completion hook, and returns its path.
func writeHook(t *testing.T, dir, marker string) string {
	t.Helper()
	hook := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return hook
}

func init() {
	registerRealClient(realClient{name: "aria2", ip: "127.0.0.20", encrypt: true, start: startAria2})
}

// startAria2 starts Debian's aria2c as a leecher (requiring RC4 encryption when o.Encrypt),
// or returns nil (logged) when aria2c is not installed. aria2 1.36 speaks no uTP and never
// joins a hybrid (v1+v2) swarm.
func startAria2(t *testing.T, o realClientOpts) *otherLeecher {
	t.Helper()
	bin, err := exec.LookPath("aria2c")
	if err != nil {
		t.Logf("aria2c not installed (apt-get install aria2): aria2 leecher NOT tested")
		return nil
	}
	marker := filepath.Join(o.Dir, "complete")
	hook := writeHook(t, o.Dir, marker)
	port := freePort(t)
	args := []string{"--dir=" + o.Dir, "--interface=" + o.IP, fmt.Sprintf("--listen-port=%d", port),
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=true",
		"--disable-ipv6=true", "--seed-ratio=0.0", "--seed-time=600", "--bt-tracker-interval=10",
		"--on-bt-download-complete=" + hook, "--summary-interval=0", "--console-log-level=warn",
		"--auto-save-interval=0", "--no-conf=true"}
	if o.Rate > 0 {
		args = append(args, fmt.Sprintf("--max-download-limit=%d", o.Rate))
	}
	if o.Encrypt {
		args = append(args, "--bt-require-crypto=true", "--bt-min-crypto-level=arc4")
	}
	stop := startProgram(t, "aria2c", exec.Command(bin, append(args, o.Torrent)...))
	return &otherLeecher{name: "aria2", addr: fmt.Sprintf("%s:%d", o.IP, port), done: markerDone(marker), stop: stop}
}
