package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

// TestEndToEndSwarm runs btda against the test swarm (tracker, DHT, GeoIP, peers that dial
// in) with scripted curves whose crossings all fall well inside the run, and requires the
// confirmed downloads by torrent and country to equal the swarm's ground truth exactly.
func TestEndToEndSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	const runFor = 11 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	btdaPort := freePort(t)
	sw, err := swarmtest.Start(ctx, swarmtest.Config{
		Seed: 11, Torrents: 3, Peers: 45, Dir: dir, Duration: runFor,
		Versions: map[swarmtest.Version]float64{swarmtest.V1: 1, swarmtest.V2: 1, swarmtest.Hybrid: 1},
		Mix: map[swarmtest.Profile]float64{
			swarmtest.Libtorrent: 6, swarmtest.Transmission: 4, swarmtest.Rtorrent: 3, swarmtest.LazySeed: 1,
			swarmtest.SuperSeed: 1, swarmtest.PartialSeed: 1, swarmtest.AlwaysZero: 1, swarmtest.AcceptClose: 1,
			swarmtest.Silent: 1, swarmtest.Garbage: 1, swarmtest.Refuse: 1,
		},
		Tracker:         swarmtest.TrackerConfig{Enabled: true},
		DHT:             swarmtest.DHTConfig{Nodes: 4},
		DialOut:         fmt.Sprintf("127.0.0.1:%d", btdaPort),
		DialOutFraction: 0.3,
		Redial:          2 * time.Second,
		// Leechers of the three common clients start at half and cross between 3 s and
		// 7 s, so btda sees each one below and, after a revisit, above the threshold.
		CurveFunc: func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			switch p.Profile {
			case swarmtest.Libtorrent, swarmtest.Transmission, swarmtest.Rtorrent:
			default:
				return swarmtest.Curve{}, false
			}
			n := p.Torrent.Pieces
			start := n / 2
			need := swarmtest.Threshold(0.98, n) - start
			crossAt := 3*time.Second + time.Duration(p.Index%5)*time.Second
			return swarmtest.Curve{Pieces: n, Start: start, Interval: crossAt / time.Duration(need)}, true
		},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()

	city, asn := sw.GeoIPPaths()
	var boot []string
	for _, a := range sw.DHTNodes() {
		boot = append(boot, strconv.Quote(a.String()))
	}
	cfgPath := filepath.Join(dir, "btda.yml")
	cfg := fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: ""
peer:
  listen_address: "127.0.0.1:%d"
probe:
  connect_timeout: 1s
  handshake_timeout: 1s
  quiet_window: 300ms
  session_cap: 3s
  revisit_delay: 1s
  retry_backoff: 500ms
trackers:
  request_interval: 1m
  timeout: 2s
dht:
  listen_address: "127.0.0.1:0"
  bootstrap_nodes: [%s]
  lookup_timeout: 5s
storage:
  path: %s
  commit_interval: 200ms
geoip:
  city_database: %s
  asn_database: %s
`, filepath.Join(dir, "torrents"), btdaPort, strings.Join(boot, ", "), filepath.Join(dir, "btda.db"), city, asn)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonOn(t, cfgPath)
	for sw.Elapsed() < runFor {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the last commit
	exposition := d.scrape(t)
	d.stop(t, syscall.SIGTERM, 5*time.Second)

	truth := sw.Truth(swarmtest.Window{From: 0, To: runFor})
	want := make(map[string]int)
	for _, c := range truth.Crossings {
		want[c.Torrent+"/"+c.Country] += c.Count
	}
	got := make(map[string]int)
	re := regexp.MustCompile(`^btda_confirmed_downloads_total\{continent="[^"]*",country="([^"]*)",infohash="([^"]*)"\} (\S+)$`)
	for _, l := range strings.Split(exposition, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			if v > 0 {
				got[m[2]+"/"+m[1]] += int(v)
			}
		}
	}
	if truth.Total == 0 {
		t.Fatal("the scenario has no crossings; the test proves nothing")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("confirmed downloads %s = %d, truth %d", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("confirmed downloads %s = %d, truth has none", k, v)
		}
	}
	t.Logf("truth: %d crossings over %d torrent/country pairs; btda agreed on %d pairs", truth.Total, len(want), len(got))
	if t.Failed() {
		for _, p := range truth.Peers {
			t.Logf("peer %s:%d %s class=%s counted=%v cross_at=%v country=%s torrent=%s", p.IP, p.Port, p.Profile, p.Class, p.Counted, p.CrossAt, p.Country, p.Torrent)
		}
	}
}
