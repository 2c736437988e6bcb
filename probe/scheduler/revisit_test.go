package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// TestRevisitByETA: the delay after each of a peer's sessions, threshold 98 of 100.
func TestRevisitByETA(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	point := func(n int, at time.Duration) func(*probe.Observation) {
		return func(o *probe.Observation) {
			o.Known = true
			o.First = probe.Point{Pieces: n, At: t0.Add(at)}
			o.Last = o.First
			o.Start, o.Timings.Total = t0.Add(at), 0 // the point is the session's end
		}
	}
	moved := func(from, to int, dt time.Duration) func(*probe.Observation) {
		return func(o *probe.Observation) {
			o.Known = true
			o.First = probe.Point{Pieces: from, At: t0}
			o.Last = probe.Point{Pieces: to, At: t0.Add(dt)}
			o.Start, o.Timings.Total = t0, dt
		}
	}
	noProgress := func(o *probe.Observation) { o.Outcome = probe.OutcomeNoProgress }
	seed := func(o *probe.Observation) { o.Flags.Seed = true }
	type visit struct {
		gap  time.Duration // extra scheduler time after the visit was due
		mod  []func(*probe.Observation)
		want time.Duration // the delay to the next visit (0: done)
	}
	cases := []struct {
		name   string
		visits []visit
	}{
		{"first point below: soon, for the speed", []visit{{0, mods(point(10, 0)), DefaultMinRevisit}}},
		{"seed: done", []visit{{0, mods(point(100, 0), seed), 0}}},
		{"not moving: the long delay", []visit{{0, mods(point(10, 0)), DefaultMinRevisit}, {0, mods(point(10, 0)), DefaultRevisitDelay}}},
		{"fast: just after the crossing", []visit{
			{0, mods(point(10, 0)), DefaultMinRevisit},
			// 40 pieces in 30 s: 48 to go, 36 s, plus an eighth
			{0, mods(point(50, 0)), 40500 * time.Millisecond}}},
		{"near the threshold: the floor", []visit{
			{0, mods(point(90, 0)), DefaultMinRevisit},
			{0, mods(point(96, 0)), DefaultMinRevisit}}},
		{"slow: the ceiling", []visit{
			{0, mods(point(10, 0)), DefaultMinRevisit},
			{0, mods(point(11, 0)), DefaultRevisitDelay}}},
		{"movement in one session gives the speed", []visit{{0, mods(moved(10, 20, 10*time.Second)), 87750 * time.Millisecond}}}, // 78 s to go
		{"no progress: soon, then backing off", []visit{
			{0, mods(noProgress), DefaultMinRevisit},
			{0, mods(noProgress), 2 * DefaultMinRevisit},
			{0, mods(noProgress), 4 * DefaultMinRevisit},
			{0, mods(noProgress), 8 * DefaultMinRevisit},
			{0, mods(noProgress), DefaultRevisitDelay},
			{0, mods(point(10, 0)), DefaultMinRevisit}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.add(0, "10.0.0.1:1", discovery.SourceTracker)
			for k, v := range tc.visits {
				h.clk.Advance(v.gap)
				l := h.step()
				if len(l) != 1 {
					h.t.Fatalf("visit %d: %d sessions", k, len(l))
				}
				if k > 0 && (l[0].t.Threshold != 98 || l[0].t.Prev.Pieces < 0) {
					t.Errorf("visit %d: target %+v", k, l[0].t)
				}
				h.finish(l[0], probe.OutcomeOK, v.mod...)
				next, ok := h.s.dispatch(context.Background())
				if v.want == 0 {
					if st := h.s.Stats(); st.Done != 1 {
						t.Fatalf("visit %d: not done", k)
					}
					return
				}
				if wait := next.Sub(h.clk.Now()); !ok || wait != v.want {
					t.Fatalf("visit %d: next visit in %v, want %v", k, wait, v.want)
				}
				h.clk.Advance(v.want - v.gap)
			}
		})
	}
}

func mods(m ...func(*probe.Observation)) []func(*probe.Observation) { return m }

// TestHeldSessionFreesSlotAndIP: a held session leaves MaxInFlight and its IP to others,
// and its end is counted once.
func TestHeldSessionFreesSlotAndIP(t *testing.T) {
	h := newHarness(t, Config{MaxInFlight: 1})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	h.add(1, "10.0.0.1:1", discovery.SourceTracker) // same IP, other torrent
	a := h.step()
	if len(a) != 1 {
		t.Fatalf("%d sessions", len(a))
	}
	h.stepNone()
	a[0].t.Hold()
	a[0].t.Hold() // idempotent
	if st := h.s.Stats(); st.InFlight != 0 || st.Held != 1 {
		t.Fatalf("in flight %d held %d", st.InFlight, st.Held)
	}
	b := h.step()
	if len(b) != 1 || b[0].t.Torrent == a[0].t.Torrent {
		t.Fatalf("the waiting peer did not start: %v", targets(b))
	}
	h.finish(a[0], probe.OutcomeOK, pieces(98))
	if st := h.s.Stats(); st.InFlight != 1 || st.Held != 0 {
		t.Fatalf("after the held session: in flight %d held %d", st.InFlight, st.Held)
	}
	h.finish(b[0], probe.OutcomeOK, pieces(98))
	if err := h.s.check(); err != nil {
		t.Fatal(err)
	}
	if st := h.s.Stats(); st.InFlight != 0 || st.Done != 2 {
		t.Fatalf("in flight %d done %d", st.InFlight, st.Done)
	}
}

// TestRevisitWatching: with a watching prober the revisit comes before the estimated
// crossing; incoming sessions without progress do not push the retry further.
func TestRevisitWatching(t *testing.T) {
	for _, tc := range []struct {
		watching bool
		want     time.Duration
	}{
		{false, 263250 * time.Millisecond}, // 78 pieces at 1/3 piece/s: 234 s, plus an eighth
		{true, 175500 * time.Millisecond},  // three quarters of 234 s
	} {
		h := newHarness(t, Config{Watching: tc.watching})
		h.add(0, "10.0.0.1:1", discovery.SourceTracker)
		l := h.step()
		h.finish(l[0], probe.OutcomeOK, pieces(10))
		h.clk.Advance(DefaultMinRevisit)
		l = h.step()
		h.finish(l[0], probe.OutcomeOK, pieces(20))
		next, _ := h.s.dispatch(context.Background())
		if wait := next.Sub(h.clk.Now()); wait != tc.want {
			t.Errorf("watching %v: next visit in %v, want %v", tc.watching, wait, tc.want)
		}
	}

	h := newHarness(t, Config{})
	for range 3 {
		h.s.Observed(probe.Observation{Torrent: hash(0), Addr: ap("10.0.0.9:50000"), ListenPort: 1,
			Direction: probe.Incoming, Outcome: probe.OutcomeNoProgress})
	}
	next, _ := h.s.dispatch(context.Background())
	if wait := next.Sub(h.clk.Now()); wait != DefaultMinRevisit {
		t.Errorf("after incoming no_progress sessions: next visit in %v, want %v", wait, DefaultMinRevisit)
	}
}
