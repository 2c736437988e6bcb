package scheduler

import (
	"net/netip"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// Watching calls fn for every peer the scheduler still visits (queued, waiting for its IP
// or in a session; not done and not given up), as the sighting that would bring it back:
// its torrent, address and first source. It holds the scheduler's lock throughout, so fn
// must only copy.
func (s *Scheduler) Watching(fn func(discovery.Sighting)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ents {
		e := &s.ents[i]
		switch e.state {
		case stQueued, stWaitingIP, stInFlight:
		default:
			continue
		}
		if e.flags&flOrphan != 0 {
			continue
		}
		fn(discovery.Sighting{
			Torrent: s.torrents[e.torrent].hash,
			Addr:    netip.AddrPortFrom(netip.AddrFrom16(e.ip).Unmap(), e.port),
			Source:  e.first,
		})
	}
}

// Incoming sessions held open (probe.ListenerConfig.Watch): a peer that reached us and is
// downloading is held like one we reached, and while it is, the scheduler must not dial it
// too (one connection per peer). Its entry, found by the listen port its extension
// handshake told, is taken out of the queues into stInFlight with flHeldIn: no slot, no IP
// of its own (a held connection only listens), as an outgoing held session. Observed, with
// the session's final observation, puts it back. A peer that told no port cannot be
// matched to an address the scheduler visits; the collector links its sessions instead.

// IncomingWatch returns what an incoming session needs for its hold decision: the
// torrent's threshold and the peer's last progress point (by its listen port, if told),
// with ok false when the peer is not to be held: the torrent is not watched, or a session
// the scheduler started with that peer is running (or held) now.
func (s *Scheduler) IncomingWatch(obs *probe.Observation) (probe.WatchInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.torIdx[obs.Torrent]
	if !ok {
		return probe.WatchInfo{}, false
	}
	wi := probe.WatchInfo{Threshold: s.torrents[ti].threshold}
	if obs.ListenPort == 0 {
		return wi, true
	}
	i, ok := s.peers[peerKey{obs.Addr.Addr().Unmap().As16(), obs.ListenPort, ti}]
	if !ok {
		return wi, true
	}
	e := &s.ents[i]
	if e.state == stInFlight {
		return wi, false
	}
	if e.state != stDone {
		wi.Prev = s.prevPoint(e)
	}
	return wi, true
}

// HeldIncoming marks the peer of an incoming session that is held open (interim is its
// report at the hold, probe.ListenerConfig.OnHold) so that it is not dialled until the
// session ends (Observed). A peer without a listen port, a done one, or one the scheduler
// is in a session with is left as it is.
func (s *Scheduler) HeldIncoming(interim probe.Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.torIdx[interim.Torrent]
	if !ok || interim.ListenPort == 0 {
		return
	}
	addr := netip.AddrPortFrom(interim.Addr.Addr(), interim.ListenPort)
	if validSighting(addr, discovery.SourceIncoming) != nil {
		return
	}
	now := s.now()
	k := peerKey{addr.Addr().Unmap().As16(), interim.ListenPort, ti}
	i, ok := s.peers[k]
	if !ok {
		if i, ok = s.alloc(k, now); !ok {
			return
		}
		s.ents[i].first = discovery.SourceIncoming
		s.ents[i].sources = sourceBit(discovery.SourceIncoming)
		s.st.New[discovery.SourceIncoming]++
	}
	e := &s.ents[i]
	switch e.state {
	case stInFlight, stDone:
		return
	case stQueued:
		s.unqueue(i)
	case stWaitingIP:
		s.unwait(i)
	case stGivenUp:
		s.st.GivenUp--
		s.st.Revived++
	}
	e.state = stInFlight
	e.flags |= flHeldIn
	s.st.Held++
}

// endHeldIncoming ends the hold of the peer of a held incoming session that ended with obs
// (under s.mu): its entry is rescheduled from obs, whatever the outcome. It reports
// whether it did (Observed has nothing more to do).
func (s *Scheduler) endHeldIncoming(ti uint32, obs probe.Observation, now int64) bool {
	if !obs.Held || obs.ListenPort == 0 {
		return false
	}
	i, ok := s.peers[peerKey{obs.Addr.Addr().Unmap().As16(), obs.ListenPort, ti}]
	if !ok || s.ents[i].flags&flHeldIn == 0 {
		return false
	}
	e := &s.ents[i]
	e.flags &^= flHeldIn
	s.st.Held--
	s.st.Received[discovery.SourceIncoming]++
	e.sources |= sourceBit(discovery.SourceIncoming)
	e.lastSeen = secs(now)
	if e.flags&flReached == 0 {
		e.setHints(obs.Hints())
	}
	s.result(i, obs, now)
	return true
}
