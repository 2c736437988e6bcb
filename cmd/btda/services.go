package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/dht"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/discovery/tracker"
	"github.com/btda/btda/internal/config"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// Time budget of a graceful shutdown (shutdownTimeout in all): sessions get
// sessionGrace to finish, trackers stopTimeout for event=stopped, then the store flushes.
const (
	sessionGrace = time.Second
	stopTimeout  = 1500 * time.Millisecond
)

// services are the parts of a running btda that measure: sources, scheduler, prober,
// listener, collector. They are wired here and nowhere else.
type services struct {
	log      *slog.Logger
	cfg      *config.Config
	registry *discovery.Registry

	geo       *geo.DB
	rdns      *geo.RDNS // nil unless geoip.reverse_dns
	collector *collector.Collector
	prober    *probe.Prober
	listener  *probe.Listener
	peerLn    net.Listener
	sched     *scheduler.Scheduler
	announcer *tracker.Announcer // nil when trackers are off
	dhtNode   *dht.Node          // nil when the DHT is off

	sightings chan discovery.Sighting
	metadata  *metadataFetcher

	mu      sync.Mutex
	watched map[metainfo.Hash]*discovery.Entry // by Entry.ID, as the services know them
}

func newServices(cfg *config.Config, registry *discovery.Registry, reg prometheus.Registerer, logger *slog.Logger) (*services, error) {
	s := &services{
		log:       logger,
		cfg:       cfg,
		registry:  registry,
		sightings: make(chan discovery.Sighting, 4096),
		watched:   make(map[metainfo.Hash]*discovery.Entry),
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()

	// GeoIP: a missing or broken database is logged and btda goes on with ZZ.
	s.geo = geo.New()
	if p := cfg.GeoIP.CityDatabase; p != "" {
		if err := s.geo.LoadCity(p); err != nil {
			logger.Error("GeoIP city database not loaded; countries will be ZZ", "component", "geoip", "err", err)
		}
	}
	if p := cfg.GeoIP.ASNDatabase; p != "" {
		if err := s.geo.LoadASN(p); err != nil {
			logger.Error("GeoIP ASN database not loaded", "component", "geoip", "err", err)
		}
	}

	var err error
	if cfg.GeoIP.ReverseDNS {
		// Lookups happen in the rDNS pool, never on a probe's path.
		if s.rdns, err = geo.NewRDNS(geo.RDNSConfig{}, net.DefaultResolver, reg, logger); err != nil {
			return nil, err
		}
	}
	s.collector, err = collector.New(collector.Config{
		StorePath:   cfg.Storage.Path,
		Threshold:   cfg.Torrents.CompletionThreshold,
		BatchSize:   cfg.Storage.CommitBatch,
		BatchWait:   time.Duration(cfg.Storage.CommitInterval),
		TopNetworks: cfg.Metrics.TopNetworks,
		KeepRawIP:   cfg.Storage.StoreRawIPs,
		NoAnonymize: !cfg.GeoIP.AnonymizeIPs,
		Geo:         s.geo,
		RDNS:        s.rdns,
	}, reg, logger)
	if err != nil {
		return nil, err
	}

	s.peerLn, err = net.Listen("tcp", cfg.Peer.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("peer listener: %w", err)
	}
	port := uint16(cfg.AnnouncePort())
	if port == 0 { // listen_address with port 0 (tests): announce the port we got
		port = uint16(s.peerLn.Addr().(*net.TCPAddr).Port)
	}
	if s.prober, err = probe.NewProber(sessionConfig(cfg, port, logger)); err != nil {
		return nil, err
	}
	s.listener, err = probe.NewListener(s.prober, probe.ListenerConfig{
		Lookup:           s.lookupActive,
		Deliver:          s.deliverIncoming,
		HandshakeTimeout: time.Duration(cfg.Probe.HandshakeTimeout),
		MaxPerIP:         cfg.Peer.IncomingPerIP,
		MaxTotal:         cfg.Peer.IncomingTotal,
		ShutdownTimeout:  sessionGrace,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}

	s.sched, err = scheduler.New(scheduler.Config{
		Probe: func(ctx context.Context, t scheduler.Target) probe.Observation {
			return s.prober.Probe(ctx, probe.Target{Torrent: t.Torrent, Pieces: s.pieces(t.Torrent), Addr: t.Addr, Source: t.Source})
		},
		OnResult: func(_ scheduler.Target, obs probe.Observation) {
			// The collector's queue is the back-pressure; it only refuses once stopped.
			_ = s.collector.Record(context.Background(), obs)
		},
		Done:          scheduler.DefaultDone,
		Logger:        logger,
		MaxInFlight:   cfg.Probe.Concurrency,
		RevisitDelay:  time.Duration(cfg.Probe.RevisitDelay),
		RetryBase:     time.Duration(cfg.Probe.RetryBackoff),
		MaxRetries:    cfg.Probe.RetryAttempts,
		ForgetAfter:   time.Duration(cfg.Probe.ForgetAfter),
		DialRate:      rate.Limit(cfg.Probe.DialRate),
		ShutdownGrace: sessionGrace,
	})
	if err != nil {
		return nil, err
	}

	if cfg.Trackers.Enabled {
		s.announcer, err = tracker.NewAnnouncer(tracker.Config{
			Port:        port,
			NumWant:     int32(cfg.Trackers.NumWant),
			Interval:    time.Duration(cfg.Trackers.RequestInterval),
			HTTPTimeout: time.Duration(cfg.Trackers.Timeout),
			UDPBase:     time.Duration(cfg.Trackers.Timeout),
			StopTimeout: stopTimeout,
			UserAgent:   "btda/" + version.Version,
			Logger:      logger,
		}, reg, s.sightings)
		if err != nil {
			return nil, err
		}
	}
	if cfg.DHT.Enabled {
		s.dhtNode, err = dht.New(dht.Config{
			Listen:        cfg.DHT.ListenAddress,
			IPv6:          cfg.DHT.IPv6,
			Bootstrap:     cfg.DHT.BootstrapNodes,
			NodesFile:     dhtNodesFile(cfg),
			PeerPort:      int(port),
			Interval:      time.Duration(cfg.DHT.RequestInterval),
			LookupTimeout: time.Duration(cfg.DHT.LookupTimeout),
		}, s.sightings, reg, logger)
		if err != nil {
			return nil, err
		}
	}
	s.metadata = newMetadataFetcher(s, port)
	reg.MustRegister(&schedulerCollector{s: s})
	ok = true
	return s, nil
}

// sessionConfig is the probe session configuration of cfg; port is sent as `p` (0: none).
func sessionConfig(cfg *config.Config, port uint16, logger *slog.Logger) probe.SessionConfig {
	return probe.SessionConfig{
		Version:          version.Version,
		ListenPort:       port,
		DialTimeout:      time.Duration(cfg.Probe.ConnectTimeout),
		HandshakeTimeout: time.Duration(cfg.Probe.HandshakeTimeout),
		QuietWindow:      time.Duration(cfg.Probe.QuietWindow),
		SessionCap:       time.Duration(cfg.Probe.SessionCap),
		MaxMessages:      cfg.Probe.MessageCap,
		SendInterested:   cfg.Probe.SendInterested,
		Logger:           logger,
	}
}

func dhtNodesFile(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Storage.Path), dht.NodesFileName)
}

