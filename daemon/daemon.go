// Package daemon runs a watching btda. It owns what happens between the stages of the
// data flow (DESIGN.md §1), never the stages themselves:
//
//   - the watch list: Load applies the registry's Diff to every part (scheduler, recorder,
//     trackers, DHT, magnet metadata fetch);
//   - magnets: peers found for a magnet are collected, its info dictionary is fetched from
//     them (BEP 9), and the torrent becomes active;
//   - sightings: every peer address, from trackers and the DHT (one channel), PEX in
//     probe sessions and a magnet's x.pe peers, passes through one filter (route) to the
//     scheduler;
//   - observations: every probe session's result is counted (probe metrics), recorded
//     (collector) and fed back (scheduler, PEX);
//   - start and stop order: sources and sessions stop first, the recorder flushes what
//     they produced, and Close shuts the store last.
//
// cmd/btda constructs the parts from the configuration and hands them to New.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/dht"
	"github.com/btda/btda/discovery/tracker"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// Shutdown budget: ShutdownTimeout in all. Sessions get SessionGrace to finish, trackers
// TrackerStopTimeout for their event=stopped announces, then the recorder flushes.
const (
	ShutdownTimeout    = 4 * time.Second
	SessionGrace       = time.Second
	TrackerStopTimeout = 1500 * time.Millisecond
)

// SightingsBuffer is the capacity to give the channel sources send their sightings into.
const SightingsBuffer = 4096

// Config are the parts of a running btda, constructed by the caller. The daemon closes
// what it is given (Close), the store last.
type Config struct {
	Registry  *discovery.Registry       // the watch list (required)
	Sightings <-chan discovery.Sighting // what trackers and the DHT send (required)
	Recorder  *collector.Recorder       // required
	Prober    *probe.Prober             // required

	// PeerListener accepts incoming peers (nil: none). Listener holds the passive
	// listener's limits; its Lookup and Deliver are the daemon's.
	PeerListener net.Listener
	// PeerListenerUTP accepts incoming uTP peers (nil: none), served by the same listener
	// (one set of per-IP and total caps); usually the socket Prober dials uTP with too.
	PeerListenerUTP net.Listener
	Listener        probe.ListenerConfig
	// Scheduler holds the scheduler's limits; its Probe and OnResult are the daemon's.
	Scheduler scheduler.Config
	// Metadata configures the magnet metadata fetch (identity, dial timeout).
	Metadata probe.MetadataConfig

	Trackers *tracker.Announcer // nil: trackers off
	DHT      *dht.Node          // nil: DHT off
	Geo      *geo.DB            // closed by Close (nil: none)
	RDNS     *geo.RDNS          // run by Run (nil: reverse DNS off)

	// PersistSchedule keeps the addresses of the peers still watched in the store
	// (storage.persist_schedule), so that a restart goes on with them.
	PersistSchedule bool

	Threshold float64 // completion fraction (torrents.completion_threshold)
	Shard     Shard   // the torrents this instance watches (zero value: all)
	Logger    *slog.Logger
}

// Daemon is a running btda's orchestration.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	registry  *discovery.Registry
	recorder  *collector.Recorder
	prober    *probe.Prober
	metrics   *probe.Metrics
	listener  *probe.Listener
	sched     *scheduler.Scheduler
	metadata  *metadataFetcher
	sightings <-chan discovery.Sighting

	mu       sync.Mutex // serialises changes to the watch list (Load, metadata arrival)
	restored bool       // the kept schedule was handled (after the first Load)

	status statusState // per-source sightings and recent probes, for the status views
}

// New wires the parts together and registers the daemon's scrape-time collectors (probe,
// queue, watch list) on reg.
func New(cfg Config, reg prometheus.Registerer) (*Daemon, error) {
	if cfg.Registry == nil || cfg.Sightings == nil || cfg.Recorder == nil || cfg.Prober == nil {
		return nil, errors.New("daemon: Registry, Sightings, Recorder and Prober are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger.With("component", "daemon"), registry: cfg.Registry,
		recorder: cfg.Recorder, prober: cfg.Prober, sightings: cfg.Sightings}

	sc := cfg.Scheduler
	sc.Probe = d.probe
	sc.OnResult = d.result
	sc.Done = scheduler.DefaultDone
	sc.Logger = cfg.Logger
	sc.ShutdownGrace = SessionGrace
	var err error
	if d.sched, err = scheduler.New(sc); err != nil {
		return nil, err
	}
	if cfg.PeerListener != nil || cfg.PeerListenerUTP != nil {
		lc := cfg.Listener
		lc.Lookup = d.lookupActive
		lc.InfoHashes = d.infoHashes
		lc.Deliver = d.incoming
		lc.Watch = d.incomingWatch
		lc.OnHold = d.incomingHeld
		lc.ShutdownTimeout = SessionGrace
		lc.Logger = cfg.Logger
		if d.listener, err = probe.NewListener(cfg.Prober, lc); err != nil {
			return nil, err
		}
	}
	d.metrics = probe.NewMetrics(cfg.Prober, d.listener, d.sched.Stats().Limit)
	d.metadata = newMetadataFetcher(d, cfg.Metadata)
	for _, c := range []prometheus.Collector{d.metrics, scheduler.NewCollector(d.sched), discovery.NewCollector(cfg.Registry)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("daemon: registering metrics: %w", err)
		}
	}
	return d, nil
}

