package scheduler

import (
	"math"
	"time"

	"github.com/btda/btda/probe"
)

// Revisits by ETA: btda counts a download only if it reads a peer below the threshold and
// later at or above it, so the next visit of a downloading peer is timed to come shortly
// after its estimated crossing, from the speed between its last two progress points.
//
//   - A peer seen below the threshold once (no speed yet) is revisited after RevisitMin:
//     the second point gives the speed (or shows it is not downloading).
//   - A peer that progressed is revisited at its estimated crossing plus an eighth (at
//     least RevisitMin, at most RevisitDelay), so sooner the nearer it is; with Watching,
//     at three quarters of the estimate instead, so the visit finds it still below and
//     downloading and holds the connection until the crossing (a leecher that quits soon
//     after it finished is gone by the time a visit after the estimate comes).
//   - Seeds, peers at or above the threshold and peers that did not progress keep
//     RevisitDelay.
//   - A reached peer that reported nothing (no_progress: an empty rtorrent, a lazy peer)
//     is retried after RevisitMin, doubling with each such outgoing session in a row up
//     to RevisitDelay (its own connections to us do not push it further); the session
//     sends `interested` (and keep-alives) first, which makes such clients write, and so
//     send their haves.
//
// The entry keeps the last point's piece count (lastPieces, plus one; 0: none) and its
// time (lastOK), so it stays 56 bytes.

// DefaultMinRevisit is the politeness floor of a revisit (Config.RevisitMin).
const DefaultMinRevisit = 30 * time.Second

// revisitAfter returns the delay to the next visit of entry e after a session that reached
// the peer, with the observation obs, and records the session's last point (at the
// scheduler time at; the previous one is still in e).
func (s *Scheduler) revisitAfter(e *entry, obs probe.Observation, at int64, threshold int) time.Duration {
	lo, hi := s.cfg.RevisitMin, s.cfg.RevisitDelay
	if !obs.Known {
		e.lastOK = secs(at)
		e.lastPieces = 0
		d := hi
		if e.quiet < 16 {
			d = min(lo<<e.quiet, hi)
		}
		if obs.Direction == probe.Outgoing {
			e.quiet = min(e.quiet+1, 250)
		}
		return d
	}
	e.quiet = 0
	n := obs.Last.Pieces
	prevPieces, prevAt := int(e.lastPieces)-1, int64(e.lastOK)*int64(time.Second)
	e.lastPieces = uint32(min(max(n, 0), math.MaxUint32-1)) + 1
	e.lastOK = secs(at)
	if threshold <= 0 || n >= threshold || obs.Flags.Seed || obs.Flags.UploadOnly {
		return hi
	}
	var rate float64 // pieces per second
	switch {
	case obs.Last.Pieces > obs.First.Pieces && obs.Last.At.After(obs.First.At):
		rate = float64(obs.Last.Pieces-obs.First.Pieces) / obs.Last.At.Sub(obs.First.At).Seconds()
	case prevPieces >= 0 && n > prevPieces && at > prevAt:
		rate = float64(n-prevPieces) / time.Duration(at-prevAt).Seconds()
	case prevPieces < 0:
		return lo // one point: come back soon for the speed
	default:
		return hi // not downloading
	}
	factor := 1.125
	if s.cfg.Watching {
		factor = 0.75
	}
	eta := float64(threshold-n) / rate * factor
	if eta >= hi.Seconds() {
		return hi
	}
	return max(time.Duration(eta*float64(time.Second)), lo)
}

// prevPoint is the entry's last progress point, for the session's watch decision.
func (s *Scheduler) prevPoint(e *entry) probe.Point {
	if e.lastPieces == 0 {
		return probe.Point{}
	}
	return probe.Point{Pieces: int(e.lastPieces) - 1, At: s.base.Add(time.Duration(e.lastOK) * time.Second)}
}

// pointTime is the scheduler time of obs's last point: the session ended at now, and its
// last point came that much before its end.
func pointTime(obs probe.Observation, now int64) int64 {
	end := obs.Start.Add(obs.Timings.Total)
	return now - int64(max(end.Sub(obs.Last.At), 0))
}

// held frees the slot of entry i's session while its connection is held open (see
// probe.Watcher): a held connection only listens, so it counts neither against
// MaxInFlight nor as its IP's one connection.
func (s *Scheduler) held(i uint32) {
	s.mu.Lock()
	e := &s.ents[i]
	if e.state != stInFlight || e.flags&flHeld != 0 {
		s.mu.Unlock()
		return
	}
	e.flags |= flHeld
	s.inFlight--
	s.st.Held++
	s.releaseIP(e.ip)
	s.mu.Unlock()
	s.signal()
}

// releaseIP lets the sessions waiting for ip's connection go.
func (s *Scheduler) releaseIP(ip [16]byte) {
	ws := s.busy[ip]
	delete(s.busy, ip)
	for _, w := range ws {
		// Re-queue with their old due time: they were due already.
		s.enqueue(w, s.ents[w].due, s.ents[w].flags&flNewQueue != 0)
	}
}
