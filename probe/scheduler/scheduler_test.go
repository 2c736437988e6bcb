package scheduler

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

// harness drives a Scheduler step by step: dispatch records launches instead of starting
// goroutines, and the test finishes sessions by hand.
type harness struct {
	t        *testing.T
	clk      *fakeClock
	s        *Scheduler
	launched []launch
}

type launch struct {
	idx uint32
	t   Target
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, clk: newFakeClock()}
	cfg.Clock = h.clk
	if cfg.Probe == nil {
		cfg.Probe = func(context.Context, Target) probe.Observation {
			t.Error("step-mode harness must not run a probe")
			return probe.Observation{}
		}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.launch = func(_ context.Context, i uint32, tg Target) { h.launched = append(h.launched, launch{i, tg}) }
	h.s = s
	for i := range 4 {
		if err := s.AddTorrent(hash(i), 98); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// step dispatches and returns the sessions started.
func (h *harness) step() []launch {
	h.t.Helper()
	h.s.dispatch(context.Background())
	if err := h.s.check(); err != nil {
		h.t.Fatal(err)
	}
	l := h.launched
	h.launched = nil
	return l
}

// stepOne dispatches and expects exactly one session, to addr.
func (h *harness) stepOne(want netip.AddrPort) launch {
	h.t.Helper()
	l := h.step()
	if len(l) != 1 || l[0].t.Addr != want {
		h.t.Fatalf("at %v: launched %v, want one session to %v", h.clk.Now().Sub(h.s.base), targets(l), want)
	}
	return l[0]
}

func (h *harness) stepNone() {
	h.t.Helper()
	if l := h.step(); len(l) != 0 {
		h.t.Fatalf("at %v: launched %v, want none", h.clk.Now().Sub(h.s.base), targets(l))
	}
}

func (h *harness) finish(l launch, o probe.Outcome, mod ...func(*probe.Observation)) {
	obs := probe.Observation{Torrent: l.t.Torrent, Addr: l.t.Addr, Outcome: o, Direction: probe.Outgoing}
	for _, m := range mod {
		m(&obs)
	}
	h.s.finish(l.idx, l.t, obs)
}

func (h *harness) add(tor int, addr string, src discovery.Source) bool {
	return h.s.Add(discovery.Sighting{Torrent: hash(tor), Addr: ap(addr), Source: src})
}

func targets(l []launch) []string {
	var s []string
	for _, x := range l {
		s = append(s, fmt.Sprintf("%v/%x", x.t.Addr, x.t.Torrent[0]))
	}
	return s
}

func hash(i int) metainfo.Hash {
	var h metainfo.Hash
	h[0] = byte(i + 1)
	h[19] = 0xaa
	return h
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func pieces(n int) func(*probe.Observation) {
	return func(o *probe.Observation) {
		o.Known = true
		o.Last.Pieces = n
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	probeFn := func(context.Context, Target) probe.Observation { return probe.Observation{} }
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no probe", Config{}},
		{"negative revisit", Config{Probe: probeFn, RevisitDelay: -1}},
		{"negative in flight", Config{Probe: probeFn, MaxInFlight: -1}},
		{"negative grace", Config{Probe: probeFn, ShutdownGrace: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	s, err := New(Config{Probe: probeFn})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddTorrent(metainfo.Hash{}, 1); err == nil {
		t.Error("AddTorrent accepted a zero hash")
	}
	if err := s.AddTorrent(hash(0), -1); err == nil {
		t.Error("AddTorrent accepted a negative threshold")
	}
}

func TestDedupAcrossSources(t *testing.T) {
	h := newHarness(t, Config{})
	steps := []struct {
		tor  int
		addr string
		src  discovery.Source
		new  bool
	}{
		{0, "10.0.0.1:6881", discovery.SourceTracker, true},
		{0, "10.0.0.1:6881", discovery.SourceDHT, false},
		{0, "10.0.0.1:6881", discovery.SourceTracker, false},
		{0, "[::ffff:10.0.0.1]:6881", discovery.SourcePEX, false}, // v4-mapped is the same peer
		{0, "10.0.0.1:6882", discovery.SourceDHT, true},           // other port: other identity
		{1, "10.0.0.1:6881", discovery.SourceDHT, true},           // other torrent
		{0, "[2001:db8::1]:6881", discovery.SourceMagnet, true},
	}
	for i, st := range steps {
		if got := h.add(st.tor, st.addr, st.src); got != st.new {
			t.Errorf("step %d (%v %s): new = %v, want %v", i, st.addr, st.src, got, st.new)
		}
	}
	st := h.s.Stats()
	wantRecv := map[discovery.Source]uint64{discovery.SourceTracker: 2, discovery.SourceDHT: 3, discovery.SourcePEX: 1, discovery.SourceMagnet: 1}
	wantNew := map[discovery.Source]uint64{discovery.SourceTracker: 1, discovery.SourceDHT: 2, discovery.SourceMagnet: 1}
	for _, src := range discovery.Sources {
		if st.Received[src] != wantRecv[src] || st.New[src] != wantNew[src] {
			t.Errorf("%s: received/new = %d/%d, want %d/%d", src, st.Received[src], st.New[src], wantRecv[src], wantNew[src])
		}
	}
	if st.Known != 4 || st.Queued != 4 || st.Due != 4 {
		t.Errorf("known/queued/due = %d/%d/%d, want 4/4/4", st.Known, st.Queued, st.Due)
	}
	// The first peer's target carries its first source and every source that saw it.
	for _, l := range h.step() {
		if l.t.Addr == ap("10.0.0.1:6881") && l.t.Torrent == hash(0) {
			if l.t.Source != discovery.SourceTracker || !l.t.Sources.Has(discovery.SourceDHT) ||
				!l.t.Sources.Has(discovery.SourcePEX) || l.t.Sources.Has(discovery.SourceMagnet) {
				t.Errorf("target source %s, sources %08b", l.t.Source, l.t.Sources)
			}
		}
	}
}

func TestRejectedSightings(t *testing.T) {
	h := newHarness(t, Config{})
	for _, sg := range []discovery.Sighting{
		{Torrent: hash(0), Addr: ap("10.0.0.1:0"), Source: discovery.SourceTracker},
		{Torrent: hash(0), Addr: netip.AddrPort{}, Source: discovery.SourceTracker},
		{Torrent: hash(0), Addr: ap("0.0.0.0:80"), Source: discovery.SourceTracker},
		{Torrent: hash(0), Addr: ap("224.0.0.1:80"), Source: discovery.SourceTracker},
		{Torrent: hash(0), Addr: ap("10.0.0.1:80"), Source: 0},
		{Torrent: hash(0), Addr: ap("10.0.0.1:80"), Source: 99},
	} {
		if h.s.Add(sg) {
			t.Errorf("accepted %+v", sg)
		}
	}
	if h.s.Add(discovery.Sighting{Torrent: hash(9), Addr: ap("10.0.0.1:80"), Source: discovery.SourceDHT}) {
		t.Error("accepted a sighting for an unwatched torrent")
	}
	st := h.s.Stats()
	if st.Rejected != 6 || st.UnknownTorrent != 1 || st.Known != 0 {
		t.Errorf("rejected %d, unknown torrent %d, known %d; want 6, 1, 0", st.Rejected, st.UnknownTorrent, st.Known)
	}
}

func TestNewBeforeRevisit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		headStart time.Duration
		overdue   time.Duration // how long the revisit has been due when the new peer comes
		newFirst  bool
	}{
		{"tie", -1, 0, true},
		{"no head start", -1, time.Nanosecond, false},
		{"within default head start", 0, DefaultNewHeadStart, true},
		{"beyond default head start", 0, DefaultNewHeadStart + time.Second, false},
		{"long head start", time.Hour, 50 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// (RevisitMin = RevisitDelay: every revisit comes after the delay; see revisit_test.go)
			h := newHarness(t, Config{MaxInFlight: 1, NewHeadStart: tc.headStart, RevisitMin: DefaultRevisitDelay})
			h.add(0, "10.0.0.1:1", discovery.SourceTracker)
			l := h.stepOne(ap("10.0.0.1:1"))
			h.finish(l, probe.OutcomeOK, pieces(10))
			h.clk.Advance(DefaultRevisitDelay + tc.overdue)
			h.add(0, "10.0.0.2:1", discovery.SourceDHT)
			first, second := ap("10.0.0.2:1"), ap("10.0.0.1:1")
			if !tc.newFirst {
				first, second = second, first
			}
			l = h.stepOne(first)
			if l.t.Revisit == tc.newFirst {
				t.Errorf("first target %+v", l.t)
			}
			h.finish(l, probe.OutcomeOK)
			l = h.stepOne(second)
			if l.t.Revisit != tc.newFirst {
				t.Errorf("second target %+v", l.t)
			}
		})
	}
}

func TestRevisitAfterDelay(t *testing.T) {
	for _, delay := range []time.Duration{time.Second, DefaultRevisitDelay, 13 * time.Minute} {
		t.Run(delay.String(), func(t *testing.T) {
			h := newHarness(t, Config{RevisitDelay: delay, RevisitMin: delay})
			h.add(0, "10.0.0.1:1", discovery.SourceTracker)
			l := h.stepOne(ap("10.0.0.1:1"))
			h.clk.Advance(7 * time.Second) // a long session: the delay counts from its end
			h.finish(l, probe.OutcomeOK, pieces(1))
			next, ok := h.s.dispatch(context.Background())
			if wait := next.Sub(h.clk.Now()); !ok || wait != delay {
				t.Fatalf("wait = %v (%v), want %v", wait, ok, delay)
			}
			h.clk.Advance(delay - time.Nanosecond)
			h.stepNone()
			h.clk.Advance(time.Nanosecond)
			h.stepOne(ap("10.0.0.1:1"))
		})
	}
}

func TestRetryBackoff(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxRetries int
		base, cap  time.Duration
		want       []time.Duration // delays before each retry
	}{
		{"default", 0, 0, 0, []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute}},
		{"capped", 4, 10 * time.Second, 25 * time.Second, []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second}},
		{"none", -1, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{MaxRetries: tc.maxRetries, RetryBase: tc.base, RetryMax: tc.cap})
			peer := ap("10.0.0.1:1")
			h.add(0, "10.0.0.1:1", discovery.SourceTracker)
			l := h.stepOne(peer)
			for n, d := range tc.want {
				h.finish(l, probe.OutcomeConnectTimeout)
				h.clk.Advance(d - time.Nanosecond)
				h.stepNone()
				h.clk.Advance(time.Nanosecond)
				l = h.stepOne(peer)
				if l.t.Attempt != n+2 {
					t.Errorf("retry %d: attempt %d, want %d", n+1, l.t.Attempt, n+2)
				}
			}
			h.finish(l, probe.OutcomeRefused)
			h.clk.Advance(20 * time.Hour) // long, but less than ForgetAfter
			h.stepNone()
			st := h.s.Stats()
			if st.GivenUp != 1 || st.GaveUp != 1 || st.RetriesScheduled != uint64(len(tc.want)) {
				t.Fatalf("given up %d, gave up %d, retries %d", st.GivenUp, st.GaveUp, st.RetriesScheduled)
			}
			// A new sighting revives it with a fresh budget.
			if h.add(0, "10.0.0.1:1", discovery.SourceDHT) {
				t.Error("revived peer reported as new")
			}
			l = h.stepOne(peer)
			if l.t.Attempt != 1 || h.s.Stats().Revived != 1 || h.s.Stats().GivenUp != 0 {
				t.Errorf("after revival: attempt %d, stats %+v", l.t.Attempt, h.s.Stats())
			}
		})
	}
}

