package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	bolt "go.etcd.io/bbolt"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

var (
	t0      = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	torrent = metainfo.Hash{0xab, 1}
)

const (
	numPieces   = 100 // threshold 98 at the default 0.98
	pieceLength = 16384
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newCollector opens a collector on path with a fresh registry.
func newCollector(t testing.TB, path string, cfg Config) (*Recorder, *prometheus.Registry) {
	t.Helper()
	cfg.StorePath = path
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Millisecond
	}
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, reg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	c.AddTorrent(torrent, pieceLength)
	return c, reg
}

// step describes one probe session in a rule test.
type step struct {
	ip          string
	port        uint16 // listen port: dialled (outgoing) or `p` (incoming); 0 unknown
	dir         probe.Direction
	src         discovery.Source
	unknown     bool // no progress message (Known false)
	first, last int  // pieces at the first progress message and at the end
	at, dur     int  // seconds from t0 to the first point, and from there to the last
	uploadOnly  bool
	outcome     probe.Outcome
}

func (s step) obs() probe.Observation {
	if s.ip == "" {
		s.ip = "127.1.0.1"
	}
	if s.dir == 0 {
		s.dir = probe.Outgoing
	}
	if s.src == 0 && s.dir == probe.Outgoing {
		s.src = discovery.SourceTracker // incoming sessions leave it unset, as the listener may
	}
	if s.outcome == 0 {
		s.outcome = probe.OutcomeOK
		if s.unknown {
			s.outcome = probe.OutcomeNoProgress
		}
	}
	addrPort := s.port
	if s.dir == probe.Incoming {
		addrPort = 50000 // an ephemeral source port, never the identity
	}
	start := t0.Add(time.Duration(s.at)*time.Second - time.Second)
	o := probe.Observation{
		Torrent: torrent, Addr: netip.AddrPortFrom(netip.MustParseAddr(s.ip), addrPort),
		Direction: s.dir, Source: s.src, Start: start, Outcome: s.outcome, NumPieces: numPieces,
		Timings: probe.Timings{Total: time.Duration(s.dur+2) * time.Second, MaxGap: time.Second},
	}
	o.ListenPort = s.port
	if !s.unknown {
		o.Known = true
		o.First = probe.Point{Pieces: s.first, At: t0.Add(time.Duration(s.at) * time.Second)}
		o.Last = probe.Point{Pieces: s.last, At: t0.Add(time.Duration(s.at+s.dur) * time.Second)}
	}
	o.Flags.UploadOnly = s.uploadOnly
	return o
}

func TestThreshold(t *testing.T) {
	cases := []struct {
		f    float64
		n    int
		want int
	}{{0.98, 100, 98}, {0.98, 1, 1}, {0.98, 1000, 980}, {0.98, 1001, 981}, {1, 7, 7}, {0.5, 3, 2}, {0.98, 0, 0}}
	for _, c := range cases {
		if got := newThreshold(c.f)(c.n); got != c.want {
			t.Errorf("threshold(%v, %d) = %d, want %d", c.f, c.n, got, c.want)
		}
	}
}

