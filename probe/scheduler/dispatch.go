package scheduler

import (
	"container/heap"
	"context"
	"math"
	"net/netip"
	"time"

	"github.com/btda/btda/probe"
)

// Dispatching: which due peer goes next, starting its session, and rescheduling the
// peer from the session's outcome; plus the sweep that forgets stale peers.

// dispatchBatch is how many sessions dispatch starts per hold of the lock: between
// batches, Add, the ending sessions' finish and Stats (a /metrics scrape) get the lock,
// instead of waiting while thousands of sessions start at once.
const dispatchBatch = 256

// pendingLaunch is a session picked under the lock, started after it is released.
type pendingLaunch struct {
	i uint32
	t Target
}

// dispatch starts every session that is due and allowed, and returns when something
// becomes due next (ok false: nothing; sleep until woken). It picks up to dispatchBatch
// sessions under the lock and starts them (goroutine creation) after releasing it.
func (s *Scheduler) dispatch(ctx context.Context) (next time.Time, ok bool) {
	var batch []pendingLaunch
	for {
		s.mu.Lock()
		now := s.now()
		var wait time.Duration
		wait, ok, batch = s.dispatchLocked(now, batch[:0])
		s.mu.Unlock()
		for _, l := range batch {
			s.launch(ctx, l.i, l.t)
		}
		if len(batch) < dispatchBatch {
			return s.base.Add(time.Duration(now) + wait), ok
		}
	}
}

// dispatchLocked picks due sessions into out (at most dispatchBatch in all), marking them
// in flight; the caller launches them once the lock is released.
func (s *Scheduler) dispatchLocked(now int64, out []pendingLaunch) (wait time.Duration, ok bool, _ []pendingLaunch) {
	if now >= s.nextSweep {
		s.sweep(now)
		s.nextSweep = now + int64(s.sweepEvery())
	}
	wait, ok = time.Duration(s.nextSweep-now), true
	for s.inFlight < s.cfg.MaxInFlight && len(out) < dispatchBatch {
		q, i, has := s.pick(now)
		if !has {
			break
		}
		if s.lim != nil && s.lim.TokensAt(s.base.Add(time.Duration(now))) < 1 {
			need := (1 - s.lim.TokensAt(s.base.Add(time.Duration(now)))) / float64(s.lim.Limit())
			wait = min(wait, time.Duration(math.Ceil(need*1e9))+time.Microsecond)
			return wait, true, out
		}
		heap.Pop(q)
		e := &s.ents[i]
		if _, busy := s.busy[e.ip]; busy {
			e.state = stWaitingIP
			s.busy[e.ip] = append(s.busy[e.ip], i)
			s.st.DeferredByIP++
			continue
		}
		if s.lim != nil {
			s.lim.AllowN(s.base.Add(time.Duration(now)), 1)
		}
		s.busy[e.ip] = nil
		e.state = stInFlight
		s.inFlight++
		s.st.SessionsStarted++
		t := Target{
			Torrent: s.torrents[e.torrent].hash,
			Addr:    netip.AddrPortFrom(netip.AddrFrom16(e.ip).Unmap(), e.port),
			Source:  e.first,
			Sources: e.sources,
			Attempt: int(e.fails) + 1,
			Revisit: e.flags&flReached != 0,
			Hints:   e.hints(),

			Threshold: s.torrents[e.torrent].threshold,
			Prev:      s.prevPoint(e),
			Hold:      func() { s.held(i) },
		}
		out = append(out, pendingLaunch{i, t})
	}
	if s.inFlight < s.cfg.MaxInFlight {
		for _, q := range []*queue{&s.newQ, &s.revQ} {
			if i, has := q.top(); has {
				wait = min(wait, time.Duration(max(s.ents[i].due-now, 0)))
			}
		}
	}
	return wait, ok, out
}

