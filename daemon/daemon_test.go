package daemon

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// The repository's test torrents: a v1 one and a hybrid (two wire hashes, one torrent).
var (
	v1File     = filepath.Join("..", "examples", "torrents", "sintel.torrent")
	hybridFile = filepath.Join("..", "testdata", "torrents", "real", "bittorrent-v2-hybrid-test.torrent")
)

const magnetURI = "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=pending"

// newTestDaemon wires a daemon of real parts that never runs: no listener, trackers or DHT,
// so nothing leaves the process.
func newTestDaemon(t *testing.T) *Daemon {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewPedanticRegistry()
	rec, err := collector.New(collector.Config{StorePath: filepath.Join(t.TempDir(), "btda.db")}, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	prober, err := probe.NewProber(probe.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Registry: discovery.NewRegistry(logger), Sightings: make(chan discovery.Sighting),
		Recorder: rec, Prober: prober, Scheduler: scheduler.Config{MaxInFlight: 1}, Threshold: 0.98, Logger: logger}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func load(t *testing.T, d *Daemon, args ...string) discovery.Diff {
	t.Helper()
	diff, rep, err := d.Load(t.Context(), discovery.WatchSources{Args: args})
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("Load: %v %v", err, rep.Failed)
	}
	return diff
}

func loadTorrent(t *testing.T, path string) *metainfo.Torrent {
	t.Helper()
	tor, err := metainfo.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

func TestRoute(t *testing.T) {
	d := newTestDaemon(t)
	load(t, d, v1File, hybridFile, magnetURI)
	v1, hybrid := loadTorrent(t, v1File), loadTorrent(t, hybridFile)
	magnet, _ := metainfo.ParseMagnet(magnetURI)
	peer := netip.MustParseAddrPort("127.0.0.2:6881")
	var unknown metainfo.Hash
	unknown[0] = 1

	tests := []struct {
		name       string
		sg         discovery.Sighting
		known      int  // peers the scheduler knows afterwards
		candidates int  // metadata candidates of the pending magnet afterwards
		newPeer    bool // the sighting made a scheduler entry
	}{
		{"active torrent", discovery.Sighting{Torrent: v1.Hash(), Addr: peer, Source: discovery.SourceTracker}, 1, 0, true},
		{"same peer again", discovery.Sighting{Torrent: v1.Hash(), Addr: peer, Source: discovery.SourceDHT}, 1, 0, false},
		{"hybrid by its v1 hash", discovery.Sighting{Torrent: hybrid.InfoHashV1, Addr: peer, Source: discovery.SourceDHT}, 2, 0, true},
		// The v2 peers of a hybrid use the truncated v2 hash: the same torrent, so the same entry.
		{"hybrid by its v2 hash", discovery.Sighting{Torrent: hybrid.InfoHashV2.Truncate(), Addr: peer, Source: discovery.SourcePEX}, 2, 0, false},
		{"pending magnet", discovery.Sighting{Torrent: magnet.Hash(), Addr: peer, Source: discovery.SourceDHT}, 2, 1, false},
		{"unwatched torrent", discovery.Sighting{Torrent: unknown, Addr: peer, Source: discovery.SourceDHT}, 2, 1, false},
	}
	for _, tt := range tests {
		before := d.sched.Stats()
		d.route(tt.sg)
		st := d.sched.Stats()
		if st.Known != tt.known {
			t.Errorf("%s: scheduler knows %d peers, want %d", tt.name, st.Known, tt.known)
		}
		if got := st.New[tt.sg.Source] > before.New[tt.sg.Source]; got != tt.newPeer {
			t.Errorf("%s: new entry %v, want %v", tt.name, got, tt.newPeer)
		}
		if st.UnknownTorrent != 0 {
			t.Errorf("%s: the scheduler saw a torrent it does not watch (the route must drop or rewrite it)", tt.name)
		}
		d.metadata.mu.Lock()
		n := len(d.metadata.pending[magnet.Hash()].peers)
		d.metadata.mu.Unlock()
		if n != tt.candidates {
			t.Errorf("%s: %d metadata candidates, want %d", tt.name, n, tt.candidates)
		}
	}
}

func TestResultRoutesPEX(t *testing.T) {
	d := newTestDaemon(t)
	load(t, d, v1File)
	v1 := loadTorrent(t, v1File)
	pex := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.3:1"), netip.MustParseAddrPort("127.0.0.4:2")}
	target := scheduler.Target{Torrent: v1.Hash(), Addr: netip.MustParseAddrPort("127.0.0.2:6881"), Source: discovery.SourceTracker}
	// A failed session may leave the observation's torrent empty: the target's counts.
	d.result(target, probe.Observation{Addr: target.Addr, Direction: probe.Outgoing, Outcome: probe.OutcomeOK, PEX: pex})
	if st := d.sched.Stats(); st.New[discovery.SourcePEX] != 2 || st.Known != 2 {
		t.Fatalf("PEX peers not routed: %+v", st.New)
	}
	got, err := testutil.GatherAndCount(prometheusRegistryOf(t, d), "btda_probe_sessions_total")
	if err != nil || got == 0 {
		t.Fatalf("sessions not counted: %d %v", got, err)
	}

	// An incoming session's PEX peers take the same route.
	d.incoming(probe.Observation{Torrent: v1.Hash(), Addr: netip.MustParseAddrPort("127.0.0.9:40000"), Direction: probe.Incoming,
		Outcome: probe.OutcomeOK, PEX: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.5:3")}})
	if st := d.sched.Stats(); st.New[discovery.SourcePEX] != 3 {
		t.Fatalf("incoming PEX not routed: %+v", st.New)
	}
}

// prometheusRegistryOf registers d's probe metrics on a fresh registry, for counting.
func prometheusRegistryOf(t *testing.T, d *Daemon) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.metrics)
	return reg
}

func TestLoadAppliesDiff(t *testing.T) {
	d := newTestDaemon(t)
	dir := t.TempDir()
	data, err := os.ReadFile(v1File)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.torrent"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	src := discovery.WatchSources{TorrentDir: dir, Args: []string{magnetURI}}
	steps := []struct {
		name                   string
		edit                   func()
		added, removed, change int
		torrents, pending      int // scheduler torrents, magnets waiting for metadata
	}{
		{"first load", func() {}, 2, 0, 0, 1, 1},
		{"nothing changed", func() {}, 0, 0, 0, 1, 1},
		{"file removed", func() { os.Remove(filepath.Join(dir, "a.torrent")) }, 0, 1, 0, 0, 1},
		{"magnet removed", func() { src.Args = nil }, 0, 1, 0, 0, 0},
	}
	for _, s := range steps {
		s.edit()
		diff, _, err := d.Load(t.Context(), src)
		if err != nil {
			t.Fatal(err)
		}
		if len(diff.Added) != s.added || len(diff.Removed) != s.removed || len(diff.Changed) != s.change {
			t.Errorf("%s: diff +%d -%d ~%d", s.name, len(diff.Added), len(diff.Removed), len(diff.Changed))
		}
		d.metadata.mu.Lock()
		pending := len(d.metadata.pending)
		d.metadata.mu.Unlock()
		if st := d.sched.Stats(); st.Torrents != s.torrents || pending != s.pending {
			t.Errorf("%s: scheduler watches %d torrents, %d magnets pending; want %d, %d", s.name, st.Torrents, pending, s.torrents, s.pending)
		}
	}
}

func TestShardFiltersTheWatchList(t *testing.T) {
	v1, hybrid := loadTorrent(t, v1File), loadTorrent(t, hybridFile)
	for k := range uint64(2) {
		d := newTestDaemon(t)
		d.cfg.Shard = Shard{k, 2}
		load(t, d, v1File, hybridFile)
		want := 0
		for _, h := range []metainfo.Hash{v1.Hash(), hybrid.Hash()} {
			if d.cfg.Shard.Keep(h) {
				want++
			}
		}
		if n := d.registry.Len(); n != want {
			t.Errorf("shard %d/2 watches %d torrents, want %d", k, n, want)
		}
	}
}
