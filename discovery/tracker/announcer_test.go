package tracker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const testLength = 5_000_000_123 // > 4 GiB: left must be bytes, 64-bit

func testTorrent(urls ...string) discovery.TorrentInfo {
	return discovery.TorrentInfo{Hash: testHash, Label: "t1", Length: testLength, Tiers: [][]string{urls}}
}

// TestHTTPAnnounceSequence: started once, then no event, then stopped on shutdown; left
// in bytes, uploaded/downloaded 0, port, key, peer id and tracker id as specified.
func TestHTTPAnnounceSequence(t *testing.T) {
	checkGoroutines(t)
	f := newFakeHTTP(t, "127.0.0.1", nil)
	f.announce = func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/scrape") {
			goodScrape(w, r)
			return
		}
		w.Write(mustBenc(map[string]any{"interval": 0, "tracker id": "tid-1", "peers": compact4(testPeers)}))
	}
	log, _ := testLogger()
	var results []Result
	cfg := fastConfig(log)
	resCh := make(chan Result, 100)
	cfg.OnResult = func(r Result) {
		select {
		case resCh <- r:
		default:
		}
	}
	r := startAnnouncer(t, cfg, testTorrent(f.URL))
	waitFor(t, "4 announces", func() bool { return f.count() >= 4 })
	waitFor(t, "sightings", func() bool { return r.nSightings() >= 2 })
	r.stop()
	for len(resCh) > 0 {
		results = append(results, <-resCh)
	}

	reqs := f.requests()
	if len(reqs) < 5 {
		t.Fatalf("%d announces", len(reqs))
	}
	wantHash := "info_hash=%00%20-._~Az0%FF%25%2B%26%3D%3F%2F%80%12a9&peer_id=-BD0001-"
	key := reqs[0].q.Get("key")
	for i, rq := range reqs {
		wantEvent := ""
		switch i {
		case 0:
			wantEvent = "started"
		case len(reqs) - 1:
			wantEvent = "stopped"
		}
		if got := rq.q.Get("event"); got != wantEvent {
			t.Errorf("announce %d: event=%q, want %q", i, got, wantEvent)
		}
		if !strings.HasPrefix(rq.raw, wantHash) {
			t.Errorf("announce %d: query %q does not start %q", i, rq.raw, wantHash)
		}
		for k, want := range map[string]string{"left": "5000000123", "uploaded": "0", "downloaded": "0",
			"port": "65001", "compact": "1", "numwant": "200", "key": key} {
			if got := rq.q.Get(k); got != want {
				t.Errorf("announce %d: %s=%q, want %q", i, k, got, want)
			}
		}
		if wantTID := map[bool]string{true: "", false: "tid-1"}[i == 0]; rq.q.Get("trackerid") != wantTID {
			t.Errorf("announce %d: trackerid=%q, want %q", i, rq.q.Get("trackerid"), wantTID)
		}
	}
	if len(key) != 8 {
		t.Errorf("key %q", key)
	}
	r.mu.Lock()
	for _, s := range r.sightings {
		if s.Source != discovery.SourceTracker || s.Torrent != testHash || (s.Addr != testPeers[0] && s.Addr != testPeers[1]) {
			t.Errorf("bad sighting %+v", s)
		}
	}
	r.mu.Unlock()
	if len(results) == 0 || results[0].Event != EventStarted || results[0].Announce == nil ||
		results[0].Scrape == nil || *results[0].Scrape != (ScrapeResponse{3, 4, 5}) {
		t.Errorf("first OnResult: %+v", results)
	}
	lbl := "127.0.0.1"
	if got := testutil.ToFloat64(r.a.c.m.requests.WithLabelValues(lbl, KindAnnounce)); int(got) != len(reqs) {
		t.Errorf("requests_total{announce} = %v, want %d", got, len(reqs))
	}
	if got := testutil.ToFloat64(r.a.c.m.peers.WithLabelValues(lbl)); got < 2 {
		t.Errorf("peers_received_total = %v", got)
	}
	if got := testutil.ToFloat64(r.a.c.m.lastSuccess.WithLabelValues(lbl)); got < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last_success = %v", got)
	}
}