func TestSuccessResetsFailures(t *testing.T) {
	h := newHarness(t, Config{RetryBase: time.Second})
	peer := ap("10.0.0.1:1")
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	l := h.stepOne(peer)
	h.finish(l, probe.OutcomeReset)
	h.clk.Advance(time.Second)
	l = h.stepOne(peer)
	h.finish(l, probe.OutcomeReset)
	h.clk.Advance(2 * time.Second)
	l = h.stepOne(peer)
	if l.t.Attempt != 3 {
		t.Fatalf("attempt %d, want 3", l.t.Attempt)
	}
	h.finish(l, probe.OutcomeNoProgress) // reached: resets
	h.clk.Advance(DefaultRevisitDelay)
	l = h.stepOne(peer)
	if l.t.Attempt != 1 {
		t.Fatalf("attempt after success %d, want 1", l.t.Attempt)
	}
	h.finish(l, probe.OutcomeReset)
	h.clk.Advance(time.Second) // back to the first back-off step
	h.stepOne(peer)
}

func TestLocalErrorUsesNoRetry(t *testing.T) {
	h := newHarness(t, Config{MaxRetries: -1})
	peer := ap("10.0.0.1:1")
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	l := h.stepOne(peer)
	for range 3 {
		h.finish(l, probe.OutcomeLocalError)
		h.clk.Advance(DefaultRetryBase)
		l = h.stepOne(peer)
	}
	if l.t.Attempt != 1 || h.s.Stats().GivenUp != 0 {
		t.Errorf("local errors used retries: attempt %d", l.t.Attempt)
	}
}

