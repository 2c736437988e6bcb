package scheduler

import (
	"net/netip"

	"github.com/btda/btda/discovery"
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