// run runs every service until ctx is done, then stops them in order: sources and
// sessions first, then the collector flushes what they produced; bbolt is closed last by
// close.
func (s *services) run(ctx context.Context) error {
	colCtx, colCancel := context.WithCancel(context.Background())
	colDone := make(chan error, 1)
	go func() { colDone <- s.collector.Run(colCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.sched.Run(gctx) })
	g.Go(func() error { return s.listener.Serve(gctx, s.peerLn) })
	g.Go(func() error { return s.routeSightings(gctx) })
	g.Go(func() error { return s.metadata.run(gctx) })
	if s.rdns != nil {
		g.Go(func() error { return s.rdns.Run(gctx) })
	}
	if s.announcer != nil {
		g.Go(func() error { return s.announcer.Run(gctx) })
	}
	if s.dhtNode != nil {
		g.Go(func() error {
			err := s.dhtNode.Run(gctx)
			if err != nil && gctx.Err() != nil {
				// At shutdown the node only saves its node file, a warm-start cache: failing
				// to (a full disk) is worth a log line, not a failed exit.
				s.log.Error("DHT node file not saved", "component", "dht", "err", err)
				return nil
			}
			return err
		})
	}
	err := g.Wait()
	colCancel()
	if cerr := <-colDone; cerr != nil && !errors.Is(cerr, context.Canceled) {
		err = errors.Join(err, fmt.Errorf("collector: %w", cerr))
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// close releases what newServices opened; the store is closed last.
func (s *services) close() {
	if s.dhtNode != nil {
		s.dhtNode.Close()
	}
	if s.peerLn != nil {
		s.peerLn.Close()
	}
	if s.geo != nil {
		s.geo.Close()
	}
	if s.collector != nil {
		if err := s.collector.Close(); err != nil {
			s.log.Error("closing the store", "err", err)
		}
	}
}

// routeSightings passes sightings to the scheduler, except those of torrents still
// waiting for metadata, which feed the metadata fetch instead.
func (s *services) routeSightings(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case sg := <-s.sightings:
			e, ok := s.registry.Lookup(sg.Torrent)
			if !ok {
				continue
			}
			sg.Torrent = e.ID
			if e.State == discovery.StatePendingMetadata {
				s.metadata.candidate(e.ID, sg.Addr, sg.Source)
				continue
			}
			s.sched.Add(sg)
		}
	}
}