// TestUDPAnnounceSequence: the same over UDP, plus connection id reuse.
func TestUDPAnnounceSequence(t *testing.T) {
	checkGoroutines(t)
	f := newFakeUDP(t, "127.0.0.1", nil)
	log, _ := testLogger()
	r := startAnnouncer(t, fastConfig(log), testTorrent(f.URL))
	waitFor(t, "4 announces", func() bool { return len(f.announceReqs()) >= 4 })
	waitFor(t, "sightings", func() bool { return r.nSightings() >= 2 })
	r.stop()
	reqs := f.announceReqs()
	for i, rq := range reqs {
		var want uint32
		switch i {
		case 0:
			want = 2
		case len(reqs) - 1:
			want = 3
		}
		if rq.event != want {
			t.Errorf("announce %d: event %d, want %d", i, rq.event, want)
		}
		if rq.left != testLength || rq.uploaded != 0 || rq.downloaded != 0 || rq.port != 65001 ||
			rq.hash != testHash || rq.key != reqs[0].key || rq.numWant != 200 || rq.connID != fakeConnID ||
			!strings.HasPrefix(string(rq.peerID[:]), "-BD0001-") {
			t.Errorf("announce %d: %+v", i, rq)
		}
	}
	if n := f.connectCount(); n != 1 {
		t.Errorf("%d connects for %d announces within a minute; the connection id must be reused", n, len(reqs))
	}
	if got := testutil.ToFloat64(r.a.c.m.seeders.WithLabelValues("t1", "127.0.0.1")); got != 0 {
		// gauges are deleted when the torrent's workers exit; they existed while running
		t.Logf("seeders gauge after stop: %v", got)
	}
}

// TestMinIntervalHonoured: a configured interval of 5 ms never beats the tracker's
// `min interval` of 1 s.
func TestMinIntervalHonoured(t *testing.T) {
	checkGoroutines(t)
	f := newFakeHTTP(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		w.Write(mustBenc(map[string]any{"interval": 1800, "min interval": 1, "peers": ""}))
	})
	log, _ := testLogger()
	r := startAnnouncer(t, fastConfig(log), testTorrent(f.URL))
	waitFor(t, "2 announces", func() bool { return f.count() >= 2 })
	reqs := f.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
		t.Errorf("second announce %v after the first; min interval is 1 s", gap)
	}
	if got := testutil.ToFloat64(r.a.c.m.interval.WithLabelValues("127.0.0.1")); got != 1 {
		t.Errorf("interval_seconds = %v, want 1", got)
	}
}

