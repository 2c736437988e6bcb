package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

// TestProbeAndMetadataCommands runs `btda probe` and `btda metadata` against the test
// swarm's libtorrent-like and refusing peers and checks them against the swarm's truth.
func TestProbeAndMetadataCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	sw, err := swarmtest.Start(ctx, swarmtest.Config{
		Seed: 7, Torrents: 1, Peers: 4, Dir: dir, Duration: time.Hour,
		Versions: map[swarmtest.Version]float64{swarmtest.V1: 1},
		Mix:      map[swarmtest.Profile]float64{swarmtest.Libtorrent: 3, swarmtest.Refuse: 1},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	tor := sw.Torrents()[0]
	path := filepath.Join(dir, "probe.torrent")
	os.WriteFile(path, tor.File, 0o600)
	cfg := filepath.Join(dir, "btda.yml")
	os.WriteFile(cfg, []byte("probe:\n  quiet_window: 500ms\n  connect_timeout: 2s\n"), 0o600)

	var args []string
	peers := sw.Peers()
	for _, p := range peers {
		args = append(args, p.Addr.String())
	}
	before := make([]int, len(peers))
	for i, p := range peers {
		before[i] = swarmtest.Progress(p, sw.Elapsed())
	}
	out, stderr, code := runBTDA(t, append([]string{"--config.file", cfg, "probe", "--torrent", path}, args...)...)
	after := make([]int, len(peers))
	for i, p := range peers {
		after[i] = swarmtest.Progress(p, sw.Elapsed())
	}
	if code != 1 { // the refusing peer fails
		t.Errorf("exit %d, want 1\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(peers) {
		t.Fatalf("%d lines for %d peers:\n%s", len(lines), len(peers), out)
	}
	for i, p := range peers {
		var o observationJSON
		if err := json.Unmarshal([]byte(lines[i]), &o); err != nil {
			t.Fatal(err)
		}
		if o.Peer != p.Addr.String() || o.Infohash != tor.WireHex() || o.NumPieces != tor.Pieces {
			t.Errorf("peer %d: %+v", i, o)
		}
		switch p.Profile {
		case swarmtest.Refuse:
			if o.Outcome != "refused" || o.Known {
				t.Errorf("refusing peer: %+v", o)
			}
		case swarmtest.Libtorrent:
			if o.Outcome != "ok" || !o.Known || o.Pieces < before[i] || o.Pieces > after[i] {
				t.Errorf("libtorrent peer: outcome %s known %v pieces %d, truth between %d and %d", o.Outcome, o.Known, o.Pieces, before[i], after[i])
			}
		}
	}

	// The metadata of the swarm's magnet, fetched from its peers.
	var live []string
	for _, p := range peers {
		if p.Profile == swarmtest.Libtorrent {
			live = append(live, p.Addr.String())
		}
	}
	out, stderr, code = runBTDA(t, append([]string{"--config.file", cfg, "metadata", tor.Magnet(nil)}, live...)...)
	if code != 0 {
		t.Fatalf("metadata: exit %d\n%s", code, stderr)
	}
	var r inspectResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.InfohashV1 != tor.WireHex() || r.Pieces != tor.Pieces || r.Name != tor.Name {
		t.Fatalf("metadata summary %+v, want %s %d %s", r, tor.WireHex(), tor.Pieces, tor.Name)
	}
}
