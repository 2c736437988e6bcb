// Package collector turns probe Observations into per-peer state, confirmed downloads,
// speeds and Prometheus metrics. Its Recorder is the only writer of peer state: one
// goroutine (Run) commits observations to the bbolt store in batches, and the exported
// counters advance only after their batch has been committed.
package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the zero Config fields, also the configuration file's defaults.
const (
	DefaultThreshold = 0.98 // the 2015 tool's torrent_complete_threshold
	// DefaultBatchSize: bigger batches amortize fsync and page writes; 1,000 keeps a
	// commit short enough that /metrics never waits long behind it.
	DefaultBatchSize   = 1000
	DefaultBatchWait   = time.Second
	DefaultTopNetworks = 20
)

// Config configures a Recorder. Zero fields take the defaults in brackets.
type Config struct {
	StorePath    string        // bbolt file (required)
	StoreOptions store.Options // lock timeout, fault injection
	Threshold    float64       // completion fraction for a confirmed download [DefaultThreshold]
	BatchSize    int           // observations per commit; up to BatchSize+Queue when backlogged [DefaultBatchSize]
	BatchWait    time.Duration // longest wait before committing a partial batch [DefaultBatchWait]
	Queue        int           // observations waiting for the writer [4 × BatchSize]
	Retries      int           // extra attempts for a failed commit before its batch is dropped [3]
	RetryBackoff time.Duration // wait before the first retry, doubled each time [100 ms]
	TopNetworks  int           // networks shown in the top-N tables, the rest folded into "other" [DefaultTopNetworks]

	// KeepRawIP stores each peer's address in its record. Off by default (privacy).
	KeepRawIP bool
	// NoAnonymize keeps the full address instead of its /24 or /48 as the peer's network.
	NoAnonymize bool

	Geo  *geo.DB   // GeoIP databases; nil means every country is ZZ
	RDNS *geo.RDNS // reverse DNS; nil means off (the default). The caller runs it.
}

func (c *Config) defaults() error {
	if c.StorePath == "" {
		return errors.New("collector: no store path")
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.Threshold <= 0 || c.Threshold > 1 {
		return fmt.Errorf("collector: threshold %v is not in (0, 1]", c.Threshold)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.Queue <= 0 {
		c.Queue = 4 * c.BatchSize
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 3
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.TopNetworks <= 0 {
		c.TopNetworks = DefaultTopNetworks
	}
	return nil
}

// ErrStopped is returned by Record once Run has begun shutting down.
var ErrStopped = errors.New("collector: stopped")

// Recorder records observations. Create it with New, start Run, call Record from any
// goroutine, and Close it after Run has returned.
type Recorder struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	thr   thresholdFn
	m     *metrics

	in       chan probe.Observation
	stopping chan struct{}
	stopOnce sync.Once
	sendMu   sync.RWMutex // Record holds it shared while sending; Run takes it to close the door
	closed   bool
	batchLen atomic.Int64

	torrentsMu sync.RWMutex
	torrents   map[metainfo.Hash]int64 // watched torrents and their piece lengths
}

// New opens the store, loads its aggregates and registers the metrics on reg.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Recorder, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	log = log.With("component", "collector")
	st, err := store.Open(cfg.StorePath, cfg.StoreOptions)
	if err != nil {
		return nil, err
	}
	var agg *store.Aggregates
	if err := st.View(func(tx *store.Tx) (err error) { agg, err = tx.Aggregates(); return err }); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("store %s: loading aggregates: %w", cfg.StorePath, err)
	}
	c := &Recorder{cfg: cfg, log: log, store: st, thr: newThreshold(cfg.Threshold),
		in: make(chan probe.Observation, cfg.Queue), stopping: make(chan struct{}),
		torrents: map[metainfo.Hash]int64{}}
	c.m = newMetrics(c, agg, st.Size())
	if err := c.m.register(reg); err != nil {
		_ = st.Close()
		return nil, err
	}
	if city, _ := cfg.Geo.Loaded(); !city {
		log.Info("no GeoIP city database: every country is ZZ")
	}
	return c, nil
}

// Aggregates returns a copy of the committed aggregates.
func (c *Recorder) Aggregates() *store.Aggregates { return c.m.view.copy() }

// AddTorrent declares a watched torrent and its piece length (bytes), which speeds need.
// Its per-torrent series are exported at zero from then on.
func (c *Recorder) AddTorrent(h metainfo.Hash, pieceLength int64) {
	c.torrentsMu.Lock()
	c.torrents[h] = pieceLength
	c.torrentsMu.Unlock()
}

func (c *Recorder) pieceLength(h metainfo.Hash) int64 {
	c.torrentsMu.RLock()
	defer c.torrentsMu.RUnlock()
	return c.torrents[h]
}

// watched returns the watched torrents, for their series at zero.
func (c *Recorder) watched() []metainfo.Hash {
	c.torrentsMu.RLock()
	defer c.torrentsMu.RUnlock()
	out := make([]metainfo.Hash, 0, len(c.torrents))
	for h := range c.torrents {
		out = append(out, h)
	}
	return out
}

