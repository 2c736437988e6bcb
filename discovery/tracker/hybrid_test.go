package tracker

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest/swarmtracker"
)

// testHashV2 stands for a hybrid's truncated v2 hash (testHash its v1 hash).
var testHashV2 = metainfo.Hash{0xb2, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14}

func hybridTorrent(urls ...string) discovery.TorrentInfo {
	ti := testTorrent(urls...)
	ti.Hashes = []metainfo.Hash{testHash, testHashV2}
	return ti
}

func eventsOf(anns []swarmtracker.Announce) []string {
	out := make([]string, len(anns))
	for i, a := range anns {
		out[i] = a.Event
	}
	return out
}

// TestHybridAnnouncedUnderBothHashes: a hybrid is announced to HTTP and UDP trackers under
// its v1 hash and its truncated v2 hash (started, then stopped, under each); the peers of
// both swarms come as sightings of the one torrent, each address once per round; the
// scrape gauges show the larger figures of the two hashes; the request counters count
// both hashes' requests.
func TestHybridAnnouncedUnderBothHashes(t *testing.T) {
	v1Only := netip.MustParseAddrPort("127.3.0.1:6881")
	both := netip.MustParseAddrPort("127.3.0.2:6882")
	v2Only := netip.MustParseAddrPort("127.3.0.3:6883")
	for _, proto := range []string{"http", "udp"} {
		t.Run(proto, func(t *testing.T) {
			checkGoroutines(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tr, err := swarmtracker.Start(ctx, swarmtracker.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			tr.SetPeers(testHash, []netip.AddrPort{v1Only, both})
			tr.SetPeers(testHashV2, []netip.AddrPort{both, v2Only})
			tr.SetScrape(testHash, 5, 1, 10)
			tr.SetScrape(testHashV2, 2, 7, 3)
			u := tr.AnnounceURL()
			if proto == "udp" {
				u = tr.UDPAnnounceURL()
			}
			log, _ := testLogger()
			cfg := fastConfig(log)
			results := make(chan Result, 10)
			cfg.OnResult = func(r Result) { results <- r }
			r := startAnnouncer(t, cfg, hybridTorrent(u))
			first := <-results // the tracker's 30-minute interval leaves one round before stop
			waitFor(t, "3 sightings", func() bool { return r.nSightings() >= 3 })
			lbl := "127.0.0.1"
			for name, g := range map[string]float64{
				"seeders":    testutil.ToFloat64(r.a.c.m.seeders.WithLabelValues("t1", lbl)),
				"leechers":   testutil.ToFloat64(r.a.c.m.leechers.WithLabelValues("t1", lbl)),
				"downloaded": testutil.ToFloat64(r.a.c.m.downloaded.WithLabelValues("t1", lbl)),
			} {
				if wantV := map[string]float64{"seeders": 5, "leechers": 7, "downloaded": 10}[name]; g != wantV {
					t.Errorf("scrape_%s = %v, want %v", name, g, wantV)
				}
			}
			r.stop()

			for _, h := range []metainfo.Hash{testHash, testHashV2} {
				if got := eventsOf(tr.AnnouncesFor(h)); !slices.Equal(got, []string{"started", "stopped"}) {
					t.Errorf("announces under %s: events %q, want started, stopped", h, got)
				}
			}
			if first.Event != EventStarted || first.Torrent != testHash || len(first.Hashes) != 2 ||
				first.Hashes[0].Hash != testHash || first.Hashes[1].Hash != testHashV2 {
				t.Fatalf("first round %+v", first)
			}
			want := []netip.AddrPort{v1Only, both, v2Only}
			if first.Announce == nil || !slices.Equal(sortedPeers(first.Announce.Peers), want) {
				t.Errorf("merged peers %v, want %v (each once)", first.Announce, want)
			}
			r.mu.Lock()
			var got []netip.AddrPort
			for _, s := range r.sightings {
				// Each under the first hash that found it, the ID first: the v2-only peer
				// under the v2 hash, which the daemon will handshake it with.
				want := testHash
				if s.Addr == v2Only {
					want = testHashV2
				}
				if s.Torrent != want || s.Source != discovery.SourceTracker {
					t.Errorf("sighting %+v: want torrent %s", s, want)
				}
				got = append(got, s.Addr)
			}
			r.mu.Unlock()
			if !slices.Equal(sortedPeers(got), want) {
				t.Errorf("sightings %v, want %v, each once", got, want)
			}
			if first.Scrape == nil || *first.Scrape != (ScrapeResponse{Seeders: 5, Leechers: 7, Downloaded: 10}) {
				t.Errorf("merged scrape %+v, want the larger of each figure", first.Scrape)
			}
			if got, n := testutil.ToFloat64(r.a.c.m.requests.WithLabelValues(lbl, KindAnnounce)), len(tr.Announces()); int(got) != n {
				t.Errorf("requests_total{announce} = %v, want %d (both hashes' requests)", got, n)
			}
			if got, n := testutil.ToFloat64(r.a.c.m.requests.WithLabelValues(lbl, KindScrape)), len(tr.Scrapes()); int(got) != n || n != 2 {
				t.Errorf("requests_total{scrape} = %v, %d scrapes recorded; want 2", got, n)
			}
			if rej := tr.Rejections(); len(rej) != 0 {
				t.Errorf("tracker rejected our requests: %+v", rej)
			}
		})
	}
}

// TestHybridHashBacksOffAlone: a tracker that refuses the v2 hash (a private tracker that
// registered the v1 hash only) delays only the v2 announces; the v1 hash keeps its own
// schedule and the round's result counts as a success.
func TestHybridHashBacksOffAlone(t *testing.T) {
	checkGoroutines(t)
	var mu sync.Mutex
	byHash := map[metainfo.Hash]int{}
	f := newFakeHTTP(t, "127.0.0.1", nil)
	f.announce = func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/scrape") {
			goodScrape(w, r)
			return
		}
		q, _ := url.ParseQuery(r.URL.RawQuery)
		var h metainfo.Hash
		copy(h[:], q.Get("info_hash"))
		mu.Lock()
		byHash[h]++
		mu.Unlock()
		if h == testHashV2 {
			w.Write(mustBenc(map[string]any{"failure reason": "unregistered torrent"}))
			return
		}
		w.Write(mustBenc(map[string]any{"interval": 0, "peers": compact4(testPeers)}))
	}
	log, _ := testLogger()
	cfg := fastConfig(log)
	cfg.RetryBase, cfg.RetryMax = time.Hour, time.Hour // v2 is retried only after an hour
	results := make(chan Result, 1000)
	cfg.OnResult = func(r Result) {
		select {
		case results <- r:
		default:
		}
	}
	r := startAnnouncer(t, cfg, hybridTorrent(f.URL))
	waitFor(t, "5 v1 announces", func() bool { mu.Lock(); defer mu.Unlock(); return byHash[testHash] >= 5 })
	r.stop()
	mu.Lock()
	if n := byHash[testHashV2]; n != 1 {
		t.Errorf("%d announces under the refused v2 hash, want 1 (then its own back-off)", n)
	}
	mu.Unlock()
	res := <-results
	if res.AnnounceErr != nil || res.Announce == nil || len(res.Hashes) != 2 || res.Hashes[1].AnnounceErr == nil {
		t.Errorf("first round %+v: want a success with the v2 hash's failure in Hashes", res)
	}
	for len(results) > 0 {
		if res := <-results; len(res.Hashes) != 1 || res.Hashes[0].Hash != testHash {
			t.Errorf("later round %+v: want the v1 hash alone", res.Hashes)
		}
	}
	if got := testutil.ToFloat64(r.a.c.m.failures.WithLabelValues("127.0.0.1", KindAnnounce, string(ReasonFailure))); got != 1 {
		t.Errorf("announce failures{failure} = %v, want 1", got)
	}
}