// pick chooses the queue to take the next due entry from: the new-peer one, unless the
// earliest revisit has been due for longer than the new peer's head start.
func (s *Scheduler) pick(now int64) (*queue, uint32, bool) {
	ni, nok := s.newQ.top()
	nok = nok && s.ents[ni].due <= now
	ri, rok := s.revQ.top()
	rok = rok && s.ents[ri].due <= now
	switch {
	case nok && rok:
		if s.ents[ri].due < s.ents[ni].due-int64(s.cfg.NewHeadStart) {
			return &s.revQ, ri, true
		}
		return &s.newQ, ni, true
	case nok:
		return &s.newQ, ni, true
	case rok:
		return &s.revQ, ri, true
	}
	return nil, 0, false
}

func (s *Scheduler) goSession(ctx context.Context, i uint32, t Target) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		obs := s.cfg.Probe(ctx, t)
		s.finish(i, t, obs)
	}()
}

// finish records the end of entry i's session: it frees the IP and the slot, hands the
// observation to OnResult and reschedules the peer.
func (s *Scheduler) finish(i uint32, t Target, obs probe.Observation) {
	if s.cfg.OnResult != nil {
		s.cfg.OnResult(t, obs)
	}
	s.mu.Lock()
	now := s.now()
	e := &s.ents[i]
	if e.flags&flHeld != 0 {
		e.flags &^= flHeld // its slot and IP were freed when the hold began
		s.st.Held--
	} else {
		s.releaseIP(e.ip)
		s.inFlight--
	}
	if e.flags&flOrphan != 0 {
		*e = entry{}
		s.free = append(s.free, i)
	} else {
		s.result(i, obs, now)
	}
	s.mu.Unlock()
	s.signal()
}

// result reschedules entry i (not queued, not waiting, not in flight) after a contact
// that ended at now.
func (s *Scheduler) result(i uint32, obs probe.Observation, now int64) {
	e := &s.ents[i]
	switch {
	case obs.Outcome == probe.OutcomeSelf:
		// Our own address: never contact it again.
		e.state = stDone
		s.st.Done++
		return
	case obs.Outcome == probe.OutcomeLocalError:
		// Our side failed: not the peer's fault, so no retry is used up.
		s.enqueue(i, now+int64(s.cfg.RetryBase), false)
		s.st.RetriesScheduled++
	case !obs.Outcome.Reached():
		if int(e.fails) >= s.cfg.MaxRetries {
			e.state = stGivenUp
			e.fails = 0
			s.st.GaveUp++
			s.st.GivenUp++
			return
		}
		e.fails++
		d := min(s.cfg.RetryBase<<(e.fails-1), s.cfg.RetryMax)
		if d <= 0 { // shift overflow
			d = s.cfg.RetryMax
		}
		s.enqueue(i, now+int64(d), false)
		s.st.RetriesScheduled++
	default:
		e.fails = 0
		e.flags |= flReached
		e.setHints(obs.Hints()) // revisits go straight to what worked
		at := now
		if obs.Known {
			at = pointTime(obs, now)
		}
		delay := s.revisitAfter(e, obs, at, s.torrents[e.torrent].threshold)
		if obs.Flags.UploadOnly || obs.Flags.Seed {
			if e.seedSince == 0 {
				e.seedSince = secs(now) + 1
			}
		} else {
			e.seedSince = 0
		}
		seedLong := e.seedSince != 0 && int64(secs(now)-(e.seedSince-1)) >= int64(s.cfg.SeedLikeFor/time.Second)
		if seedLong || s.cfg.Done(obs, s.torrents[e.torrent].threshold) {
			e.state = stDone
			s.st.Done++
			return
		}
		s.enqueue(i, now+int64(delay), false)
	}
}

// sweep evicts peers neither sighted nor reached for ForgetAfter.
func (s *Scheduler) sweep(now int64) {
	cut := secs(now - int64(s.cfg.ForgetAfter))
	n := 0
	for i := range s.ents {
		e := &s.ents[i]
		if e.state == stFree || e.state == stInFlight || max(e.lastSeen, e.lastOK) > cut {
			continue
		}
		s.drop(uint32(i))
		n++
	}
	if n > 0 {
		s.st.Evicted += uint64(n)
		s.log.Debug("evicted forgotten peers", "count", n, "known", len(s.peers))
	}
}
