// Package scheduler decides which peer to probe next. It keeps one entry per peer identity
// (torrent, IP, listen port) fed by every discovery source, and dispatches probe sessions
// from two due-time heaps: never-contacted peers first, then revisits and retries. It
// bounds the sessions in flight, opens at most one connection per IP at a time, retries
// failed contacts with exponential back-off, stops revisiting peers that are done, and
// forgets peers nobody has reported or reached for a while.
//
// Sightings come in only through Add, and observations of sessions it did not start (the
// listener's) through Observed. The scheduler never dials itself: the caller supplies a
// ProbeFunc and receives every Observation through Config.OnResult. Nor does it turn an
// observation's PEX peers into sightings: the caller sends them through Add like every
// other source's, so that all sightings take one route.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxInFlight   = 2000
	DefaultNewHeadStart  = time.Minute
	DefaultRevisitDelay  = 300 * time.Second
	DefaultRetryBase     = 30 * time.Second
	DefaultRetryMax      = 30 * time.Minute
	DefaultMaxRetries    = 5
	DefaultSeedLikeFor   = time.Hour
	DefaultForgetAfter   = 24 * time.Hour
	DefaultMaxPeers      = 4_000_000
	DefaultShutdownGrace = 10 * time.Second
)

// SourceSet is a bit set of discovery sources.
type SourceSet uint8

func sourceBit(s discovery.Source) SourceSet { return 1 << (s & 7) }

// Has reports whether s is in the set.
func (ss SourceSet) Has(s discovery.Source) bool { return ss&sourceBit(s) != 0 }

// Target is one session the scheduler asks the caller to run.
type Target struct {
	Torrent metainfo.Hash
	Addr    netip.AddrPort
	Source  discovery.Source // the source that first reported the peer: what led to the session
	Sources SourceSet        // every source that has reported the peer so far
	Attempt int              // 1 for a first try; n for the n-th consecutive try after failures
	Revisit bool             // the peer was reached at least once before
}

// ProbeFunc runs one session. It must return when ctx is cancelled.
type ProbeFunc func(ctx context.Context, t Target) probe.Observation

// DoneFunc decides from a reached peer's observation that it needs no more visits.
// threshold is the torrent's completion threshold in pieces (0 when not known yet).
type DoneFunc func(obs probe.Observation, threshold int) bool

// DefaultDone: the peer is at or above the threshold, or it is a seed.
func DefaultDone(obs probe.Observation, threshold int) bool {
	if obs.Flags.Seed {
		return true
	}
	return obs.Known && threshold > 0 && obs.Last.Pieces >= threshold
}

// Config configures a Scheduler. Zero fields take the defaults above.
type Config struct {
	Probe ProbeFunc // required
	// OnResult receives every observation of a session the scheduler started, from that
	// session's goroutine (so concurrently), before the entry is rescheduled. A slow
	// OnResult holds the session's slot, which is the intended back-pressure.
	OnResult func(t Target, obs probe.Observation)
	Done     DoneFunc // default DefaultDone
	Logger   *slog.Logger
	Clock    Clock // default RealClock

	MaxInFlight int // sessions running at once
	// NewHeadStart: a due never-contacted peer goes before due revisits and retries, unless
	// they have been due for longer than this before it; so new peers come first, yet a
	// steady stream of them cannot starve revisits. Negative: new first only on ties.
	NewHeadStart time.Duration
	RevisitDelay time.Duration // from the end of a session that reached the peer to the next
	RetryBase    time.Duration // first retry delay after a failed contact; doubles each time
	RetryMax     time.Duration // cap of the retry delay
	// MaxRetries is how many consecutive failed contacts are retried before the peer is
	// given up. A new sighting of a given-up peer revives it with a fresh retry budget
	// (a source still reports it, so it may be back). Negative: no retries.
	MaxRetries int
	// SeedLikeFor: a peer that kept saying upload_only (or seed) for this long is done.
	SeedLikeFor time.Duration
	// ForgetAfter: a peer neither reported by a source nor reached for this long is evicted.
	ForgetAfter time.Duration
	MaxPeers    int // known peers at most; sightings of new peers beyond it are dropped
	// DialRate limits how many sessions start per second (0: unlimited); DialBurst is the
	// limiter's burst (default: max(1, DialRate)).
	DialRate  rate.Limit
	DialBurst int
	// ShutdownGrace is how long in-flight sessions may run on after Run's context ends
	// before their own context is cancelled.
	ShutdownGrace time.Duration
}

