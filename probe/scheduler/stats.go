package scheduler

import "github.com/btda/btda/discovery"

// Stats is a snapshot of the scheduler's state and counters, for metrics at scrape time.
type Stats struct {
	Torrents  int // watched torrents
	Known     int // known peers (every state)
	Queued    int // entries waiting in the heaps
	Due       int // queued entries due now
	InFlight  int // sessions running, held ones excepted
	Held      int // sessions whose connection is held open to watch the peer
	Limit     int // MaxInFlight
	WaitingIP int // due entries parked until their IP's session ends
	Done      int // peers no longer revisited
	GivenUp   int // peers whose retries ran out (until a new sighting)

	SessionsStarted  uint64
	RetriesScheduled uint64 // failed contacts rescheduled with back-off (and local errors)
	GaveUp           uint64 // peers given up after MaxRetries
	Revived          uint64 // given-up peers revived by a new sighting or an incoming contact
	DeferredByIP     uint64 // dispatches deferred because the IP was busy
	Evicted          uint64 // forgotten peers removed
	Rejected         uint64 // invalid sightings (bad address, port 0, unknown source)
	UnknownTorrent   uint64 // sightings or observations for a torrent not watched
	DroppedFull      uint64 // new peers dropped because MaxPeers was reached

	Received map[discovery.Source]uint64 // sightings per source
	New      map[discovery.Source]uint64 // sightings per source that made a new entry
}

// Stats returns a snapshot of the state and counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := s.st
	st.Received = make(map[discovery.Source]uint64, len(discovery.Sources))
	st.New = make(map[discovery.Source]uint64, len(discovery.Sources))
	for _, src := range discovery.Sources {
		st.Received[src] = s.st.Received[src]
		st.New[src] = s.st.New[src]
	}
	st.Torrents = len(s.torIdx)
	st.Known = len(s.peers)
	st.Queued = s.newQ.Len() + s.revQ.Len()
	st.Due = s.newQ.countDue(now) + s.revQ.countDue(now)
	st.InFlight = s.inFlight
	st.Limit = s.cfg.MaxInFlight
	for _, ws := range s.busy {
		st.WaitingIP += len(ws)
	}
	return st
}