func TestInFlightBound(t *testing.T) {
	h := newHarness(t, Config{MaxInFlight: 3})
	for i := range 10 {
		h.add(0, fmt.Sprintf("10.0.0.%d:1", i+1), discovery.SourceTracker)
	}
	l := h.step()
	if len(l) != 3 {
		t.Fatalf("launched %d, want 3", len(l))
	}
	h.stepNone()
	if st := h.s.Stats(); st.InFlight != 3 || st.Limit != 3 || st.Queued != 7 {
		t.Errorf("in flight %d/%d, queued %d", st.InFlight, st.Limit, st.Queued)
	}
	h.finish(l[1], probe.OutcomeOK)
	if n := len(h.step()); n != 1 {
		t.Fatalf("launched %d after one slot freed, want 1", n)
	}
}

func TestOneConnectionPerIP(t *testing.T) {
	h := newHarness(t, Config{})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	h.add(1, "10.0.0.1:1", discovery.SourceTracker)
	h.add(0, "10.0.0.1:2", discovery.SourceTracker)
	h.add(0, "[::ffff:10.0.0.1]:3", discovery.SourceTracker)
	h.add(0, "10.0.0.2:1", discovery.SourceTracker)
	l := h.step()
	if len(l) != 2 {
		t.Fatalf("launched %v, want one per IP", targets(l))
	}
	st := h.s.Stats()
	if st.WaitingIP != 3 || st.DeferredByIP != 3 {
		t.Errorf("waiting %d, deferred %d, want 3, 3", st.WaitingIP, st.DeferredByIP)
	}
	seen := map[netip.Addr]int{}
	for range 4 { // the three parked entries go one at a time, as the IP frees
		var next []launch
		for _, x := range l {
			seen[x.t.Addr.Addr()]++
			h.finish(x, probe.OutcomeOK)
			next = append(next, h.step()...)
		}
		ips := map[netip.Addr]bool{}
		for _, x := range next {
			if ips[x.t.Addr.Addr()] {
				t.Fatalf("two sessions to %v at once", x.t.Addr.Addr())
			}
			ips[x.t.Addr.Addr()] = true
		}
		l = next
	}
	if seen[netip.MustParseAddr("10.0.0.1")] != 4 || seen[netip.MustParseAddr("10.0.0.2")] != 1 {
		t.Errorf("sessions per IP: %v", seen)
	}
}