// pending is the number of observations queued or batched, not yet committed.
func (c *Recorder) pending() int { return len(c.in) + int(c.batchLen.Load()) }

// Record queues the observation for the writer. It blocks while the queue is full, until
// ctx is done or the recorder stops.
func (c *Recorder) Record(ctx context.Context, o probe.Observation) error {
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	if c.closed {
		return ErrStopped
	}
	// The writer needs neither the bit set nor the PEX list; drop them to keep the queue small.
	o.Bitfield, o.PEX, o.Err = nil, nil, nil
	select {
	case c.in <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopping:
		return ErrStopped
	}
}

// Run commits queued observations until ctx is done, then commits everything still queued
// and returns. Call it once.
func (c *Recorder) Run(ctx context.Context) error {
	batch := make([]probe.Observation, 0, c.cfg.BatchSize)
	tick := time.NewTicker(c.cfg.BatchWait)
	defer tick.Stop()
	flush := func() {
		if len(batch) > 0 {
			c.flush(batch)
			clear(batch)
			batch = batch[:0]
			c.batchLen.Store(0)
		}
	}
	for {
		select {
		case <-ctx.Done():
			c.stopOnce.Do(func() { close(c.stopping) })
			c.sendMu.Lock() // wait for every Record in flight to return
			c.closed = true
			c.sendMu.Unlock()
			for {
				select {
				case o := <-c.in:
					batch = append(batch, o)
					if len(batch) >= c.cfg.BatchSize {
						flush()
					}
					continue
				default:
				}
				break
			}
			flush()
			return nil
		case o := <-c.in:
			batch = append(batch, o)
			c.batchLen.Store(int64(len(batch)))
			if len(batch) >= c.cfg.BatchSize {
				// Group commit: when sessions end faster than commits, what queued up
				// during the last commit goes into this one (at most a queue's worth more),
				// so one fsync and one rewrite of the touched pages serve them all. Each
				// Record blocked on a full queue holds a probe session's slot.
				for more := true; more && len(batch) < c.cfg.BatchSize+c.cfg.Queue; {
					select {
					case o := <-c.in:
						batch = append(batch, o)
					default:
						more = false
					}
				}
				c.batchLen.Store(int64(len(batch)))
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// Close closes the store. Call it after Run has returned.
func (c *Recorder) Close() error { return c.store.Close() }

// flush commits one batch, retrying a failed commit a few times. A failed commit changes
// nothing (bbolt rolls it back, and in-memory counters only move after success), so a retry
// can never count anything twice. After the last retry the batch is dropped and logged:
// probing goes on, and those peers are simply seen again at their next observation.
func (c *Recorder) flush(batch []probe.Observation) {
	wait := c.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		start := time.Now()
		var res *batchResult
		err := c.store.Update(func(tx *store.Tx) error {
			var err error
			res, err = c.apply(tx, batch)
			return err
		})
		if err == nil {
			c.m.commitDuration.Observe(time.Since(start).Seconds())
			c.m.commits.Inc()
			c.committed(res)
			return
		}
		reason := failureReason(err)
		c.m.commitFailures.WithLabelValues(reason).Inc()
		if attempt >= c.cfg.Retries {
			c.m.dropped.Add(float64(len(batch)))
			c.log.Error("store commit failed; batch dropped", "observations", len(batch), "reason", reason, "err", err)
			return
		}
		c.log.Warn("store commit failed; retrying", "observations", len(batch), "reason", reason, "attempt", attempt+1, "err", err)
		time.Sleep(wait)
		wait *= 2
	}
}

// Commit failure reasons (the `reason` label).
var failureReasons = []string{"no_space", "io", "closed", "other"}

func failureReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, berrors.ErrMaxSizeReached):
		return "no_space"
	case errors.Is(err, syscall.EIO):
		return "io"
	case errors.Is(err, berrors.ErrDatabaseNotOpen), errors.Is(err, fs.ErrClosed):
		return "closed"
	}
	return "other"
}

// committed publishes a committed batch: aggregates, then event metrics.
func (c *Recorder) committed(r *batchResult) {
	c.m.view.add(r.delta, c.store.Size())
	for i := range r.downloads {
		c.logDownload(&r.downloads[i])
	}
	for s, n := range r.observed {
		if n > 0 {
			c.m.observed.WithLabelValues(sourceLabel(s)).Add(n)
		}
	}
	for s, n := range r.firstSeen {
		if n > 0 {
			c.m.firstSeen.WithLabelValues(sourceLabel(s)).Add(n)
		}
	}
	for _, sp := range r.speeds {
		c.m.speed.WithLabelValues(sp.continent).Observe(sp.bytesPerSecond)
	}
	if r.duplicates > 0 {
		c.m.duplicates.Add(float64(r.duplicates))
	}
	if r.recordErrors > 0 {
		c.m.recordErrors.Add(float64(r.recordErrors))
	}
}