// Stats is a snapshot of the scheduler's state and counters, for metrics at scrape time.
type Stats struct {
	Torrents  int // watched torrents
	Known     int // known peers (every state)
	Queued    int // entries waiting in the heaps
	Due       int // queued entries due now
	InFlight  int // sessions running
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
	flNewQueue uint8 = 1 << iota // queued in the new-peer heap (else the revisit heap)
	flReached                    // reached at least once
	flOrphan                     // its torrent was removed while the session ran
)

// entry is one known peer. It holds no pointer so the GC never scans the table, and it
// is kept small: 56 bytes.
type entry struct {
	ip        [16]byte
	due       int64 // nanoseconds since base
	torrent   uint32
	heapIdx   int32
	lastSeen  int32 // seconds since base, last sighting
	lastOK    int32 // seconds since base, last contact that reached the peer
	seedSince int32 // seconds since base + 1 (0: not seed-like)
	port      uint16
	sources   SourceSet
	first     discovery.Source
	state     uint8
	fails     uint8
	flags     uint8
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

// Scheduler schedules probe sessions. Its methods are safe for concurrent use.
type Scheduler struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	base  time.Time
	lim   *rate.Limiter

	wake    chan struct{}
	running atomic.Bool
	wg      sync.WaitGroup

	// launch starts a session; tests replace it to drive the scheduler step by step.
	launch func(ctx context.Context, idx uint32, t Target)

	mu        sync.Mutex
	ents      []entry
	free      []uint32
	peers     map[peerKey]uint32
	torrents  []torrentInfo
	torIdx    map[metainfo.Hash]uint32
	freeTor   []uint32
	newQ      queue
	revQ      queue
	busy      map[[16]byte][]uint32 // IPs with a session in flight -> entries waiting for it
	inFlight  int
	nextSweep int64
	st        Stats
	fullWarn  bool
}