// lookupActive routes an incoming handshake to a torrent whose piece count is known.
func (s *services) lookupActive(h metainfo.Hash) (int, bool) {
	e, ok := s.registry.Lookup(h)
	if !ok || e.Torrent == nil {
		return 0, false
	}
	return e.Torrent.Pieces, true
}

func (s *services) pieces(id metainfo.Hash) int {
	n, _ := s.lookupActive(id)
	return n
}

// deliverIncoming records an incoming session under the torrent's ID (a hybrid's v2
// peers handshake with the truncated v2 hash) and tells the scheduler about the peer.
func (s *services) deliverIncoming(obs probe.Observation) {
	if e, ok := s.registry.Lookup(obs.Torrent); ok {
		obs.Torrent = e.ID
	}
	_ = s.collector.Record(context.Background(), obs)
	s.sched.Observed(obs)
}

// apply brings every service in line with the registry's watch list: new torrents are
// added everywhere, removed ones removed, changed ones (metadata arrived) re-added.
func (s *services) apply(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := make(map[metainfo.Hash]*discovery.Entry)
	for _, e := range s.registry.Entries() {
		current[e.ID] = e
	}
	for id, old := range s.watched {
		if _, ok := current[id]; !ok {
			s.remove(old)
			delete(s.watched, id)
		}
	}
	for id, e := range current {
		old, ok := s.watched[id]
		if ok && old == e {
			continue
		}
		s.add(e, now)
		s.watched[id] = e
	}
}

func (s *services) add(e *discovery.Entry, now time.Time) {
	info := tracker.TorrentInfo{Hash: e.ID, Label: e.ID.String(), Tiers: e.Trackers()} // Length 0 until the metadata: the tracker client then announces a non-zero left
	if e.Torrent != nil {
		info.Length = e.Torrent.TotalLength
		threshold := collector.Threshold(s.cfg.Torrents.CompletionThreshold, e.Torrent.Pieces)
		if err := s.sched.AddTorrent(e.ID, threshold); err != nil {
			s.log.Error("scheduler refused torrent", "infohash", e.Label(), "err", err)
		}
		s.collector.AddTorrent(e.ID, e.Torrent.PieceLength)
		s.metadata.forget(e.ID)
	} else {
		s.metadata.watch(e)
	}
	if s.announcer != nil && len(info.Tiers) > 0 {
		s.announcer.Remove(e.ID) // re-add with the size now known
		if err := s.announcer.Add(info); err != nil {
			s.log.Warn("trackers not used", "infohash", e.Label(), "err", err)
		}
	}
	if s.dhtNode != nil {
		s.dhtNode.Add(e.ID)
	}
	for _, sg := range e.MagnetSightings(now) {
		select {
		case s.sightings <- sg:
		default:
		}
	}
}

func (s *services) remove(e *discovery.Entry) {
	s.sched.RemoveTorrent(e.ID)
	s.metadata.forget(e.ID)
	if s.announcer != nil {
		s.announcer.Remove(e.ID)
	}
	if s.dhtNode != nil {
		s.dhtNode.Remove(e.ID)
	}
}
