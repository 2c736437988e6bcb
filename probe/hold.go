package probe

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/btda/btda/probe/wire"
)

// The read loop's session-end decisions: when a session with nothing more to tell ends
// early (IdleGrace), and when one is held open to watch a downloading peer (watch.go).

// deadline is when the read loop stops waiting for the next message.
func (s *session) deadline(last time.Time) time.Time {
	cfg := s.p.cfg
	if s.hold != nil {
		return minTime(last.Add(cfg.Watch.cfg.Silence), s.end)
	}
	d := minTime(last.Add(cfg.QuietWindow), s.end)
	// A peer that reported its state and has not moved since has told us all: seeds, peers
	// not downloading. Other messages (extension handshake, unchoke, PEX) do not extend it.
	if s.known && !s.settled && cfg.IdleGrace > 0 {
		d = minTime(d, s.lastAt.Add(cfg.IdleGrace))
	}
	return d
}

// startHold decides, when the read loop would end on its deadline, whether to hold the
// connection open instead: a session with a Watcher and a Target (outgoing, or incoming
// through a listener with ListenerConfig.Watch) whose peer is below the threshold and
// downloading (moved during the session, or since its previous point), with an estimated
// crossing within the longest hold and room in the budget. Incoming and outgoing sessions
// share the budget and the rules.
func (s *session) startHold(ctx context.Context, err error) bool {
	cfg := s.p.cfg
	w := cfg.Watch
	if w == nil || s.target == nil || ctx.Err() != nil || !errors.Is(err, os.ErrDeadlineExceeded) ||
		s.b.dec.Partial() || !s.writeOK || !s.known {
		return false
	}
	if s.target.watchInfo != nil {
		wi, ok := s.target.watchInfo(s.o)
		if !ok {
			return false
		}
		s.target.Watch = wi
	}
	moved := s.settled && s.o.Last.Pieces > s.o.First.Pieces
	e, ok := eta(s.o, moved, s.target.Watch.Threshold, s.target.Watch.Prev)
	if !ok || e > w.cfg.Max {
		return false
	}
	conn := s.conn
	h := w.acquire(e, func() { _ = conn.SetReadDeadline(time.Now()) })
	if h == nil {
		return false
	}
	s.hold = h
	s.wmu.Lock()
	s.end = time.Now().Add(w.cfg.Max)
	if dl, ok := ctx.Deadline(); ok && dl.Before(s.end) {
		s.end = dl
	}
	s.wmu.Unlock()
	s.o.Held = true
	if !cfg.SendInterested {
		// libtorrent and aria2 drop links where neither side is interested.
		s.write(wire.Message{Type: wire.Interested})
	}
	s.startKeepAlive(w.cfg.KeepAlive)
	if s.target.OnHold != nil {
		in := *s.o
		in.Known, in.Bitfield, in.Outcome, in.Interim = true, s.b.set.Clone(), OutcomeOK, true
		in.Timings.Total = time.Since(in.Start)
		in.PEX = nil // the final observation has them all
		s.target.OnHold(in)
	}
	return true
}

// evicted reports whether the held connection lost its place in the budget.
func (s *session) evicted() bool { return s.hold != nil && s.hold.evicted.Load() }

// crossedOrDone reports whether a held session has what it was held for, or nothing more
// to wait for: the threshold reached, the peer a seed or partial seed, or evicted.
func (s *session) crossedOrDone() bool {
	o := s.o
	return o.Last.Pieces >= s.target.Watch.Threshold || o.Flags.Seed || o.Flags.UploadOnly || s.evicted()
}

// holdEnded maps the error that ended a held session. Silence, the longest hold and an
// eviction are normal ends: the peer goes back to the schedule.
func (s *session) holdEnded(ctx context.Context, err error) (Outcome, string, error) {
	if s.evicted() || (errors.Is(err, os.ErrDeadlineExceeded) && !s.b.dec.Partial()) {
		return OutcomeOK, "", nil
	}
	return s.readEnd(ctx, err)
}

// startKeepAlive makes the session send a keep-alive whenever it wrote nothing for every.
func (s *session) startKeepAlive(every time.Duration) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	switch {
	case s.done:
	case s.ka == nil:
		s.kaEvery = every
		s.ka = time.AfterFunc(every, s.keepAlive)
	case every < s.kaEvery:
		s.kaEvery = every
		s.ka.Reset(every)
	}
}