func TestDonePeers(t *testing.T) {
	upload := func(o *probe.Observation) { o.Flags.UploadOnly = true }
	seed := func(o *probe.Observation) { o.Flags.Seed = true }
	unknown := func(o *probe.Observation) { o.Known = false; o.Last.Pieces = 100 }
	for _, tc := range []struct {
		name   string
		cfg    Config
		obs    [][]func(*probe.Observation) // one observation per visit
		doneAt int                          // visit after which the peer is done, -1 never
	}{
		{"below threshold", Config{}, [][]func(*probe.Observation){{pieces(97)}, {pieces(50)}}, -1},
		{"crosses", Config{}, [][]func(*probe.Observation){{pieces(10)}, {pieces(98)}}, 1},
		{"seed", Config{}, [][]func(*probe.Observation){{pieces(100), seed}}, 0},
		{"unknown progress", Config{}, [][]func(*probe.Observation){{pieces(0), unknown}, {unknown}}, -1},
		{"upload_only long enough", Config{SeedLikeFor: 2 * DefaultRevisitDelay},
			[][]func(*probe.Observation){{pieces(5), upload}, {pieces(5), upload}, {pieces(5), upload}}, 2},
		{"upload_only interrupted", Config{SeedLikeFor: 2 * DefaultRevisitDelay},
			[][]func(*probe.Observation){{upload}, {upload}, {}, {upload}, {upload}}, -1},
		{"custom policy", Config{Done: func(o probe.Observation, _ int) bool { return o.Client.V == "x" }},
			[][]func(*probe.Observation){{pieces(99)}, {func(o *probe.Observation) { o.Client.V = "x" }}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			peer := ap("10.0.0.1:1")
			h.add(0, "10.0.0.1:1", discovery.SourceTracker)
			for v, mods := range tc.obs {
				l := h.stepOne(peer)
				h.finish(l, probe.OutcomeOK, mods...)
				h.clk.Advance(DefaultRevisitDelay)
				if v == tc.doneAt {
					h.stepNone()
					h.clk.Advance(24 * time.Hour)
					h.add(0, "10.0.0.1:1", discovery.SourceDHT) // found again: stays done
					h.stepNone()
					if st := h.s.Stats(); st.Done != 1 || st.Known != 1 {
						t.Errorf("done %d, known %d", st.Done, st.Known)
					}
					return
				}
			}
			if tc.doneAt >= 0 {
				t.Fatal("never done")
			}
			h.stepOne(peer)
		})
	}
}

