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
	Hints   discovery.Hints  // how to reach it: what worked last time, else what its sources said

	// For the session's watch decision (probe.WatchInfo): the torrent's threshold in
	// pieces (0: unknown) and the peer's last progress point (zero: none).
	Threshold int
	Prev      probe.Point
	// Hold frees the session's slot and its IP while its connection is held open to
	// watch the peer (probe.Target.OnHold); the session still ends through OnResult.
	Hold func()
}

// ProbeFunc runs one session. It must return when ctx is cancelled.
type ProbeFunc func(ctx context.Context, t Target) probe.Observation

// DoneFunc decides from a reached peer's observation that it needs no more visits.
// threshold is the torrent's completion threshold in pieces (0 when not known yet).
type DoneFunc func(obs probe.Observation, threshold int) bool

// DefaultDone reports whether the peer is at or above the threshold, or is a seed.
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
	// OnResult holds the session's slot, which is the intended back-pressure. It is where
	// the caller turns obs.PEX into sightings for Add, with t.Torrent (a failed session
	// may leave obs.Torrent empty).
	OnResult func(t Target, obs probe.Observation)
	Done     DoneFunc // default DefaultDone
	Logger   *slog.Logger
	Clock    Clock // default RealClock

	MaxInFlight int // sessions running at once
	// NewHeadStart: a due never-contacted peer goes before due revisits and retries, unless
	// they have been due for longer than this before it; so new peers come first, yet a
	// steady stream of them cannot starve revisits. Negative: new first only on ties.
	NewHeadStart time.Duration
	// RevisitDelay is the longest delay from the end of a session that reached the peer to
	// the next; RevisitMin the shortest (see revisit.go: downloading peers are revisited
	// shortly after their estimated crossing).
	RevisitDelay time.Duration
	RevisitMin   time.Duration
	// Watching says the prober holds sessions with downloading peers open until they cross
	// (probe.Watcher): a downloading peer is then revisited before its estimated crossing,
	// so that the visit finds it still below and can watch it cross, rather than after.
	Watching  bool
	RetryBase time.Duration // first retry delay after a failed contact; doubles each time
	RetryMax  time.Duration // cap of the retry delay
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
	}{{"RevisitDelay", cfg.RevisitDelay}, {"RevisitMin", cfg.RevisitMin}, {"RetryBase", cfg.RetryBase}, {"RetryMax", cfg.RetryMax},
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
	if cfg.RevisitMin == 0 {
		cfg.RevisitMin = DefaultMinRevisit
	}
	cfg.RevisitMin = min(cfg.RevisitMin, cfg.RevisitDelay)
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