func TestConfirmedDownloadRule(t *testing.T) {
	const in, out = probe.Incoming, probe.Outgoing
	type want struct{ confirmed, seeds, partial, peers uint64 }
	cases := []struct {
		name  string
		steps []step
		want  want
		check func(t *testing.T, p store.Peer) // on the peer of the first step
	}{
		{"below to above in one session",
			[]step{{port: 6881, first: 50, last: 99, at: 0, dur: 10}}, want{1, 0, 0, 1},
			func(t *testing.T, p store.Peer) {
				if !p.CrossedAt.Equal(t0.Add(10*time.Second)) || !p.WindowStart.Equal(t0) {
					t.Errorf("crossing %v window %v", p.CrossedAt, p.WindowStart)
				}
				if want := float64(49*pieceLength) / 10; p.MaxSpeed != want {
					t.Errorf("max speed %v, want %v", p.MaxSpeed, want)
				}
			}},
		{"below in session 1, above in session 2",
			[]step{{port: 6881, first: 10, last: 20, at: 0, dur: 5}, {port: 6881, first: 99, last: 100, at: 100, dur: 5}},
			want{1, 0, 0, 1},
			func(t *testing.T, p store.Peer) {
				if !p.CrossedAt.Equal(t0.Add(100*time.Second)) || !p.WindowStart.Equal(t0.Add(5*time.Second)) {
					t.Errorf("crossing %v window %v", p.CrossedAt, p.WindowStart)
				}
			}},
		{"exactly at the threshold", []step{{port: 1, first: 97, last: 98, dur: 5}}, want{1, 0, 0, 1}, nil},
		{"one below the threshold", []step{{port: 1, first: 50, last: 97, dur: 5}}, want{0, 0, 0, 1}, nil},
		{"seed first seen",
			[]step{{port: 6881, first: 100, last: 100, dur: 5}, {port: 6881, first: 100, last: 100, at: 60}},
			want{0, 1, 0, 1}, nil},
		{"seed that regresses and climbs back is still no download",
			[]step{{port: 1, first: 100, last: 100}, {port: 1, first: 50, last: 50, at: 60}, {port: 1, first: 100, last: 100, at: 120}},
			want{0, 1, 0, 1},
			func(t *testing.T, p store.Peer) {
				if !p.Has(store.FlagRegressed) || p.Has(store.FlagConfirmed) {
					t.Errorf("flags %b", p.Flags)
				}
			}},
		{"partial seed",
			[]step{{port: 1, first: 50, last: 50, uploadOnly: true}, {port: 1, first: 60, last: 60, at: 60, uploadOnly: true},
				{port: 1, first: 100, last: 100, at: 120, uploadOnly: true}},
			want{0, 0, 1, 1}, nil},
		{"leecher that later completes with upload_only is a download",
			[]step{{port: 1, first: 50, last: 60, dur: 5}, {port: 1, first: 100, last: 100, at: 60, uploadOnly: true}},
			want{1, 0, 0, 1}, nil},
		{"regression then cross",
			[]step{{port: 1, first: 50, last: 50}, {port: 1, first: 30, last: 30, at: 60}, {port: 1, first: 99, last: 99, at: 120}},
			want{1, 0, 0, 1},
			func(t *testing.T, p store.Peer) {
				if !p.Has(store.FlagRegressed) || !p.WindowStart.Equal(t0.Add(60*time.Second)) {
					t.Errorf("flags %b window %v", p.Flags, p.WindowStart)
				}
			}},
		{"sessions without progress are ignored",
			[]step{{port: 1, unknown: true}, {port: 1, unknown: true, at: 30}, {port: 1, first: 99, last: 99, at: 60}},
			want{0, 1, 0, 1},
			func(t *testing.T, p store.Peer) {
				if p.Contacts != 3 || p.Has(store.FlagBelowSeen) {
					t.Errorf("contacts %d flags %b", p.Contacts, p.Flags)
				}
			}},
		{"a session without progress between below and above",
			[]step{{port: 1, first: 50, last: 50}, {port: 1, unknown: true, at: 30}, {port: 1, first: 99, last: 99, at: 60}},
			want{1, 0, 0, 1}, nil},
		{"crossing counted once only",
			[]step{{port: 1, first: 50, last: 99, dur: 5}, {port: 1, first: 40, last: 40, at: 60}, {port: 1, first: 99, last: 100, at: 120}},
			want{1, 0, 0, 1},
			func(t *testing.T, p store.Peer) {
				if !p.CrossedAt.Equal(t0.Add(5 * time.Second)) {
					t.Errorf("crossing moved to %v", p.CrossedAt)
				}
			}},
		{"unreached sessions change no peer state",
			[]step{{port: 1, outcome: probe.OutcomeRefused, unknown: true}, {port: 1, outcome: probe.OutcomeConnectTimeout, unknown: true}},
			want{0, 0, 0, 0}, nil},
		{"incoming with p merges with the tracker identity",
			[]step{{port: 6881, dir: in, first: 50, last: 50}, {port: 6881, dir: out, first: 99, last: 99, at: 60}},
			want{1, 0, 0, 1}, nil},
		{"incoming without p, then the tracker identity crosses",
			[]step{{port: 0, dir: in, first: 50, last: 99, dur: 5}, {port: 6881, dir: out, first: 50, last: 99, at: 60, dur: 5}},
			want{1, 0, 0, 2}, nil},
		{"tracker identity crosses, then incoming without p",
			[]step{{port: 6881, dir: out, first: 50, last: 99, dur: 5}, {port: 0, dir: in, first: 50, last: 99, at: 60, dur: 5}},
			want{1, 0, 0, 2},
			nil},
		{"two clients behind a NAT and an incoming without p",
			[]step{{port: 0, dir: in, first: 10, last: 99, dur: 5}, {port: 6881, first: 10, last: 99, at: 60, dur: 5},
				{port: 6882, first: 10, last: 99, at: 120, dur: 5}},
			want{2, 0, 0, 3}, nil},
		{"two clients behind a NAT, then an incoming without p",
			[]step{{port: 6881, first: 10, last: 99, dur: 5}, {port: 6882, first: 10, last: 99, at: 60, dur: 5},
				{port: 0, dir: in, first: 10, last: 99, at: 120, dur: 5}},
			want{2, 0, 0, 3}, nil},
		{"the same port on two IPs are two peers",
			[]step{{ip: "127.1.0.1", port: 6881, first: 10, last: 99, dur: 5}, {ip: "127.1.0.2", port: 6881, first: 10, last: 99, dur: 5}},
			want{2, 0, 0, 2}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{})
			defer c.Close()
			for _, s := range tc.steps {
				c.flush([]probe.Observation{s.obs()})
			}
			a := c.Aggregates().Torrents[torrent]
			got := want{a.Confirmed, a.Seeds, a.PartialSeeds, a.Peers}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			var byCountry uint64
			for _, n := range c.Aggregates().Confirmed {
				byCountry += n
			}
			if byCountry != tc.want.confirmed {
				t.Fatalf("confirmed by country %d, by torrent %d", byCountry, tc.want.confirmed)
			}
			if tc.check != nil {
				o := tc.steps[0].obs()
				tc.check(t, peerRecord(t, c, o))
			}
		})
	}
}