// TestShutdownWithBlockedConsumer: nobody reads the sightings channel; Run still returns
// once ctx is cancelled, after sending stopped.
func TestShutdownWithBlockedConsumer(t *testing.T) {
	checkGoroutines(t)
	f := newFakeHTTP(t, "127.0.0.1", nil)
	log, _ := testLogger()
	out := make(chan discovery.Sighting) // never read
	cfg := fastConfig(log)
	cfg.StopTimeout = time.Minute // a busy machine must not make the stopped announce time out
	// The client owes a stopped announce once its started one has succeeded: wait for that,
	// not for the tracker to have seen the request (it may be cancelled in between).
	started := make(chan struct{}, 1)
	cfg.OnResult = func(r Result) {
		if r.Event == EventStarted && r.AnnounceErr == nil {
			select {
			case started <- struct{}{}:
			default:
			}
		}
	}
	a, err := NewAnnouncer(cfg, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(testTorrent(f.URL)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("no successful started announce within a minute")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if last := reqs[len(reqs)-1].q.Get("event"); last != "stopped" {
		t.Errorf("last event %q, want stopped", last)
	}
	if err := a.Add(testTorrent(f.URL)); err == nil {
		t.Error("Add after Run returned succeeded")
	}
}

// TestAddRemove: torrents come and go at runtime; Remove sends stopped and drops the
// torrent's scrape gauges.
func TestAddRemove(t *testing.T) {
	checkGoroutines(t)
	f := newFakeHTTP(t, "127.0.0.1", nil)
	log, _ := testLogger()
	r := startAnnouncer(t, fastConfig(log))
	ti := testTorrent(f.URL)
	if err := r.a.Add(discovery.TorrentInfo{Tiers: ti.Tiers}); err == nil {
		t.Error("zero hash accepted")
	}
	if err := r.a.Add(ti); err != nil {
		t.Fatal(err)
	}
	if err := r.a.Add(ti); err == nil {
		t.Error("duplicate Add accepted")
	}
	waitFor(t, "scrape gauge", func() bool {
		return testutil.CollectAndCount(r.a.c.m.seeders) == 1
	})
	r.a.Remove(testHash)
	waitFor(t, "stopped", func() bool {
		reqs := f.requests()
		return reqs[len(reqs)-1].q.Get("event") == "stopped"
	})
	waitFor(t, "gauges gone", func() bool { return testutil.CollectAndCount(r.a.c.m.seeders) == 0 })
	n := f.count()
	r.a.Remove(testHash) // no-op
	if err := r.a.Add(ti); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restart", func() bool { return f.count() > n })
	if ev := f.requests()[n].q.Get("event"); ev != "started" {
		t.Errorf("re-added torrent's first event %q", ev)
	}
	// Remove and Add at once: the new started must follow the old stopped.
	waitFor(t, "a periodic announce", func() bool { return f.count() > n+1 })
	r.a.Remove(testHash)
	if err := r.a.Add(ti); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second restart", func() bool {
		for _, rq := range f.requests()[n+1:] {
			if rq.q.Get("event") == "started" {
				return true
			}
		}
		return false
	})
	var events []string
	for _, rq := range f.requests()[n+1:] {
		if ev := rq.q.Get("event"); ev != "" {
			events = append(events, ev)
		}
	}
	if len(events) < 2 || events[0] != "stopped" || events[1] != "started" {
		t.Errorf("events after Remove+Add: %v, want stopped then started", events)
	}
}

// TestMultiTracker: every URL of every tier is announced to; duplicates and unsupported
// URLs are skipped.
func TestMultiTracker(t *testing.T) {
	checkGoroutines(t)
	h1 := newFakeHTTP(t, "127.0.0.1", nil)
	h2 := newFakeHTTP(t, "127.0.0.2", nil)
	u1 := newFakeUDP(t, "127.0.0.3", nil)
	log, buf := testLogger()
	ti := discovery.TorrentInfo{Hash: testHash, Length: 1, Tiers: [][]string{{h1.URL, "wss://x.example/announce", ""}, {u1.URL, h1.URL + " "}, {h2.URL}}}
	r := startAnnouncer(t, fastConfig(log), ti)
	waitFor(t, "all trackers", func() bool { return h1.count() >= 2 && h2.count() >= 2 && len(u1.announceReqs()) >= 2 })
	r.stop()
	if !strings.Contains(buf.String(), "skipping unsupported tracker URL") {
		t.Error("no log line for the wss:// URL")
	}
	urls, bad := TrackerURLs(ti)
	if len(urls) != 3 || len(bad) != 1 {
		t.Errorf("TrackerURLs = %v, %v", urls, bad)
	}
}

