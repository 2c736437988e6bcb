package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest"
)

var torrentInfoRE = regexp.MustCompile(`(?m)^btda_torrent_info\{infohash="([0-9a-f]{40})",`)

// TestShard runs two btda instances with --shard 0/2 and 1/2 over one watch list of six
// generated torrents (v1, v2, hybrid): each watches a disjoint part, together all six, and
// each torrent is in the shard its info hash names.
func TestShard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	sw, err := swarmtest.Start(ctx, swarmtest.Config{Seed: 21, Torrents: 6, Dir: dir,
		Versions: map[swarmtest.Version]float64{swarmtest.V1: 1, swarmtest.V2: 1, swarmtest.Hybrid: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sw.Close() // only its torrent files are needed
	all := make(map[string]bool)
	for _, tor := range sw.Torrents() {
		all[tor.WireHex()] = true
	}
	if len(all) != 6 {
		t.Fatalf("%d distinct torrents generated, want 6", len(all))
	}

	const n = 2
	owner := make(map[string]int)
	for k := 0; k < n; k++ {
		inst := filepath.Join(dir, fmt.Sprintf("shard%d", k))
		os.Mkdir(inst, 0o700)
		cfg := filepath.Join(inst, "btda.yml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: ""
peer:
  listen_address: "127.0.0.1:0"
trackers:
  enabled: false
dht:
  enabled: false
storage:
  path: %s
`, filepath.Join(dir, "torrents"), filepath.Join(inst, "btda.db"))), 0o600); err != nil {
			t.Fatal(err)
		}
		d := startDaemonOn(t, cfg, "--shard", fmt.Sprintf("%d/%d", k, n))
		m := d.scrape(t)
		d.stop(t, syscall.SIGTERM, 5*time.Second)

		var got []string
		for _, sub := range torrentInfoRE.FindAllStringSubmatch(m, -1) {
			h := sub[1]
			got = append(got, h)
			if !all[h] {
				t.Errorf("shard %d/%d watches %s, not one of the generated torrents", k, n, h)
			}
			if prev, dup := owner[h]; dup {
				t.Errorf("%s is in shard %d/%d and in shard %d/%d", h, prev, n, k, n)
			}
			owner[h] = k
			id, err := metainfo.ParseHash(h)
			if err != nil {
				t.Fatal(err)
			}
			if want := int(binary.BigEndian.Uint64(id[:8]) % n); want != k {
				t.Errorf("%s is in shard %d/%d, its hash says %d", h, k, n, want)
			}
		}
		if active := metricSum(m, "btda_torrents", `state="active"`); int(active) != len(got) {
			t.Errorf("shard %d/%d: btda_torrents active = %v, btda_torrent_info lists %d", k, n, active, len(got))
		}
		if len(got) == 0 || len(got) == len(all) {
			t.Errorf("shard %d/%d watches %d of %d torrents: the split proves nothing", k, n, len(got), len(all))
		}
		sort.Strings(got)
		t.Logf("shard %d/%d: %v", k, n, got)
	}
	for h := range all {
		if _, ok := owner[h]; !ok {
			t.Errorf("%s is in no shard", h)
		}
	}
}

// TestShardInvalid: a --shard that is not k/n with 0 ≤ k < n is a usage error.
func TestShardInvalid(t *testing.T) {
	dir := t.TempDir()
	cfg := loopbackConfig(t, dir, "")
	for _, s := range []string{"2/2", "1/0", "a/b", "1/2/3", "-1/2", " 0/2"} {
		_, stderr, code := runBTDA(t, "run", "--config.file", cfg, "--shard="+s, "--web.listen-address", "127.0.0.1:0")
		if code != 2 || !regexp.MustCompile(`invalid --shard`).MatchString(stderr) {
			t.Errorf("--shard %q: exit %d, want 2 with \"invalid --shard\"; stderr:\n%s", s, code, stderr)
		}
	}
}