// Run runs every part until ctx is done, then stops them in order: sources and sessions
// first, then the recorder commits what they produced. Close releases the rest.
func (d *Daemon) Run(ctx context.Context) error {
	// The recorder outlives the others: it must take every last observation.
	recCtx, recCancel := context.WithCancel(context.WithoutCancel(ctx))
	recDone := make(chan error, 1)
	go func() { recDone <- d.recorder.Run(recCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.sched.Run(gctx) })
	for _, ln := range []net.Listener{d.cfg.PeerListener, d.cfg.PeerListenerUTP} {
		if d.listener != nil && ln != nil {
			g.Go(func() error { return d.listener.Serve(gctx, ln) })
		}
	}
	g.Go(func() error { return d.readSightings(gctx) })
	g.Go(func() error { return d.metadata.run(gctx) })
	if d.cfg.PersistSchedule {
		g.Go(func() error { return d.keepSchedule(gctx) })
	}
	if r := d.cfg.RDNS; r != nil {
		g.Go(func() error { return r.Run(gctx) })
	}
	if a := d.cfg.Trackers; a != nil {
		g.Go(func() error { return a.Run(gctx) })
	}
	if n := d.cfg.DHT; n != nil {
		g.Go(func() error {
			err := n.Run(gctx)
			if err != nil && gctx.Err() != nil {
				// At shutdown the node only saves its node file, a warm-start cache: failing
				// to (a full disk) is worth a log line, not a failed exit.
				d.log.Error("DHT node file not saved", "err", err)
				return nil
			}
			return err
		})
	}
	err := g.Wait()
	if d.cfg.PersistSchedule {
		d.saveSchedule() // the scheduler has stopped: the last word on who is watched
	}
	recCancel()
	if rerr := <-recDone; rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = errors.Join(err, fmt.Errorf("recorder: %w", rerr))
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Close releases the parts after Run has returned (or when it never ran); the store is
// closed last.
func (d *Daemon) Close() error {
	return closeParts(d.cfg.DHT, []net.Listener{d.cfg.PeerListener, d.cfg.PeerListenerUTP}, d.cfg.Geo, d.cfg.Recorder)
}

// closeParts closes what a daemon is given, in order, the recorder (its store) last. Nil
// parts are skipped, so the caller can clean up a half-built daemon the same way.
func closeParts(node *dht.Node, lns []net.Listener, db *geo.DB, rec *collector.Recorder) error {
	var errs []error
	if node != nil {
		node.Close()
	}
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close() // Serve closed it already when it ran
		}
	}
	if db != nil {
		_ = db.Close()
	}
	if rec != nil {
		if err := rec.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ClosePartial releases the parts of a configuration whose daemon was never built (New
// failed, or construction stopped halfway).
func ClosePartial(cfg Config) error {
	return closeParts(cfg.DHT, []net.Listener{cfg.PeerListener, cfg.PeerListenerUTP}, cfg.Geo, cfg.Recorder)
}

// Load reads the watch list from src (this instance's shard of it) into the registry and
// brings every part in line with the difference: added torrents are started everywhere,
// removed ones stopped, changed ones (metadata arrived, trackers changed) started again.
// Inputs that fail to load are in the report and logged by the registry.
func (d *Daemon) Load(ctx context.Context, src discovery.WatchSources) (discovery.Diff, discovery.LoadReport, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src.Keep = d.cfg.Shard.Keep
	diff, report, err := d.registry.Reload(ctx, src)
	if err != nil {
		return diff, report, err
	}
	for _, e := range diff.Removed {
		d.stop(e)
	}
	for _, e := range diff.Added {
		d.start(e)
	}
	for _, e := range diff.Changed {
		d.start(e)
	}
	if !d.restored {
		d.restored = true
		d.restoreSchedule()
	}
	return diff, report, nil
}

// activated brings an entry whose metadata just arrived (Registry.SetMetadata) into play.
func (d *Daemon) activated(e *discovery.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.start(e)
}

// start starts (or restarts, after a change) the work on one watched torrent.
func (d *Daemon) start(e *discovery.Entry) {
	if e.Pending() {
		d.metadata.watch(e)
	} else {
		threshold := collector.Threshold(d.cfg.Threshold, e.Torrent.Pieces)
		if err := d.sched.AddTorrent(e.ID, threshold); err != nil {
			d.log.Error("scheduler refused torrent", "infohash", e.Label(), "err", err)
		}
		d.recorder.AddTorrent(e.ID, e.Torrent.PieceLength)
		d.metadata.forget(e.ID)
	}
	if a := d.cfg.Trackers; a != nil {
		a.Remove(e.ID) // re-added with what is known now (the size, once the metadata is in)
		if info := e.TrackerInfo(); len(info.Tiers) > 0 {
			if err := a.Add(info); err != nil {
				d.log.Warn("trackers not used", "infohash", e.Label(), "err", err)
			}
		}
	}
	if n := d.cfg.DHT; n != nil {
		n.Add(e.ID, e.Hashes()...) // a hybrid is looked up under both its hashes
	}
	for _, sg := range e.MagnetSightings() {
		d.route(sg)
	}
}

// stop ends the work on a torrent no longer watched. Its stored counts stay.
func (d *Daemon) stop(e *discovery.Entry) {
	d.sched.RemoveTorrent(e.ID)
	d.metadata.forget(e.ID)
	if a := d.cfg.Trackers; a != nil {
		a.Remove(e.ID)
	}
	if n := d.cfg.DHT; n != nil {
		n.Remove(e.ID)
	}
}