func TestThresholdUpdate(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.s.AddTorrent(hash(0), 0); err != nil { // a magnet: threshold not known yet
		t.Fatal(err)
	}
	peer := ap("10.0.0.1:1")
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	l := h.stepOne(peer)
	h.finish(l, probe.OutcomeOK, pieces(500))
	h.clk.Advance(DefaultRevisitDelay)
	l = h.stepOne(peer) // unknown threshold: not done
	if err := h.s.AddTorrent(hash(0), 490); err != nil {
		t.Fatal(err)
	}
	h.finish(l, probe.OutcomeOK, pieces(500))
	h.clk.Advance(DefaultRevisitDelay)
	h.stepNone()
}

func TestEviction(t *testing.T) {
	const forget = 8 * time.Hour
	h := newHarness(t, Config{ForgetAfter: forget, MaxRetries: -1})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker) // given up, then forgotten
	h.add(0, "10.0.0.2:1", discovery.SourceTracker) // done, then forgotten
	h.add(0, "10.0.0.3:1", discovery.SourceTracker) // reached regularly: kept
	h.add(0, "10.0.0.4:1", discovery.SourceTracker) // sighted again: kept
	h.add(0, "10.0.0.5:1", discovery.SourceTracker) // in flight the whole time: kept
	l := h.step()
	if len(l) != 5 {
		t.Fatalf("launched %d", len(l))
	}
	var p3, p5 launch
	for _, x := range l {
		switch x.t.Addr.Addr().As4()[3] {
		case 1:
			h.finish(x, probe.OutcomeRefused)
		case 2:
			h.finish(x, probe.OutcomeOK, pieces(99))
		case 3:
			h.finish(x, probe.OutcomeOK, pieces(1))
			p3 = x
		case 4:
			h.finish(x, probe.OutcomeRefused)
		case 5:
			p5 = x
		}
	}
	_ = p3
	for elapsed := time.Duration(0); elapsed < forget+2*forget/8; elapsed += DefaultRevisitDelay {
		h.clk.Advance(DefaultRevisitDelay)
		h.add(0, "10.0.0.4:1", discovery.SourceDHT)
		for _, x := range h.step() {
			if x.t.Addr != ap("10.0.0.3:1") && x.t.Addr != ap("10.0.0.4:1") {
				t.Fatalf("unexpected session %v", x.t.Addr)
			}
			h.finish(x, probe.OutcomeOK, pieces(1))
		}
	}
	st := h.s.Stats()
	if st.Evicted != 2 || st.Known != 3 || st.Done != 0 || st.GivenUp != 0 {
		t.Fatalf("evicted %d known %d done %d given up %d; want 2 3 0 0", st.Evicted, st.Known, st.Done, st.GivenUp)
	}
	// The evicted peers are unknown again: a sighting makes them new.
	if !h.add(0, "10.0.0.1:1", discovery.SourceTracker) || h.add(0, "10.0.0.5:1", discovery.SourceTracker) {
		t.Error("evicted peer not new, or in-flight peer evicted")
	}
	h.finish(p5, probe.OutcomeOK, pieces(1))
}

func TestRemoveTorrent(t *testing.T) {
	h := newHarness(t, Config{MaxInFlight: 1})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	h.add(0, "10.0.0.2:1", discovery.SourceTracker)
	h.add(0, "10.0.0.3:1", discovery.SourceTracker)
	h.add(1, "10.0.0.9:1", discovery.SourceTracker)
	inflight := h.stepOne(ap("10.0.0.1:1"))
	h.s.RemoveTorrent(hash(0))
	h.s.RemoveTorrent(hash(9)) // unknown: no-op
	st := h.s.Stats()
	if st.Known != 1 || st.Queued != 1 || st.InFlight != 1 || st.Torrents != 3 {
		t.Fatalf("after removal: %+v", st)
	}
	if h.add(0, "10.0.0.2:1", discovery.SourceTracker) || h.s.Stats().UnknownTorrent != 1 {
		t.Error("sighting for a removed torrent accepted")
	}
	// Re-adding reuses the table slot; the orphaned session must not touch the new entries.
	if err := h.s.AddTorrent(hash(0), 98); err != nil {
		t.Fatal(err)
	}
	if !h.add(0, "10.0.0.1:1", discovery.SourceDHT) {
		t.Error("peer of a re-added torrent not new")
	}
	h.finish(inflight, probe.OutcomeOK)
	st = h.s.Stats()
	if st.Known != 2 || st.InFlight != 0 {
		t.Fatalf("after the orphan finished: %+v", st)
	}
	got := map[netip.AddrPort]bool{}
	for range 2 {
		l := h.step()
		for _, x := range l {
			got[x.t.Addr] = true
			h.finish(x, probe.OutcomeOK)
		}
	}
	if !got[ap("10.0.0.1:1")] || !got[ap("10.0.0.9:1")] || len(got) != 2 {
		t.Errorf("sessions after removal: %v", got)
	}
}

