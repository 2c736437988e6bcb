package report

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

var (
	t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	h1 = metainfo.Hash{0xa1}
	h2 = metainfo.Hash{0xb2}
)

// session is one recorded probe session; unknown sessions give no progress reading.
type session struct {
	torrent     metainfo.Hash
	addr        string
	dir         probe.Direction
	src         discovery.Source
	first, last int // pieces of 100
	at          time.Duration
	unknown     bool
}

// recordStore writes the sessions through the collector (the confirmed-download rule and
// all) and returns the store's path.
func recordStore(t *testing.T, sessions []session) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "btda.db")
	c, err := collector.New(collector.Config{StorePath: path, RetryBackoff: time.Millisecond}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.AddTorrent(h1, 16384)
	c.AddTorrent(h2, 16384)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for _, s := range sessions {
		start := t0.Add(s.at)
		o := probe.Observation{Torrent: s.torrent, Addr: netip.MustParseAddrPort(s.addr), Direction: s.dir,
			Source: s.src, Start: start, NumPieces: 100, Outcome: probe.OutcomeOK,
			Timings: probe.Timings{Total: 30 * time.Second}}
		if s.unknown {
			o.Outcome = probe.OutcomeNoProgress
		} else {
			o.Known = true
			o.First = probe.Point{Pieces: s.first, At: start.Add(time.Second)}
			o.Last = probe.Point{Pieces: s.last, At: start.Add(21 * time.Second)}
		}
		if err := c.Record(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReportFromStore checks every figure against sessions whose outcome is known.
func TestReportFromStore(t *testing.T) {
	path := recordStore(t, []session{
		// A: read twice, crosses the threshold on its second contact (an hour later).
		{torrent: h1, addr: "127.1.0.1:6881", dir: probe.Outgoing, src: discovery.SourceTracker, first: 10, last: 20},
		{torrent: h1, addr: "127.1.0.1:6881", dir: probe.Outgoing, src: discovery.SourceTracker, first: 90, last: 99, at: time.Hour},
		// B: one reading at half.
		{torrent: h1, addr: "127.1.0.2:6881", dir: probe.Outgoing, src: discovery.SourceDHT, first: 50, last: 60},
		// C: reached but no progress.
		{torrent: h1, addr: "127.1.0.3:6881", dir: probe.Outgoing, src: discovery.SourcePEX, unknown: true},
		// D: a seed of the second torrent.
		{torrent: h2, addr: "127.1.0.4:6881", dir: probe.Outgoing, src: discovery.SourceTracker, first: 100, last: 100},
		// E: downloads the second torrent within one session, two hours in.
		{torrent: h2, addr: "127.1.0.5:6881", dir: probe.Outgoing, src: discovery.SourceTracker, first: 40, last: 100, at: 2 * time.Hour},
	})
	st, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := Build(context.Background(), StoreSource(st, path), metainfo.Hash{}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Torrents) != 2 || r.Live {
		t.Fatalf("%d torrents, live %v", len(r.Torrents), r.Live)
	}
	f1, f2 := r.Torrents[0], r.Torrents[1]
	if f1.Torrent.InfoHash != h1.String() {
		t.Fatalf("order: %s first", f1.Torrent.InfoHash)
	}
	cases := []struct {
		name      string
		got, want any
	}{
		{"all confirmed", r.All.Torrent.Confirmed, uint64(2)},
		{"all logged", r.All.Logged, uint64(2)},
		{"all peers", r.All.Peers, uint64(5)},
		{"all with a reading", r.All.WithPoint, uint64(4)},
		{"all read twice", r.All.Twice, uint64(1)},
		{"t1 confirmed", f1.Torrent.Confirmed, uint64(1)},
		{"t1 peers", f1.Peers, uint64(3)},
		{"t1 first-contact success", f1.FirstContactSuccess(), 2.0 / 3},
		{"t1 twice share", f1.TwiceShare(), 1.0 / 3},
		{"t1 first progress", f1.First, [11]uint64{1: 1, 5: 1}},
		{"t2 first progress", f2.First, [11]uint64{4: 1, 10: 1}},
		{"t1 sources", f1.Sources, map[string]uint64{"tracker": 1, "dht": 1, "pex": 1}},
		{"t2 confirmed", f2.Torrent.Confirmed, uint64(1)},
		{"t2 countries", f2.ByCountry(), []CountryRow{{Country: "ZZ", Continent: "ZZ", Confirmed: 1, Share: 1}}},
		{"t1 no speed", f1.NoSpeed, uint64(1)},
	}
	for _, c := range cases {
		if !equal(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	start, hours := r.All.PerHour(time.Time{})
	if !start.Equal(t0.Add(time.Hour)) || !equal(hours, []uint64{1, 1}) {
		t.Errorf("per hour: from %s %v", start, hours)
	}
	start, hours = f1.PerHour(t0.Add(3 * time.Hour))
	if !start.Equal(t0.Add(time.Hour)) || !equal(hours, []uint64{1, 0, 0}) {
		t.Errorf("t1 per hour until +3h: from %s %v", start, hours)
	}
	var speedPeers uint64
	for _, s := range r.All.Speeds() {
		speedPeers += s.Peers
	}
	if speedPeers+r.All.NoSpeed != r.All.Peers {
		t.Errorf("speed rows hold %d peers + %d without, of %d", speedPeers, r.All.NoSpeed, r.All.Peers)
	}

	var html, text bytes.Buffer
	if err := r.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="confirmed-all">2<`, `id="confirmed-` + h1.String() + `">1<`, `id="scrape-all">not stored<`,
		`id="peers-all">5<`, `id="twice-all">1 (20.0%)<`, `id="country-all-ZZ">2<`, `id="source-all-tracker">3<`, "<svg"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	bare := strings.ReplaceAll(html.String(), `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, bad := range []string{"http://", "https://", "<script", "<link", "<img"} {
		if strings.Contains(bare, bad) {
			t.Errorf("HTML is not self-contained: %q", bad)
		}
	}
	for _, want := range []string{"confirmed downloads: 2 (download log: 2)", "scrape downloaded: not stored", "first-contact success 80.0%", "top countries: ZZ 2"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}

	// One torrent only.
	r, err = Build(context.Background(), StoreSource(st, path), h2, t0)
	if err != nil || len(r.Torrents) != 1 || r.All.Peers != 2 || r.All.Torrent.Confirmed != 1 {
		t.Fatalf("--torrent: %v %+v", err, r)
	}
	if _, err := Build(context.Background(), StoreSource(st, path), metainfo.Hash{9}, t0); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown torrent: %v", err)
	}
}

func equal(a, b any) bool { return reflect.DeepEqual(a, b) }