func peerRecord(t *testing.T, c *Recorder, o probe.Observation) store.Peer {
	t.Helper()
	var p store.Peer
	err := c.store.View(func(tx *store.Tx) error {
		var ok bool
		var err error
		p, ok, err = tx.Peer(c.store.PeerKey(o.Torrent, o.Addr.Addr(), peerPort(&o)))
		if err == nil && !ok {
			err = errors.New("no record")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A whole batch with several sessions of one peer gives the same result as one at a time.
func TestBatchEqualsSequential(t *testing.T) {
	steps := []step{{port: 1, first: 10, last: 20, dur: 5}, {port: 1, first: 40, last: 60, at: 60, dur: 5},
		{port: 1, first: 99, last: 100, at: 120, dur: 5}, {port: 2, first: 100, last: 100}}
	var batch []probe.Observation
	for _, s := range steps {
		batch = append(batch, s.obs())
	}
	c1, _ := newCollector(t, filepath.Join(t.TempDir(), "a.db"), Config{})
	defer c1.Close()
	c1.flush(batch)
	c2, _ := newCollector(t, filepath.Join(t.TempDir(), "b.db"), Config{})
	defer c2.Close()
	for _, o := range batch {
		c2.flush([]probe.Observation{o})
	}
	if a, b := c1.Aggregates(), c2.Aggregates(); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("batch %+v\nsequential %+v", a, b)
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	c, _ := newCollector(t, path, Config{})
	cross := step{port: 1, first: 50, last: 99, dur: 5}.obs()
	noProgress := step{port: 1, unknown: true, at: 60}.obs()
	c.flush([]probe.Observation{cross, noProgress, step{ip: "127.1.0.9", port: 2, first: 100, last: 100}.obs()})
	before := c.Aggregates()
	beforeScrape := scrape(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c2, _ := newCollector(t, path, Config{})
	defer c2.Close()
	if after := c2.Aggregates(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if got := scrape(t, c2); got != beforeScrape {
		t.Fatalf("state metrics changed across a restart:\n%s\nvs\n%s", got, beforeScrape)
	}
	// A replay of the same observations (e.g. re-sent after a crash) changes nothing.
	c2.flush([]probe.Observation{cross, noProgress})
	if after := c2.Aggregates(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after replay %+v, before %+v", after, before)
	}
	if n := testutil.ToFloat64(c2.m.duplicates); n != 2 {
		t.Fatalf("duplicates = %v, want 2", n)
	}
	if p := peerRecord(t, c2, cross); p.Contacts != 2 {
		t.Fatalf("contacts = %d after replay, want 2", p.Contacts)
	}
	var logged int
	_ = c2.store.View(func(tx *store.Tx) error {
		return tx.Downloads(t0.Add(-time.Hour), t0.Add(time.Hour), func(store.Download) error { logged++; return nil })
	})
	if logged != 1 {
		t.Fatalf("download log has %d entries, want 1", logged)
	}
}

// scrape renders the store-backed metrics.
func scrape(t *testing.T, c *Recorder) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		fmt.Fprintln(&b, mf.String())
	}
	return b.String()
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	c, _ := newCollector(t, path, Config{})
	defer c.Close()
	_, err := New(Config{StorePath: path, StoreOptions: store.Options{LockTimeout: 20 * time.Millisecond}},
		prometheus.NewRegistry(), quietLog())
	if err == nil || !strings.Contains(err.Error(), "store "+path+" is locked by another btda process") {
		t.Fatalf("err = %v", err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("garbage!"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{StorePath: garbage}, prometheus.NewRegistry(), quietLog())
	if err == nil || !strings.Contains(err.Error(), "store "+garbage+" is damaged") {
		t.Fatalf("err = %v", err)
	}
	for _, cfg := range []Config{{}, {StorePath: path + "2", Threshold: 1.5}} {
		if _, err := New(cfg, prometheus.NewRegistry(), quietLog()); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}

func TestFullDisk(t *testing.T) {
	failing := 0
	c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{Retries: 1,
		StoreOptions: store.Options{BeforeCommit: func() error {
			if failing > 0 {
				failing--
				return fmt.Errorf("write: %w", syscall.ENOSPC)
			}
			return nil
		}}})
	defer c.Close()
	a := step{ip: "127.1.0.1", port: 1, first: 50, last: 99, dur: 5}.obs()
	b := step{ip: "127.1.0.2", port: 1, first: 50, last: 99, dur: 5}.obs()

	failing = 2 // both attempts fail: the batch is dropped, nothing counted
	c.flush([]probe.Observation{a})
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != 0 {
		t.Fatalf("confirmed %d after a dropped batch", n)
	}
	if n := testutil.ToFloat64(c.m.commitFailures.WithLabelValues("no_space")); n != 2 {
		t.Fatalf("no_space failures = %v", n)
	}
	if n := testutil.ToFloat64(c.m.dropped); n != 1 {
		t.Fatalf("dropped = %v", n)
	}
	failing = 1 // the retry succeeds: counted exactly once
	c.flush([]probe.Observation{b})
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != 1 {
		t.Fatalf("confirmed %d after a retried batch, want 1", n)
	}
	// The dropped peer is seen again later and counted then.
	c.flush([]probe.Observation{a})
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != 2 {
		t.Fatalf("confirmed %d, want 2", n)
	}
	if n := testutil.ToFloat64(c.m.commits); n != 2 {
		t.Fatalf("commits = %v", n)
	}
}

func TestRunFlushesOnShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), "s.db")
	c, _ := newCollector(t, path, Config{BatchSize: 7, BatchWait: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	const peers = 100
	for i := range peers {
		o := step{ip: fmt.Sprintf("127.2.%d.%d", i/200, i%200+1), port: 1, first: 10, last: 99, dur: 5}.obs()
		if err := c.Record(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Record(context.Background(), step{port: 9, first: 1, last: 1}.obs()); !errors.Is(err, ErrStopped) {
		t.Fatalf("Record after Run returned: %v", err)
	}
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != peers {
		t.Fatalf("confirmed %d, want %d", n, peers)
	}
	if n := testutil.ToFloat64(c.m.observed.WithLabelValues("tracker")); n != peers {
		t.Fatalf("observations committed = %v, want %d", n, peers)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}

func TestRecordHonoursContext(t *testing.T) {
	c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{Queue: 1})
	defer c.Close()
	if err := c.Record(context.Background(), step{port: 1}.obs()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The queue is full and nothing runs the writer: Record must give up with ctx.
	if err := c.Record(ctx, step{port: 2}.obs()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := testutil.ToFloat64(c.m.pending); n != 1 {
		t.Fatalf("pending = %v", n)
	}
}

// An unreadable peer record is reported and left alone, never rebuilt (which could count a
// crossing again), and the rest of the batch commits.
func TestCorruptPeerRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	c, _ := newCollector(t, path, Config{})
	bad := step{ip: "127.1.0.1", port: 1, first: 10, last: 20}.obs()
	c.flush([]probe.Observation{bad})
	key := c.store.PeerKey(bad.Torrent, bad.Addr.Addr(), 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("peers")).Put(key[:], []byte{1, 0xff}) }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	c, _ = newCollector(t, path, Config{})
	defer c.Close()
	good := step{ip: "127.1.0.2", port: 1, first: 10, last: 99, dur: 5}.obs()
	later := step{ip: "127.1.0.1", port: 1, first: 10, last: 99, at: 60, dur: 5}.obs()
	c.flush([]probe.Observation{later, good})
	if n := testutil.ToFloat64(c.m.recordErrors); n != 1 {
		t.Fatalf("record errors = %v", n)
	}
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != 1 {
		t.Fatalf("confirmed = %d, want 1 (only the readable peer)", n)
	}
}

// TestStoreFull uses bbolt's own size cap as a real "disk full": commits fail with no_space,
// nothing is counted from them, and probing (Record) is never blocked by it.
func TestStoreFull(t *testing.T) {
	c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{Retries: -1,
		StoreOptions: store.Options{MaxSize: 1 << 20}})
	defer c.Close()
	var batch []probe.Observation
	for i := range 20000 {
		batch = append(batch, step{ip: fmt.Sprintf("127.%d.%d.%d", i/60000+1, i/250%240, i%250+1), port: 1, first: 10, last: 99, dur: 5}.obs())
	}
	committed := uint64(0)
	for i := 0; i < len(batch); i += 1000 {
		before := testutil.ToFloat64(c.m.commits)
		c.flush(batch[i : i+1000])
		if testutil.ToFloat64(c.m.commits) > before {
			committed += 1000
		}
	}
	if testutil.ToFloat64(c.m.commitFailures.WithLabelValues("no_space")) == 0 {
		t.Fatal("the size cap was never reached")
	}
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != committed {
		t.Fatalf("confirmed %d, committed batches held %d", n, committed)
	}
	if got := testutil.ToFloat64(c.m.dropped); got != float64(uint64(len(batch))-committed) {
		t.Fatalf("dropped %v, want %d", got, uint64(len(batch))-committed)
	}
}

// A regression is flagged and gives no speed sample; the climb after it does.
func TestSpeedAndRegression(t *testing.T) {
	c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{})
	defer c.Close()
	feed(c,
		step{port: 1, first: 50, last: 50}.obs(),
		step{port: 1, first: 30, last: 30, at: 60}.obs(),           // regression: no sample
		step{port: 1, first: 30, last: 40, at: 120, dur: 10}.obs(), // 10 pieces in 10 s (60→120 s: 0 pieces)
		step{port: 1, first: 40, last: 41, at: 130, dur: 0}.obs(),  // no newer than the stored last point: a duplicate
	)
	p := peerRecord(t, c, step{port: 1}.obs())
	if !p.Has(store.FlagRegressed) || p.Has(store.FlagConfirmed) {
		t.Fatalf("flags %b", p.Flags)
	}
	if want := float64(10*pieceLength) / 10; p.MaxSpeed != want {
		t.Fatalf("max speed %v, want %v", p.MaxSpeed, want)
	}
	h := c.m.speed.WithLabelValues("ZZ").(prometheus.Histogram)
	m := &dto.Metric{}
	if err := h.Write(m); err != nil {
		t.Fatal(err)
	}
	// Samples: 30→30 over 60 s (0 B/s) and 30→40 over 10 s; none for 50→30.
	if got := m.GetHistogram().GetSampleCount(); got != 2 {
		t.Fatalf("speed samples %d, want 2", got)
	}
	if got, want := m.GetHistogram().GetSampleSum(), float64(10*pieceLength)/10; got != want {
		t.Fatalf("speed sum %v, want %v", got, want)
	}
	ca := c.Aggregates().Countries["ZZ"]
	if ca.Bytes != 10*pieceLength || ca.Seconds != 70 {
		t.Fatalf("country aggregate %+v, want %d bytes over 70 s", ca, 10*pieceLength)
	}
}