func TestObservedIncoming(t *testing.T) {
	h := newHarness(t, Config{})
	in := func(addr string, port uint16, mods ...func(*probe.Observation)) probe.Observation {
		o := probe.Observation{Torrent: hash(0), Addr: ap(addr), ListenPort: port, Direction: probe.Incoming,
			Outcome: probe.OutcomeOK, Known: true}
		for _, m := range mods {
			m(&o)
		}
		return o
	}
	// Unknown peer with a listen port: a known entry, visited after the revisit delay. Its
	// PEX peers are not the scheduler's to add: the daemon routes them through Add.
	h.s.Observed(in("10.0.0.1:50000", 6881, func(o *probe.Observation) {
		o.PEX = []netip.AddrPort{ap("10.0.0.7:7"), ap("10.0.0.7:7")}
	}))
	// Without a listen port it cannot be dialled: ignored.
	h.s.Observed(in("10.0.0.2:50000", 0))
	// A failed incoming handshake says nothing.
	h.s.Observed(in("10.0.0.3:50000", 6881, func(o *probe.Observation) { o.Outcome = probe.OutcomeNotBitTorrent }))
	st := h.s.Stats()
	if st.Known != 1 || st.New[discovery.SourceIncoming] != 1 || st.New[discovery.SourcePEX] != 0 || st.Received[discovery.SourcePEX] != 0 {
		t.Fatalf("stats %+v", st)
	}
	h.stepNone() // the incoming peer was just contacted; no PEX peer was added
	h.clk.Advance(DefaultRevisitDelay - time.Second)
	// An existing queued peer seen incoming: its revisit moves out.
	h.s.Observed(in("10.0.0.1:50001", 6881))
	h.clk.Advance(time.Second)
	h.stepNone()
	h.clk.Advance(DefaultRevisitDelay)
	l := h.stepOne(ap("10.0.0.1:6881"))
	if l.t.Source != discovery.SourceIncoming || !l.t.Revisit {
		t.Errorf("incoming target %+v", l.t)
	}
	// Incoming seed while our own session runs: our session decides.
	h.s.Observed(in("10.0.0.1:50002", 6881, func(o *probe.Observation) { o.Flags.Seed = true }))
	h.finish(l, probe.OutcomeOK, pieces(3))
	// An incoming seed of a queued peer makes it done.
	h.s.Observed(in("10.0.0.1:50003", 6881, func(o *probe.Observation) { o.Flags.Seed = true }))
	h.clk.Advance(20 * time.Hour)
	h.stepNone()
	if st := h.s.Stats(); st.Done != 1 {
		t.Errorf("done %d, want 1", st.Done)
	}
	h.s.Observed(probe.Observation{Torrent: hash(7)})
	if st := h.s.Stats(); st.UnknownTorrent != 1 {
		t.Errorf("unknown torrent %d", st.UnknownTorrent)
	}
}

func TestDialRate(t *testing.T) {
	h := newHarness(t, Config{DialRate: 2, DialBurst: 1})
	for i := range 5 {
		h.add(0, fmt.Sprintf("10.0.0.%d:1", i+1), discovery.SourceTracker)
	}
	if n := len(h.step()); n != 1 {
		t.Fatalf("launched %d, want 1", n)
	}
	next, ok := h.s.dispatch(context.Background())
	wait := next.Sub(h.clk.Now())
	if !ok || wait <= 0 || wait > 501*time.Millisecond {
		t.Fatalf("wait %v, want about 500ms", wait)
	}
	h.clk.Advance(wait)
	if n := len(h.step()); n != 1 {
		t.Fatalf("launched %d after the wait, want 1", n)
	}
}

func TestDueCount(t *testing.T) {
	h := newHarness(t, Config{MaxInFlight: 1})
	for i := range 20 {
		h.add(i%4, fmt.Sprintf("10.0.%d.1:1", i), discovery.SourceTracker)
	}
	l := h.step()
	h.finish(l[0], probe.OutcomeOK)
	h.step()
	st := h.s.Stats()
	if st.Known != 20 || st.Queued != 19 || st.Due != 18 || st.InFlight != 1 {
		t.Errorf("known %d queued %d due %d in flight %d; want 20 19 18 1", st.Known, st.Queued, st.Due, st.InFlight)
	}
}

