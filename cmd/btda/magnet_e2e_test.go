package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

// TestMagnetOnlyWatchList: btda watches only magnets (no .torrent files). It must find the
// swarm's peers through the magnet's tracker, fetch the info dictionary from them (BEP 9),
// turn the torrents active and then probe their peers.
func TestMagnetOnlyWatchList(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	sw, err := swarmtest.Start(ctx, swarmtest.Config{
		Seed: 5, Torrents: 2, Peers: 12, Dir: dir, Duration: time.Hour,
		Versions: map[swarmtest.Version]float64{swarmtest.V1: 1, swarmtest.Hybrid: 1},
		Mix:      map[swarmtest.Profile]float64{swarmtest.Libtorrent: 1, swarmtest.Transmission: 1},
		Tracker:  swarmtest.TrackerConfig{Enabled: true},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()

	cfgPath := filepath.Join(dir, "btda.yml")
	cfg := fmt.Sprintf(`torrents:
  directory: ""
  magnet_file: %s
peer:
  listen_address: "127.0.0.1:0"
probe:
  quiet_window: 300ms
trackers:
  timeout: 2s
dht:
  enabled: false
storage:
  path: %s
`, filepath.Join(dir, "magnets.txt"), filepath.Join(dir, "btda.db"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonOn(t, cfgPath)
	// Metadata fetched for both: one v1 and one hybrid torrent become active, with their
	// names and piece counts in btda_torrent_info, and their peers get probed.
	var m string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		m = d.scrape(t)
		if metricLine(m, `btda_torrents{kind="v1",state="active"}`) == `btda_torrents{kind="v1",state="active"} 1` &&
			metricLine(m, `btda_torrents{kind="hybrid",state="active"}`) == `btda_torrents{kind="hybrid",state="active"} 1` &&
			metricLine(m, `btda_probe_sessions_total{direction="outgoing",outcome="ok"}`) != `btda_probe_sessions_total{direction="outgoing",outcome="ok"} 0` {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l := metricLine(m, `btda_torrents{kind="magnet",state="pending_metadata"}`); l != `btda_torrents{kind="magnet",state="pending_metadata"} 0` {
		t.Errorf("still pending: %q", l)
	}
	for _, tor := range sw.Torrents() {
		want := fmt.Sprintf(`btda_torrent_info{infohash="%s",name="%s",piece_length="%d",pieces="%d"} 1`, tor.WireHex(), tor.Name, tor.PieceLength, tor.Pieces)
		if !strings.Contains(m, want) {
			t.Errorf("missing %s", want)
		}
	}
	if l := metricLine(m, `btda_probe_sessions_total{direction="outgoing",outcome="ok"}`); l == "" || strings.HasSuffix(l, " 0") {
		t.Errorf("no successful probe after the metadata arrived: %q", l)
	}
	var peers []netip.AddrPort
	for _, p := range sw.Peers() {
		peers = append(peers, p.Addr)
	}
	checkExposition(t, m, peers)
	d.stop(t, syscall.SIGTERM, 5*time.Second)
}
