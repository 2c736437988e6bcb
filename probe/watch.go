package probe

import (
	"sync"
	"sync/atomic"
	"time"
)

// Watching: a session that shows a peer below the threshold downloading is held open past
// the quiet window, so the peer's own haves show the crossing as it happens, with its exact
// time, instead of a revisit finding it (or missing a peer that leaves soon after it
// finished). Held connections are few and bounded by a Watcher's budget, which goes to the
// peers with the smallest estimated time to the threshold.

// Defaults of the zero WatchConfig fields, also the configuration file's.
const (
	// DefaultWatchBudget: held connections at once. Each is one socket and one parked
	// goroutine with a 4 KiB read buffer; keep it well under the descriptor limit.
	DefaultWatchBudget = 4000
	// DefaultWatchMax bounds one held connection: a peer that has not crossed by then goes
	// back to the schedule (its revisit comes at the estimated crossing).
	DefaultWatchMax = 30 * time.Minute
	// DefaultWatchSilence ends a held connection that sent nothing (not even a keep-alive)
	// for this long: the peer stalled or left. Real clients send keep-alives every 60–120 s.
	DefaultWatchSilence = 150 * time.Second
	// DefaultWatchKeepAlive: how often a held connection sends a keep-alive when it wrote
	// nothing else, below every real client's idle timeout (aria2's is 30 s of silence on
	// a link neither side is interested in).
	DefaultWatchKeepAlive = 20 * time.Second
	// DefaultIdleGrace ends a session whose peer showed no movement this long after its
	// initial report (bitfield or have_all and the lazy haves that follow) came in: a seed
	// or a peer not downloading has told us all it will. Longer than settleGap, so haves
	// that follow the report back to back are always read.
	DefaultIdleGrace = 1200 * time.Millisecond
)

// WatchConfig configures a Watcher. Zero fields take the defaults above.
type WatchConfig struct {
	Budget    int           // connections held at once; negative: none
	Max       time.Duration // longest hold of one connection
	Silence   time.Duration // a held connection that sends nothing this long ends
	KeepAlive time.Duration // keep-alive interval of held connections
}

// Watcher hands out the budget of held connections. It is safe for concurrent use; one
// Watcher serves every session of a Prober (SessionConfig.Watch).
type Watcher struct {
	cfg     WatchConfig
	fdLimit func() int // the descriptor limit now (0: unknown); tests replace it
	mu      sync.Mutex
	held    map[*hold]struct{}
}

// fdShare: held connections take at most this share of the descriptor limit (read at each
// hold, so a limit lowered while btda runs is followed), leaving the rest to sessions, the
// listener, the store and the web server.
const fdShare = 8

// hold is one held connection.
type hold struct {
	eta     time.Duration // estimated time to the threshold when it was admitted
	wake    func()        // unblocks the session's read (evictions)
	evicted atomic.Bool   // set (under Watcher.mu) before wake is called
}

// NewWatcher returns a Watcher with cfg's budget.
func NewWatcher(cfg WatchConfig) *Watcher {
	if cfg.Budget == 0 {
		cfg.Budget = DefaultWatchBudget
	}
	cfg.Budget = max(cfg.Budget, 0)
	if cfg.Max <= 0 {
		cfg.Max = DefaultWatchMax
	}
	if cfg.Silence <= 0 {
		cfg.Silence = DefaultWatchSilence
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultWatchKeepAlive
	}
	return &Watcher{cfg: cfg, fdLimit: fdLimit, held: make(map[*hold]struct{})}
}

// Held is the number of connections held now.
func (w *Watcher) Held() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held)
}

// Budget is the most connections held at once.
func (w *Watcher) Budget() int {
	if w == nil {
		return 0
	}
	return w.cfg.Budget
}

// acquire admits a connection whose peer is eta from the threshold. With the budget spent,
// it takes the place of the held connection farthest from its threshold if that one is
// farther than eta (the evicted session ends at once and its peer goes back to the
// schedule); else it returns nil.
func (w *Watcher) acquire(eta time.Duration, wake func()) *hold {
	w.mu.Lock()
	defer w.mu.Unlock()
	budget := w.cfg.Budget
	if lim := w.fdLimit(); lim > 0 {
		budget = min(budget, lim/fdShare)
	}
	if budget == 0 {
		return nil
	}
	if len(w.held) >= budget {
		var far *hold
		for h := range w.held {
			if far == nil || h.eta > far.eta {
				far = h
			}
		}
		if far == nil || far.eta <= eta {
			return nil
		}
		far.evicted.Store(true)
		delete(w.held, far)
		far.wake()
	}
	h := &hold{eta: eta, wake: wake}
	w.held[h] = struct{}{}
	return h
}

// Shed ends the held connection farthest from its threshold, if any: the prober calls it
// when a dial fails for want of descriptors, so held connections give way to new sessions.
func (w *Watcher) Shed() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var far *hold
	for h := range w.held {
		if far == nil || h.eta > far.eta {
			far = h
		}
	}
	if far != nil {
		far.evicted.Store(true)
		delete(w.held, far)
		far.wake()
	}
}

// release ends a hold (idempotent; an evicted hold is already gone).
func (w *Watcher) release(h *hold) {
	w.mu.Lock()
	delete(w.held, h)
	w.mu.Unlock()
}

// WatchInfo is what a session needs to decide whether to hold its connection: the
// torrent's threshold and the peer's previous progress point, from the scheduler.
type WatchInfo struct {
	Threshold int   // pieces; 0: unknown, never held
	Prev      Point // the peer's last progress point before this session (zero: none)
}

// eta estimates the time until the observed peer reaches threshold from its speed: over
// the session if it moved during it, else since prev; o's progress must be known. ok is
// false when it is not a peer to watch: at or above the threshold, a seed, partial or super seed,
// regressed, or no progress to measure a speed from.
func eta(o *Observation, moved bool, threshold int, prev Point) (time.Duration, bool) {
	if threshold <= 0 || o.Last.Pieces >= threshold || o.Flags.Seed || o.Flags.UploadOnly ||
		o.Flags.SuperSeedSuspect || o.Flags.Regressed || o.Flags.ShareMode {
		return 0, false
	}
	from := prev
	if moved && o.Last.At.After(o.First.At) && o.Last.Pieces > o.First.Pieces {
		from = o.First
	}
	gained, dt := o.Last.Pieces-from.Pieces, o.Last.At.Sub(from.At)
	if from.At.IsZero() || gained <= 0 || dt <= 0 {
		return 0, false
	}
	const far = 1000 * time.Hour // beyond any hold; avoids overflowing a Duration
	e := dt.Seconds() / float64(gained) * float64(threshold-o.Last.Pieces)
	if e >= far.Seconds() {
		return far, true
	}
	return time.Duration(e * float64(time.Second)), true
}