func TestMaxPeers(t *testing.T) {
	h := newHarness(t, Config{MaxPeers: 2})
	for i, want := range []bool{true, true, false, false} {
		if got := h.add(0, fmt.Sprintf("10.0.0.%d:1", i+1), discovery.SourceTracker); got != want {
			t.Errorf("peer %d: new = %v, want %v", i, got, want)
		}
	}
	if h.add(0, "10.0.0.1:1", discovery.SourceDHT) { // known peers are still de-duplicated
		t.Error("duplicate reported as new")
	}
	if st := h.s.Stats(); st.Known != 2 || st.DroppedFull != 2 {
		t.Errorf("known %d, dropped %d; want 2, 2", st.Known, st.DroppedFull)
	}
}

func TestObservedRevivesAndUnparks(t *testing.T) {
	h := newHarness(t, Config{MaxRetries: -1})
	in := func(addr string) probe.Observation {
		a := ap(addr)
		return probe.Observation{Torrent: hash(0), Addr: netip.AddrPortFrom(a.Addr(), 40000), ListenPort: a.Port(),
			Direction: probe.Incoming, Outcome: probe.OutcomeNoProgress}
	}
	h.add(0, "10.0.0.1:1", discovery.SourceTracker) // will be given up
	h.add(0, "10.0.0.2:1", discovery.SourceTracker) // in flight
	h.add(1, "10.0.0.2:1", discovery.SourceTracker) // parked behind it (same IP)
	l := h.step()
	if len(l) != 2 || h.s.Stats().WaitingIP != 1 {
		t.Fatalf("launched %v, stats %+v", targets(l), h.s.Stats())
	}
	for _, x := range l {
		if x.t.Addr == ap("10.0.0.1:1") {
			h.finish(x, probe.OutcomeRefused)
		}
	}
	if h.s.Stats().GivenUp != 1 {
		t.Fatal("not given up")
	}
	h.s.Observed(in("10.0.0.1:1")) // it connected to us: alive again, revisit later
	o := in("10.0.0.2:1")
	o.Torrent = hash(1)
	h.s.Observed(o) // the parked entry was just contacted: no need to dial it now
	if st := h.s.Stats(); st.GivenUp != 0 || st.WaitingIP != 0 || st.Queued != 2 || st.Due != 0 {
		t.Errorf("after incoming contacts: %+v", st)
	}
}

// TestSelfIsNeverRevisited: a session that reached btda itself makes the entry done at
// once: no retry, no revisit, even after the revisit delay.
func TestSelfIsNeverRevisited(t *testing.T) {
	h := newHarness(t, Config{})
	peer := ap("10.0.0.1:6881")
	h.add(0, "10.0.0.1:6881", discovery.SourceTracker)
	l := h.stepOne(peer)
	h.finish(l, probe.OutcomeSelf)
	h.clk.Advance(DefaultRevisitDelay + DefaultRetryBase)
	h.stepNone()
	if st := h.s.Stats(); st.Done != 1 || st.RetriesScheduled != 0 || st.Queued != 0 {
		t.Fatalf("stats after self: %+v", st)
	}
}

// TestPEXNotAdded: the peers a session learns by PEX reach OnResult with the observation
// and nothing else; the daemon turns them into sightings and sends them through Add.
func TestPEXNotAdded(t *testing.T) {
	var got []netip.AddrPort
	h := newHarness(t, Config{OnResult: func(_ Target, obs probe.Observation) { got = append(got, obs.PEX...) }})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	l := h.stepOne(ap("10.0.0.1:1"))
	pex := []netip.AddrPort{ap("10.0.0.7:7"), ap("10.0.0.8:8")}
	h.finish(l, probe.OutcomeOK, pieces(1), func(o *probe.Observation) { o.PEX = pex })
	if len(got) != 2 || got[0] != pex[0] || got[1] != pex[1] {
		t.Errorf("OnResult saw PEX %v, want %v", got, pex)
	}
	st := h.s.Stats()
	if st.Known != 1 || st.Queued != 1 || st.Received[discovery.SourcePEX] != 0 || st.New[discovery.SourcePEX] != 0 {
		t.Errorf("PEX peers added by the scheduler: %+v", st)
	}
	h.stepNone()
	// Routed through Add (the daemon's job), they are sightings like any other.
	for _, a := range pex {
		if !h.s.Add(discovery.Sighting{Torrent: hash(0), Addr: a, Source: discovery.SourcePEX}) {
			t.Errorf("PEX sighting %v not new", a)
		}
	}
	if n := len(h.step()); n != 2 {
		t.Errorf("launched %d after adding the PEX peers, want 2", n)
	}
}

