package scheduler

import (
	"container/heap"
	"errors"
	"fmt"
	"net/netip"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

// The peer table: one entry per (torrent, IP, listen port), the watched torrents, and
// the ways peers enter it (Add, Observed) and leave it.

// Entry states.
const (
	stFree uint8 = iota
	stQueued
	stInFlight
	stWaitingIP
	stDone
	stGivenUp
)

// Entry flags.
const (
	flNewQueue       uint8 = 1 << iota // queued in the new-peer heap (else the revisit heap)
	flReached                          // reached at least once
	flOrphan                           // its torrent was removed while the session ran
	flHintEncryption                   // how to reach it (discovery.HintEncryption): sources' hints until reached, then what worked
	flHintUTP                          // how to reach it (discovery.HintUTP), likewise
	flHeld                             // its session's connection is held open (slot and IP freed)
	flHeldIn                           // an incoming session with it is held open (stInFlight, no slot: see watching.go)
	flHintOtherHash                    // handshake with the torrent's other wire hash (discovery.HintOtherHash); never cleared
)

// entry is one known peer. It holds no pointer so the GC never scans the table, and it
// is kept small: 56 bytes.
type entry struct {
	ip         [16]byte
	due        int64 // nanoseconds since base
	torrent    uint32
	heapIdx    int32
	lastSeen   int32  // seconds since base, last sighting
	lastOK     int32  // seconds since base, last contact that reached the peer (its last point's time)
	seedSince  int32  // seconds since base + 1 (0: not seed-like)
	lastPieces uint32 // pieces at the last progress point + 1 (0: none), see revisit.go
	port       uint16
	sources    SourceSet
	first      discovery.Source
	state      uint8
	fails      uint8
	flags      uint8
	quiet      uint8 // reached sessions in a row without progress (no_progress)
}

type peerKey struct {
	ip      [16]byte
	port    uint16
	torrent uint32
}

type torrentInfo struct {
	hash      metainfo.Hash
	threshold int
	live      bool
}

// AddTorrent starts watching a torrent, or updates its threshold (in pieces; 0 when not
// known yet, e.g. a magnet without metadata). Sightings for unwatched torrents are dropped.
func (s *Scheduler) AddTorrent(h metainfo.Hash, threshold int) error {
	if h.IsZero() {
		return errors.New("scheduler: AddTorrent: zero info hash")
	}
	if threshold < 0 {
		return fmt.Errorf("scheduler: AddTorrent %s: negative threshold %d", h, threshold)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.torIdx[h]; ok {
		s.torrents[i].threshold = threshold
		return nil
	}
	ti := torrentInfo{hash: h, threshold: threshold, live: true}
	var i uint32
	if n := len(s.freeTor); n > 0 {
		i = s.freeTor[n-1]
		s.freeTor = s.freeTor[:n-1]
		s.torrents[i] = ti
	} else {
		i = uint32(len(s.torrents))
		s.torrents = append(s.torrents, ti)
	}
	s.torIdx[h] = i
	return nil
}

// RemoveTorrent stops watching a torrent and drops its peers. A session already running
// for it finishes; its result still goes to OnResult but is not rescheduled.
func (s *Scheduler) RemoveTorrent(h metainfo.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.torIdx[h]
	if !ok {
		return
	}
	delete(s.torIdx, h)
	s.torrents[ti] = torrentInfo{}
	for i := range s.ents {
		e := &s.ents[i]
		if e.state != stFree && e.torrent == ti {
			s.drop(uint32(i))
		}
	}
	s.freeTor = append(s.freeTor, ti)
}

// drop forgets entry i. An entry in flight stays allocated as an orphan until its session
// ends, so that the session's index is never reused under it.
func (s *Scheduler) drop(i uint32) {
	e := &s.ents[i]
	delete(s.peers, peerKey{e.ip, e.port, e.torrent})
	switch e.state {
	case stInFlight:
		if e.flags&flHeldIn != 0 {
			s.st.Held-- // not our session: nothing will come back for the entry
			break
		}
		e.flags |= flOrphan
		return
	case stDone:
		s.st.Done--
	case stGivenUp:
		s.st.GivenUp--
	case stQueued:
		s.unqueue(i)
	case stWaitingIP:
		s.unwait(i)
	}
	*e = entry{}
	s.free = append(s.free, i)
}

func (s *Scheduler) unqueue(i uint32) {
	e := &s.ents[i]
	if e.heapIdx < 0 {
		return
	}
	if e.flags&flNewQueue != 0 {
		heap.Remove(&s.newQ, int(e.heapIdx))
	} else {
		heap.Remove(&s.revQ, int(e.heapIdx))
	}
}

func (s *Scheduler) unwait(i uint32) {
	ip := s.ents[i].ip
	ws := s.busy[ip]
	for k, w := range ws {
		if w == i {
			ws[k] = ws[len(ws)-1]
			s.busy[ip] = ws[:len(ws)-1]
			return
		}
	}
}

// enqueue puts entry i in the new-peer heap (fresh) or the revisit heap, due at due.
func (s *Scheduler) enqueue(i uint32, due int64, fresh bool) {
	e := &s.ents[i]
	e.due = due
	e.state = stQueued
	if fresh {
		e.flags |= flNewQueue
		heap.Push(&s.newQ, i)
	} else {
		e.flags &^= flNewQueue
		heap.Push(&s.revQ, i)
	}
}

func validSighting(addr netip.AddrPort, src discovery.Source) error {
	if src < discovery.SourceTracker || src > discovery.SourceMagnet {
		return fmt.Errorf("unknown source %d", src)
	}
	if !addr.IsValid() || addr.Port() == 0 {
		return fmt.Errorf("invalid address %v", addr)
	}
	a := addr.Addr()
	if a.IsUnspecified() || a.IsMulticast() {
		return fmt.Errorf("address %v is not a unicast address", addr)
	}
	return nil
}

// Add records a sighting and reports whether it made a new entry (false: a duplicate of a
// known peer, or a rejected sighting, counted in Stats). An IPv4-mapped IPv6 address is
// the IPv4 peer; a zone is dropped. The scheduler's own clock times everything.
func (s *Scheduler) Add(sg discovery.Sighting) bool {
	s.mu.Lock()
	isNew := s.add(sg, s.now())
	s.mu.Unlock()
	if isNew {
		s.signal()
	}
	return isNew
}

// AddBatch records the sightings as Add does, under one hold of the lock (a tracker
// reply, a session's PEX list), and returns how many made new entries.
func (s *Scheduler) AddBatch(sgs []discovery.Sighting) int {
	if len(sgs) == 0 {
		return 0
	}
	n := 0
	s.mu.Lock()
	now := s.now()
	for _, sg := range sgs {
		if s.add(sg, now) {
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.signal()
	}
	return n
}

func (s *Scheduler) add(sg discovery.Sighting, now int64) bool {
	if err := validSighting(sg.Addr, sg.Source); err != nil {
		s.st.Rejected++
		s.log.Debug("sighting rejected", "torrent", sg.Torrent, "err", err)
		return false
	}
	ti, ok := s.torIdx[sg.Torrent]
	if !ok {
		s.st.UnknownTorrent++
		return false
	}
	s.st.Received[sg.Source]++
	k := peerKey{sg.Addr.Addr().Unmap().As16(), sg.Addr.Port(), ti}
	if i, ok := s.peers[k]; ok {
		e := &s.ents[i]
		e.sources |= sourceBit(sg.Source)
		e.lastSeen = secs(now)
		if e.flags&flReached == 0 {
			e.setHints(e.hints() | sg.Hints) // what worked, once known, outranks what sources say
		}
		if e.state == stGivenUp {
			// A source still reports it: it may be back. Fresh retry budget.
			e.fails = 0
			s.enqueue(i, now, false)
			s.st.Revived++
			s.st.GivenUp--
			s.signal()
		}
		return false
	}
	i, ok := s.alloc(k, now)
	if !ok {
		return false
	}
	e := &s.ents[i]
	e.first = sg.Source
	e.sources = sourceBit(sg.Source)
	e.setHints(sg.Hints)
	s.enqueue(i, now, true)
	s.st.New[sg.Source]++
	return true
}

func (s *Scheduler) alloc(k peerKey, now int64) (uint32, bool) {
	if len(s.peers) >= s.cfg.MaxPeers {
		s.st.DroppedFull++
		if !s.fullWarn {
			s.fullWarn = true
			s.log.Warn("peer table full: new peers are dropped", "max_peers", s.cfg.MaxPeers)
		}
		return 0, false
	}
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = uint32(len(s.ents))
		s.ents = append(s.ents, entry{})
	}
	s.ents[i] = entry{ip: k.ip, port: k.port, torrent: k.torrent, heapIdx: -1, lastSeen: secs(now)}
	s.peers[k] = i
	return i, true
}

// Observed feeds back an observation of a session the scheduler did not start (the
// listener's incoming ones). If the peer told its listen port, its entry counts as
// contacted now (its revisit moves out) or, if unknown, is created with source incoming
// so that it is visited actively later. Its PEX peers are not added: the caller
// routes them through Add.
func (s *Scheduler) Observed(obs probe.Observation) {
	defer s.signal() // after the unlock: the entry's due time may have changed
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ti, ok := s.torIdx[obs.Torrent]
	if !ok {
		s.st.UnknownTorrent++
		return
	}
	if s.endHeldIncoming(ti, obs, now) {
		return
	}
	if obs.ListenPort == 0 || !obs.Outcome.Reached() {
		return
	}
	addr := netip.AddrPortFrom(obs.Addr.Addr(), obs.ListenPort)
	if err := validSighting(addr, discovery.SourceIncoming); err != nil {
		s.st.Rejected++
		s.log.Debug("incoming observation rejected", "torrent", obs.Torrent, "err", err)
		return
	}
	s.st.Received[discovery.SourceIncoming]++
	k := peerKey{addr.Addr().Unmap().As16(), obs.ListenPort, ti}
	i, ok := s.peers[k]
	if !ok {
		if i, ok = s.alloc(k, now); !ok {
			return
		}
		s.ents[i].first = discovery.SourceIncoming
		s.st.New[discovery.SourceIncoming]++
	}
	e := &s.ents[i]
	e.sources |= sourceBit(discovery.SourceIncoming)
	e.lastSeen = secs(now)
	if e.flags&flReached == 0 {
		e.setHints(obs.Hints()) // how the peer reached us is the best guess until we reach it
	}
	switch e.state {
	case stInFlight, stDone:
		return // our own session will reschedule it; a done peer stays done
	case stQueued:
		s.unqueue(i)
	case stWaitingIP:
		s.unwait(i)
	case stGivenUp:
		s.st.GivenUp--
		s.st.Revived++
	}
	s.result(i, obs, now)
}

// AddHints adds hints to a known peer's entry: a hybrid's peer that reached btda with the
// torrent's other wire hash gets HintOtherHash, so that btda's visits use it too. A peer
// the scheduler does not know is left alone; nothing is counted.
func (s *Scheduler) AddHints(torrent metainfo.Hash, addr netip.AddrPort, h discovery.Hints) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.torIdx[torrent]
	if !ok {
		return
	}
	if i, ok := s.peers[peerKey{addr.Addr().Unmap().As16(), addr.Port(), ti}]; ok {
		e := &s.ents[i]
		e.setHints(e.hints() | h)
	}
}

// hints returns how to reach the peer, kept in two bits of flags so the entry stays small.
func (e *entry) hints() discovery.Hints {
	var h discovery.Hints
	if e.flags&flHintEncryption != 0 {
		h |= discovery.HintEncryption
	}
	if e.flags&flHintUTP != 0 {
		h |= discovery.HintUTP
	}
	if e.flags&flHintOtherHash != 0 {
		h |= discovery.HintOtherHash
	}
	return h
}

func (e *entry) setHints(h discovery.Hints) {
	e.flags &^= flHintEncryption | flHintUTP
	if h&discovery.HintEncryption != 0 {
		e.flags |= flHintEncryption
	}
	if h&discovery.HintUTP != 0 {
		e.flags |= flHintUTP
	}
	if h&discovery.HintOtherHash != 0 {
		e.flags |= flHintOtherHash // the hash that found the peer keeps reaching it
	}
}