// TestFaults: each fault mode fails with the right reason, logs it, retries with back-off,
// and leaves the good tracker of the same torrent working.
func TestFaults(t *testing.T) {
	const maxBody = 4096
	garbage := func(body string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }
	}
	udpFault := func(mk func(action, tid uint32, good []byte) [][]byte) func(action, tid uint32, good []byte) [][]byte {
		return func(action, tid uint32, good []byte) [][]byte {
			if action == udpActConnect {
				return [][]byte{good}
			}
			return mk(action, tid, good)
		}
	}
	tests := []struct {
		name   string
		http   func(w http.ResponseWriter, r *http.Request)
		udp    func(action, tid uint32, good []byte) [][]byte
		reason Reason
		log    string
	}{
		{name: "failure reason", http: garbage("d14:failure reason12:unregisterede"), reason: ReasonFailure, log: "unregistered"},
		{name: "HTTP 500", http: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) }, reason: ReasonHTTPStatus, log: "500"},
		{name: "HTTP 404 with failure reason", http: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			w.Write([]byte("d14:failure reason9:not founde"))
		}, reason: ReasonFailure, log: "not found"},
		{name: "redirect loop", http: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.String(), http.StatusFound)
		}, reason: ReasonRedirects, log: "more than 5 redirects"},
		{name: "huge body", http: garbage(strings.Repeat("x", maxBody+1)), reason: ReasonBodyTooLarge, log: "larger than 4096"},
		{name: "garbage body", http: garbage("<html>oops</html>"), reason: ReasonBadResponse, log: "unexpected byte"},
		{name: "non-dictionary", http: garbage("li1ei2ee"), reason: ReasonBadResponse, log: "not a dictionary"},
		{name: "slow reply", http: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}, reason: ReasonTimeout, log: "no reply within"},
		{name: "not HTTP", http: func(w http.ResponseWriter, r *http.Request) {
			c, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			buf.WriteString("SSH-2.0-OpenSSH_9.2\r\n\r\n")
			buf.Flush()
			c.Close()
		}, reason: ReasonBadResponse, log: "malformed HTTP"},
		{name: "UDP truncated", udp: udpFault(func(_, tid uint32, good []byte) [][]byte { return [][]byte{good[:5]} }),
			reason: ReasonBadResponse, log: "5-byte packet"},
		{name: "UDP short announce", udp: udpFault(func(_, tid uint32, good []byte) [][]byte { return [][]byte{good[:12]} }),
			reason: ReasonBadResponse, log: "announce reply of 12 bytes"},
		{name: "UDP wrong transaction id", udp: udpFault(func(_, tid uint32, good []byte) [][]byte {
			g := append([]byte(nil), good...)
			g[7] ^= 0xff
			return [][]byte{g}
		}), reason: ReasonBadResponse, log: "unknown transaction id"},
		{name: "UDP wrong action", udp: udpFault(func(_, tid uint32, good []byte) [][]byte {
			g := append([]byte(nil), good...)
			g[3] = 7
			return [][]byte{g}
		}), reason: ReasonBadResponse, log: "reply with action 7"},
		{name: "UDP error action", udp: udpFault(func(_, tid uint32, good []byte) [][]byte {
			return [][]byte{append([]byte{0, 0, 0, 3, byte(tid >> 24), byte(tid >> 16), byte(tid >> 8), byte(tid)}, "unregistered torrent"...)}
		}), reason: ReasonFailure, log: "unregistered torrent"},
		{name: "UDP silent", udp: udpFault(func(uint32, uint32, []byte) [][]byte { return nil }), reason: ReasonTimeout, log: "no reply in 2 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			good := newFakeHTTP(t, "127.0.0.1", nil)
			var badURL string
			if tt.http != nil {
				badURL = newFakeHTTP(t, "127.0.0.2", tt.http).URL
			} else {
				badURL = newFakeUDP(t, "127.0.0.2", tt.udp).URL
			}
			log, buf := testLogger()
			cfg := fastConfig(log)
			cfg.MaxBodyBytes = maxBody
			if tt.name == "slow reply" {
				cfg.HTTPTimeout = 100 * time.Millisecond
			}
			r := startAnnouncer(t, cfg, testTorrent(badURL, good.URL))
			fails := r.a.c.m.failures.WithLabelValues("127.0.0.2", KindAnnounce, string(tt.reason))
			waitFor(t, "two failures with reason "+string(tt.reason), func() bool { return testutil.ToFloat64(fails) >= 2 })
			n := good.count()
			waitFor(t, "the good tracker to keep going", func() bool { return good.count() > n+1 })
			r.stop()
			logs := buf.String()
			wantLine := fmt.Sprintf("reason=%s", tt.reason)
			found := false
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `msg="tracker announce failed"`) && strings.Contains(line, wantLine) &&
					strings.Contains(line, tt.log) && strings.Contains(line, "component=tracker") {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("no log line with %q and %q in:\n%s", wantLine, tt.log, clip(logs, 4000))
			}
			for _, other := range Reasons {
				if other == tt.reason || other == ReasonCanceled {
					continue
				}
				if v := testutil.ToFloat64(r.a.c.m.failures.WithLabelValues("127.0.0.2", KindAnnounce, string(other))); v != 0 {
					t.Errorf("failures{reason=%s} = %v, want 0", other, v)
				}
			}
			if v := testutil.ToFloat64(r.a.c.m.failures.WithLabelValues("127.0.0.1", KindAnnounce, string(tt.reason))); v != 0 {
				t.Errorf("the good tracker has %v failures", v)
			}
		})
	}
}