// TestAnnounceOnceHybrid: `btda announce` sees each hash apart and merged.
func TestAnnounceOnceHybrid(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr, err := swarmtracker.Start(ctx, swarmtracker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	v2Peer := netip.MustParseAddrPort("127.3.0.9:6889")
	tr.SetPeers(testHashV2, []netip.AddrPort{v2Peer})
	res := AnnounceOnce(ctx, fastConfig(nil), hybridTorrent(tr.UDPAnnounceURL()), true)
	if len(res) != 1 || len(res[0].Hashes) != 2 {
		t.Fatalf("results %+v", res)
	}
	h1, h2 := res[0].Hashes[0], res[0].Hashes[1]
	if h1.Hash != testHash || h1.AnnounceErr != nil || len(h1.Announce.Peers) != 0 {
		t.Errorf("v1 hash: %+v", h1)
	}
	if h2.Hash != testHashV2 || h2.AnnounceErr != nil || !slices.Equal(h2.Announce.Peers, []netip.AddrPort{v2Peer}) || h2.Scrape == nil {
		t.Errorf("v2 hash: %+v", h2)
	}
	if res[0].Announce == nil || !slices.Equal(res[0].Announce.Peers, []netip.AddrPort{v2Peer}) {
		t.Errorf("merged: %+v", res[0].Announce)
	}
	for _, h := range []metainfo.Hash{testHash, testHashV2} {
		if got := eventsOf(tr.AnnouncesFor(h)); !slices.Equal(got, []string{"started", "stopped"}) {
			t.Errorf("announces under %s: %q", h, got)
		}
	}
}

func TestNextDue(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name  string
		sts   []hashState
		want  time.Duration
		wantL bool
	}{
		{"one hash", []hashState{{due: now.Add(time.Minute)}}, time.Minute, true},
		{"earliest wins", []hashState{{due: now.Add(time.Hour)}, {due: now.Add(time.Minute)}}, time.Minute, true},
		{"overdue is now", []hashState{{due: now.Add(-time.Minute)}}, 0, true},
		{"never skipped", []hashState{{due: now.Add(time.Second), trackerState: trackerState{never: true}}, {due: now.Add(time.Hour)}}, time.Hour, true},
		{"all never", []hashState{{trackerState: trackerState{never: true}}, {trackerState: trackerState{never: true}}}, 0, false},
	}
	for _, tt := range tests {
		if got, live := nextDue(tt.sts, now); got != tt.want || live != tt.wantL {
			t.Errorf("%s: nextDue = %v, %v; want %v, %v", tt.name, got, live, tt.want, tt.wantL)
		}
	}
}