// New checks cfg and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Probe == nil {
		return nil, errors.New("scheduler: Config.Probe is nil")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RevisitDelay", cfg.RevisitDelay}, {"RetryBase", cfg.RetryBase}, {"RetryMax", cfg.RetryMax},
		{"SeedLikeFor", cfg.SeedLikeFor}, {"ForgetAfter", cfg.ForgetAfter}, {"ShutdownGrace", cfg.ShutdownGrace}} {
		if d.v < 0 {
			return nil, fmt.Errorf("scheduler: Config.%s is negative (%v)", d.name, d.v)
		}
	}
	if cfg.MaxInFlight < 0 || cfg.MaxPeers < 0 || cfg.DialBurst < 0 || cfg.DialRate < 0 {
		return nil, fmt.Errorf("scheduler: negative limit (MaxInFlight %d, MaxPeers %d, DialRate %v, DialBurst %d)",
			cfg.MaxInFlight, cfg.MaxPeers, cfg.DialRate, cfg.DialBurst)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	switch {
	case cfg.NewHeadStart == 0:
		cfg.NewHeadStart = DefaultNewHeadStart
	case cfg.NewHeadStart < 0:
		cfg.NewHeadStart = 0
	}
	if cfg.RevisitDelay == 0 {
		cfg.RevisitDelay = DefaultRevisitDelay
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryMax < cfg.RetryBase {
		cfg.RetryMax = cfg.RetryBase
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	case cfg.MaxRetries > 250:
		cfg.MaxRetries = 250 // the counter is a byte
	}
	if cfg.SeedLikeFor == 0 {
		cfg.SeedLikeFor = DefaultSeedLikeFor
	}
	if cfg.ForgetAfter == 0 {
		cfg.ForgetAfter = DefaultForgetAfter
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.MaxPeers > math.MaxInt32 {
		cfg.MaxPeers = math.MaxInt32 // heap positions are int32
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Done == nil {
		cfg.Done = DefaultDone
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		cfg:    cfg,
		log:    log.With("component", "scheduler"),
		clock:  cfg.Clock,
		base:   cfg.Clock.Now(),
		wake:   make(chan struct{}, 1),
		peers:  make(map[peerKey]uint32),
		torIdx: make(map[metainfo.Hash]uint32),
		busy:   make(map[[16]byte][]uint32),
	}
	if cfg.DialRate > 0 {
		burst := cfg.DialBurst
		if burst == 0 {
			burst = max(1, int(cfg.DialRate))
		}
		s.lim = rate.NewLimiter(cfg.DialRate, burst)
	}
	s.newQ.ents = &s.ents
	s.revQ.ents = &s.ents
	s.nextSweep = int64(s.sweepEvery())
	s.st.Received = make(map[discovery.Source]uint64)
	s.st.New = make(map[discovery.Source]uint64)
	s.launch = s.goSession
	return s, nil
}

func (s *Scheduler) sweepEvery() time.Duration {
	return max(s.cfg.ForgetAfter/8, time.Second)
}

// now returns nanoseconds since base (monotonic with the real clock).
func (s *Scheduler) now() int64 { return int64(s.clock.Now().Sub(s.base)) }

func secs(ns int64) int32 { return int32(ns / int64(time.Second)) }

// signal wakes Run without blocking.
func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
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
// so that it is visited actively later. Its PEX peers are the caller's to route (as Add).
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
		e.lastOK = secs(now)
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
		s.enqueue(i, now+int64(s.cfg.RevisitDelay), false)
	}
}

// dispatch starts every session that is due and allowed, and returns when something
// becomes due next (ok false: nothing; sleep until woken).
func (s *Scheduler) dispatch(ctx context.Context) (next time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	wait, ok := s.dispatchLocked(ctx, now)
	return s.base.Add(time.Duration(now) + wait), ok
}

func (s *Scheduler) dispatchLocked(ctx context.Context, now int64) (wait time.Duration, ok bool) {
	if now >= s.nextSweep {
		s.sweep(now)
		s.nextSweep = now + int64(s.sweepEvery())
	}
	wait, ok = time.Duration(s.nextSweep-now), true
	for s.inFlight < s.cfg.MaxInFlight {
		q, i, has := s.pick(now)
		if !has {
			break
		}
		if s.lim != nil && s.lim.TokensAt(s.base.Add(time.Duration(now))) < 1 {
			need := (1 - s.lim.TokensAt(s.base.Add(time.Duration(now)))) / float64(s.lim.Limit())
			wait = min(wait, time.Duration(math.Ceil(need*1e9))+time.Microsecond)
			return wait, true
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
		}
		s.launch(ctx, i, t)
	}
	if s.inFlight < s.cfg.MaxInFlight {
		for _, q := range []*queue{&s.newQ, &s.revQ} {
			if i, has := q.top(); has {
				wait = min(wait, time.Duration(max(s.ents[i].due-now, 0)))
			}
		}
	}
	return wait, ok
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
	ws := s.busy[e.ip]
	delete(s.busy, e.ip)
	for _, w := range ws {
		// Re-queue with their old due time: they were due already.
		s.enqueue(w, s.ents[w].due, s.ents[w].flags&flNewQueue != 0)
	}
	s.inFlight--
	if e.flags&flOrphan != 0 {
		*e = entry{}
		s.free = append(s.free, i)
	} else {
		s.result(i, obs, now)
	}
	s.mu.Unlock()
	s.signal()
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

// Run dispatches sessions until ctx ends. Then it starts no new session, lets the running
// ones finish for up to ShutdownGrace, cancels the rest, waits for them and returns.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	s.log.Info("scheduler started", "max_in_flight", s.cfg.MaxInFlight, "revisit_delay", s.cfg.RevisitDelay)
	// Sessions outlive ctx by the grace period, so their context is not derived from it.
	sessCtx, cancelSess := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSess()
	timer := s.clock.NewTimer(time.Hour)
	for ctx.Err() == nil {
		next, ok := s.dispatch(sessCtx)
		timer.Stop()
		if ok {
			timer.ResetAt(next)
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-timer.C():
		}
	}
	timer.Stop()
	s.mu.Lock()
	n := s.inFlight
	s.mu.Unlock()
	s.log.Info("scheduler stopping", "in_flight", n, "grace", s.cfg.ShutdownGrace)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	grace := s.clock.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C():
		cancelSess()
		<-done
	}
	s.log.Info("scheduler stopped")
	return nil
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