// TestUDPRetransmit: a tracker that drops the first announce is answered on the
// retransmission, with the same transaction id.
func TestUDPRetransmit(t *testing.T) {
	checkGoroutines(t)
	dropped := 0
	f := newFakeUDP(t, "127.0.0.1", func(action, tid uint32, good []byte) [][]byte {
		if action == udpActAnnounce && dropped == 0 {
			dropped++
			return nil
		}
		return [][]byte{good}
	})
	m, _ := newMetrics(nil)
	cfg := fastConfig(nil)
	c := newCore(cfg, m)
	defer c.close()
	resp, err := c.announce(context.Background(), f.URL, AnnounceRequest{Hash: testHash, Event: EventStarted})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 2 || resp.Seeders != 2 || resp.Leechers != 7 {
		t.Errorf("resp %+v", resp)
	}
	reqs := f.announceReqs()
	if len(reqs) != 2 || reqs[0].tid != reqs[1].tid {
		t.Errorf("announces %+v: want 2 with one transaction id", reqs)
	}
}

func TestAnnounceOnce(t *testing.T) {
	checkGoroutines(t)
	h := newFakeHTTP(t, "127.0.0.1", nil)
	u := newFakeUDP(t, "127.0.0.2", nil)
	bad := newFakeHTTP(t, "127.0.0.3", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("d14:failure reason3:no!e")) })
	ti := discovery.TorrentInfo{Hash: testHash, Length: 10, Tiers: [][]string{{h.URL + "?passkey=secret"}, {u.URL, bad.URL, "ftp://x/announce"}}}
	res := AnnounceOnce(context.Background(), fastConfig(nil), ti, true)
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for i, want := range []struct {
		peers  int
		scrape bool
		reason Reason
	}{{2, true, ""}, {2, true, ""}, {0, false, ReasonFailure}, {0, false, ReasonProtocol}} {
		r := res[i]
		if ReasonOf(r.AnnounceErr) != want.reason || (r.Announce != nil) != (want.reason == "") ||
			(r.Announce != nil && len(r.Announce.Peers) != want.peers) || (r.Scrape != nil) != want.scrape {
			t.Errorf("result %d (%s): %+v", i, Redact(r.URL), r)
		}
		if r.AnnounceErr != nil && strings.Contains(r.AnnounceErr.Error(), "secret") {
			t.Errorf("error leaks the passkey: %v", r.AnnounceErr)
		}
	}
	if ev := h.requests(); len(ev) != 2 || ev[0].q.Get("event") != "started" || ev[1].q.Get("event") != "stopped" || ev[0].q.Get("passkey") != "secret" {
		t.Errorf("HTTP announces %v", ev)
	}
	if ev := u.announceReqs(); len(ev) != 2 || ev[0].event != 2 || ev[1].event != 3 {
		t.Errorf("UDP announces %+v", ev)
	}
	if got := bad.count(); got != 1 {
		t.Errorf("failed tracker got %d announces, want 1 (no stopped after a refused started)", got)
	}
}

// TestRetryInNever: a tracker that answers `retry in: never` (BEP 31) is asked once, and
// the warning message of a working tracker is logged.
func TestRetryInNever(t *testing.T) {
	checkGoroutines(t)
	never := newFakeHTTP(t, "127.0.0.2", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("d14:failure reason14:not registered8:retry in5:nevere"))
	})
	good := newFakeHTTP(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/scrape") {
			goodScrape(w, r)
			return
		}
		w.Write(mustBenc(map[string]any{"warning message": "ratio low", "peers": ""}))
	})
	log, buf := testLogger()
	startAnnouncer(t, fastConfig(log), testTorrent(never.URL, good.URL))
	waitFor(t, "the good tracker's rounds", func() bool { return good.count() >= 5 })
	if n := never.count(); n != 1 {
		t.Errorf("the never-retry tracker was asked %d times", n)
	}
	logs := buf.String()
	for _, want := range []string{"retry in: never", "tracker asked never to retry", `warning="ratio low"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