func TestHintsRememberWhatWorked(t *testing.T) {
	h := newHarness(t, Config{})
	a := netip.MustParseAddrPort("10.0.0.1:6881")
	// A PEX sighting's flags steer the first try; a later sighting adds to them.
	h.s.Add(discovery.Sighting{Torrent: hash(0), Addr: a, Source: discovery.SourcePEX, Hints: discovery.HintEncryption})
	h.s.Add(discovery.Sighting{Torrent: hash(0), Addr: a, Source: discovery.SourceTracker, Hints: discovery.HintUTP})
	l := h.stepOne(a)
	if l.t.Hints != discovery.HintEncryption|discovery.HintUTP {
		t.Fatalf("first try hints %#x", l.t.Hints)
	}
	// It worked over TCP with MSE: the revisit goes straight to that, whatever sources say.
	h.finish(l, probe.OutcomeNoProgress, func(o *probe.Observation) {
		o.Transport, o.Encryption = probe.TransportTCP, probe.EncryptionRC4
	})
	h.s.Add(discovery.Sighting{Torrent: hash(0), Addr: a, Source: discovery.SourcePEX, Hints: discovery.HintUTP})
	h.clk.Advance(DefaultRevisitDelay)
	if l = h.stepOne(a); l.t.Hints != discovery.HintEncryption {
		t.Fatalf("revisit hints %#x, want encryption only", l.t.Hints)
	}
}

// TestAddHints: a hint added to a known peer steers its next visit; an unknown peer or
// torrent is left alone.
func TestAddHints(t *testing.T) {
	h := newHarness(t, Config{})
	h.add(0, "10.0.0.1:6881", discovery.SourceTracker)
	h.s.AddHints(hash(0), ap("10.0.0.1:6881"), discovery.HintOtherHash)
	h.s.AddHints(hash(0), ap("10.0.0.9:6881"), discovery.HintOtherHash) // unknown peer
	h.s.AddHints(hash(9), ap("10.0.0.1:6881"), discovery.HintOtherHash) // unwatched torrent
	l := h.stepOne(ap("10.0.0.1:6881"))
	if l.t.Hints != discovery.HintOtherHash {
		t.Fatalf("target hints %#x, want HintOtherHash", l.t.Hints)
	}
	// What worked replaces the encryption and uTP hints; the other hash stays.
	h.finish(l, probe.OutcomeOK, func(o *probe.Observation) { o.Transport = probe.TransportUTP })
	h.clk.Advance(2 * DefaultRevisitDelay)
	if l := h.stepOne(ap("10.0.0.1:6881")); l.t.Hints != discovery.HintOtherHash|discovery.HintUTP {
		t.Fatalf("revisit hints %#x, want other hash and uTP", l.t.Hints)
	}
	if st := h.s.Stats(); st.Known != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAddBatch: a batch counts as the same sightings added one by one (new entries,
// duplicates, rejects, unknown torrents), and dispatch starts more sessions than one
// lock hold takes (dispatchBatch) in one call.
func TestAddBatch(t *testing.T) {
	h := newHarness(t, Config{MaxInFlight: 1000})
	var sgs []discovery.Sighting
	for i := range 600 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 6881)
		sgs = append(sgs, discovery.Sighting{Torrent: hash(i % 4), Addr: a, Source: discovery.SourceTracker})
	}
	sgs = append(sgs,
		sgs[0], // duplicate
		discovery.Sighting{Torrent: hash(0), Addr: netip.AddrPort{}, Source: discovery.SourceTracker}, // invalid
		discovery.Sighting{Torrent: hash(9), Addr: ap("10.9.9.9:1"), Source: discovery.SourceTracker}, // unknown torrent
	)
	if n := h.s.AddBatch(sgs); n != 600 {
		t.Fatalf("AddBatch made %d new entries, want 600", n)
	}
	if n := h.s.AddBatch(nil); n != 0 {
		t.Fatalf("AddBatch(nil) = %d", n)
	}
	st := h.s.Stats()
	if st.Known != 600 || st.Rejected != 1 || st.UnknownTorrent != 1 {
		t.Fatalf("stats after AddBatch: known %d, rejected %d, unknown torrent %d; want 600, 1, 1",
			st.Known, st.Rejected, st.UnknownTorrent)
	}
	if l := h.step(); len(l) != 600 {
		t.Fatalf("one dispatch started %d sessions, want all 600 (more than dispatchBatch %d)", len(l), dispatchBatch)
	}
}
