package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

func TestRunWritesEverythingAndStops(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "swarm.yml")
	if err := os.WriteFile(cfgPath, []byte("seed: 3\ntorrents: 2\npeers: 12\nmix: {libtorrent: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	// --peers on the command line overrides the file. The duration must cover start-up
	// (torrents, GeoIP databases, DHT nodes) even on a slow, busy machine.
	code := run(context.Background(), []string{"--config", cfgPath, "--peers", "20", "--duration", "5s",
		"--tracker", "--dht-nodes", "2", "--out", out, "--log-level", "warn"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	for _, f := range []string{"magnets.txt", "truth.json", swarmtest.CityDBName, swarmtest.ASNDBName} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	ts, _ := filepath.Glob(filepath.Join(out, "torrents", "*.torrent"))
	if len(ts) != 2 {
		t.Errorf("%d torrent files", len(ts))
	}
	b, err := os.ReadFile(filepath.Join(out, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tr swarmtest.Truth
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	if len(tr.Peers) != 20 || len(tr.Announce) != 2 || len(tr.DHTNodes) != 2 {
		t.Errorf("truth: %d peers, announce %v, dht %v", len(tr.Peers), tr.Announce, tr.DHTNodes)
	}
	if tr.Window.To <= 0 || tr.Window.To > 5*time.Second {
		t.Errorf("truth window %v outside the run", tr.Window)
	}
	for _, p := range tr.Peers {
		if p.Profile != "libtorrent" {
			t.Errorf("peer %d is %s, config asked for libtorrent only", p.Index, p.Profile)
		}
	}
	if !strings.Contains(stdout.String(), "stopped after") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestRunServesMetrics(t *testing.T) {
	// Reserve a loopback port for the metrics listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	done := make(chan int)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(context.Background(), []string{"--peers", "10", "--torrents", "1", "--duration", "3s",
			"--metrics", addr, "--out", t.TempDir()}, &stdout, &stderr)
	}()
	var body []byte
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, name := range []string{"btswarm_truth_confirmed_downloads_total", "btswarm_truth_peers", "btswarm_connections_accepted_total"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--peers", "lots"}, "lots"},
		{[]string{"--duration", "0s"}, "duration must be positive"},
		{[]string{"--dialout", "10.0.0.1:6881", "--duration", "1s"}, "not a loopback"},
		{[]string{"--config", "/nonexistent/swarm.yml"}, "nonexistent"},
		{[]string{"--listen-mode", "everywhere", "--duration", "1s"}, "listen_mode"},
		{[]string{"--metrics", "0.0.0.0:9999", "--duration", "1s"}, "loopback"},
		{[]string{"--require-mse", "1.5", "--duration", "1s"}, "reach.require_mse"},
		{[]string{"--dialout6", "127.0.0.1:6881", "--duration", "1s"}, "dialout6"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		args := append(tt.args, "--out", t.TempDir())
		if code := run(context.Background(), args, &stdout, &stderr); code == 0 {
			t.Errorf("%v: exit 0", tt.args)
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: stderr %q, want it to mention %q", tt.args, stderr.String(), tt.want)
		}
	}
}
