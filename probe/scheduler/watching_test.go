package scheduler

import (
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// An incoming session held open keeps the scheduler from dialling its peer (by the listen
// port it told) until it ends; then the peer is rescheduled from the session's end. A peer
// the scheduler is in a session with is not held from the incoming side.
func TestHeldIncoming(t *testing.T) {
	h := newHarness(t, Config{RevisitMin: time.Minute})
	in := func(addr string, port uint16, held bool, last int) probe.Observation {
		return probe.Observation{Torrent: hash(0), Addr: ap(addr), ListenPort: port, Direction: probe.Incoming,
			Outcome: probe.OutcomeOK, Known: true, Held: held, Interim: !held && last < 98,
			First: probe.Point{Pieces: 10, At: h.clk.Now()}, Last: probe.Point{Pieces: last, At: h.clk.Now()}}
	}
	h.add(0, "10.0.0.1:6881", discovery.SourceTracker)
	h.add(0, "10.0.0.1:6882", discovery.SourceTracker) // another client behind the same IP
	if wi, ok := h.s.IncomingWatch(&probe.Observation{Torrent: hash(0), Addr: ap("10.0.0.1:50000"), ListenPort: 6881}); !ok || wi.Threshold != 98 {
		t.Fatalf("watch info %+v %v", wi, ok)
	}
	if _, ok := h.s.IncomingWatch(&probe.Observation{Torrent: hash(5), Addr: ap("10.0.0.1:50000")}); ok {
		t.Fatal("a torrent not watched may be held")
	}
	h.s.HeldIncoming(in("10.0.0.1:50000", 6881, false, 20))
	if st := h.s.Stats(); st.Held != 1 || st.Queued != 1 {
		t.Fatalf("held %d queued %d", st.Held, st.Queued)
	}
	// Only the other client is dialled; the held one's IP is not busy.
	l := h.stepOne(ap("10.0.0.1:6882"))
	if _, ok := h.s.IncomingWatch(&probe.Observation{Torrent: hash(0), Addr: ap("10.0.0.1:50001"), ListenPort: 6882}); ok {
		t.Fatal("a peer we are in a session with may be held from the incoming side too")
	}
	h.finish(l, probe.OutcomeOK, pieces(98))
	h.clk.Advance(time.Hour)
	h.stepNone() // still held
	// The held session ends with the crossing: the peer is done, nothing left held.
	h.s.Observed(in("10.0.0.1:50000", 6881, true, 98))
	h.clk.Advance(time.Hour)
	h.stepNone()
	if st := h.s.Stats(); st.Held != 0 || st.Done != 2 {
		t.Fatalf("held %d done %d", st.Held, st.Done)
	}

	// A peer first seen through its held session gets an entry; when the session ends
	// below the threshold it is visited later, from its previous point.
	h.s.HeldIncoming(in("10.0.0.2:50000", 7000, false, 20))
	h.s.HeldIncoming(in("10.0.0.2:50000", 7000, false, 20)) // idempotent
	if st := h.s.Stats(); st.Held != 1 || st.Known != 3 || st.New[discovery.SourceIncoming] != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.stepNone()
	h.s.Observed(in("10.0.0.2:50000", 7000, true, 40))
	if st := h.s.Stats(); st.Held != 0 || st.Queued != 1 {
		t.Fatalf("held %d queued %d", st.Held, st.Queued)
	}
	wi, ok := h.s.IncomingWatch(&probe.Observation{Torrent: hash(0), Addr: ap("10.0.0.2:50001"), ListenPort: 7000})
	if !ok || wi.Prev.Pieces != 40 {
		t.Fatalf("watch info %+v %v", wi, ok)
	}
	h.clk.Advance(time.Hour)
	h.stepOne(ap("10.0.0.2:7000"))

	// A held peer whose torrent is removed is forgotten; its late end is harmless.
	h.s.HeldIncoming(in("10.0.0.3:50000", 7000, false, 20))
	h.s.RemoveTorrent(hash(0))
	if err := h.s.check(); err != nil {
		t.Fatal(err)
	}
	h.s.Observed(in("10.0.0.3:50000", 7000, true, 40))
	if st := h.s.Stats(); st.Held != 0 {
		t.Fatalf("held %d after its torrent was removed", st.Held)
	}
}
