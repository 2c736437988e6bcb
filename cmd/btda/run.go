package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/btda/btda/api"
	"github.com/btda/btda/collector"
	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/dht"
	"github.com/btda/btda/discovery/tracker"
	"github.com/btda/btda/internal/config"
	"github.com/btda/btda/internal/srcaddr"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
	"github.com/btda/btda/probe/wire"
)

type runOptions struct {
	config   configSource
	torrents []string
	web      *web.FlagConfig
	shard    string
	adminAPI bool // --web.enable-admin-api
}

func run(ctx context.Context, opts runOptions, logger *slog.Logger) int {
	logger.Info("starting btda", "version", version.Info(), "build_context", version.BuildContext())
	sh, err := daemon.ParseShard(opts.shard)
	if err != nil {
		logger.Error("invalid --shard", "err", err)
		return 2
	}
	cfg, err := opts.config.load(logger)
	if err != nil {
		logger.Error("cannot load configuration", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(versioncollector.NewCollector("btda"), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rl := newReloader(opts, cfg, reg, logger)
	ws, err := newWebServer(opts.web, reg, &rl.ready, rl.reload, component(logger, "web"))
	if err != nil {
		logger.Error("cannot set up the web server", "err", err)
		return 1
	}
	d, err := newServices(cfg, sh, reg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	rl.daemon = d
	rl.apiDir = filepath.Join(filepath.Dir(cfg.Storage.Path), apiDirName)
	var adm api.Admin
	if opts.adminAPI {
		adm = &admin{folder: discovery.APIFolder{Dir: rl.apiDir}, rl: rl, daemon: d}
	}
	ws.mount(d, adm)
	// bbolt is closed last, after every goroutine below has returned.
	defer func() {
		if err := d.Close(); err != nil {
			logger.Error("closing", "err", err)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ws.Run(gctx) })
	g.Go(func() error { return d.Run(gctx) })
	g.Go(func() error { return rl.initial(gctx) })
	g.Go(func() error { return rl.onSIGHUP(gctx) })

	// After the first SIGINT/SIGTERM, restore default signal handling so that a second
	// one kills btda at once, and bound the graceful shutdown.
	go func() {
		<-gctx.Done()
		stop()
		if ctx.Err() != nil {
			logger.Info("shutting down", "timeout", daemon.ShutdownTimeout)
		}
		time.AfterFunc(daemon.ShutdownTimeout, func() {
			logger.Error("graceful shutdown took too long; exiting")
			os.Exit(1)
		})
	}()

	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("btda stopped", "err", err)
		return 1
	}
	logger.Info("btda stopped")
	return 0
}

// newServices constructs every part of a running btda from cfg and hands them to the
// daemon. On failure it releases what it had built.
func newServices(cfg *config.Config, sh daemon.Shard, reg prometheus.Registerer, logger *slog.Logger) (*daemon.Daemon, error) {
	dc, _, err := newParts(cfg, sh, reg, logger)
	if err != nil {
		return nil, err
	}
	d, err := daemon.New(dc, reg)
	if err != nil {
		_ = daemon.ClosePartial(dc)
		return nil, err
	}
	return d, nil
}

// newParts constructs the parts of a running btda from cfg, and the channel its sources
// send their sightings into. On failure it releases what it had built.
func newParts(cfg *config.Config, sh daemon.Shard, reg prometheus.Registerer, logger *slog.Logger) (dc daemon.Config, _ chan<- discovery.Sighting, err error) {
	dc = daemon.Config{Registry: discovery.NewRegistry(logger), Threshold: cfg.Torrents.CompletionThreshold, Shard: sh,
		PersistSchedule: cfg.Storage.PersistSchedule, Logger: logger}
	defer func() {
		if err != nil {
			_ = daemon.ClosePartial(dc)
		}
	}()

	// GeoIP: a missing or broken database is logged and btda goes on with ZZ.
	dc.Geo = geo.New()
	if p := cfg.GeoIP.CityDatabase; p != "" {
		if err := dc.Geo.LoadCity(p); err != nil {
			logger.Error("GeoIP city database not loaded; countries will be ZZ", "component", "geoip", "err", err)
		}
	}
	if p := cfg.GeoIP.ASNDatabase; p != "" {
		if err := dc.Geo.LoadASN(p); err != nil {
			logger.Error("GeoIP ASN database not loaded", "component", "geoip", "err", err)
		}
	}
	reg.MustRegister(geo.NewCollector(dc.Geo))
	if cfg.GeoIP.ReverseDNS {
		// Lookups happen in the rDNS pool, never on a probe's path.
		if dc.RDNS, err = geo.NewRDNS(geo.RDNSConfig{}, net.DefaultResolver, reg, logger); err != nil {
			return dc, nil, err
		}
	}
	if dc.Recorder, err = collector.New(collector.Config{
		StorePath:   cfg.Storage.Path,
		Threshold:   cfg.Torrents.CompletionThreshold,
		BatchSize:   cfg.Storage.CommitBatch,
		BatchWait:   time.Duration(cfg.Storage.CommitInterval),
		TopNetworks: cfg.Metrics.TopNetworks,
		KeepRawIP:   cfg.Storage.StoreRawIPs,
		NoAnonymize: !cfg.GeoIP.AnonymizeIPs,
		Geo:         dc.Geo,
		RDNS:        dc.RDNS,
	}, reg, logger); err != nil {
		return dc, nil, err
	}

	src, err := sourceAddrs(cfg, logger)
	if err != nil {
		return dc, nil, err
	}
	peerAddrs, err := src.ListenAddresses(cfg.Peer.ListenAddress)
	if err != nil {
		return dc, nil, fmt.Errorf("peer.listen_address: %w", err)
	}
	if dc.PeerListener, err = srcaddr.ListenTCP(peerAddrs); err != nil {
		return dc, nil, fmt.Errorf("peer listener: %w", err)
	}
	port := uint16(cfg.AnnouncePort())
	if port == 0 { // listen_address with port 0 (tests): announce the port we got
		port = uint16(dc.PeerListener.Addr().(*net.TCPAddr).Port)
	}
	if cfg.Peer.UTP {
		// uTP on the same address and port number as TCP, over UDP: peers that dial uTP
		// first find btda where trackers and PEX say it is, and our uTP sessions leave from it.
		// One socket per listen address, as for TCP: with a source address of each family,
		// IPv6 peers are reached over uTP from the IPv6 one.
		tcpPort := strconv.Itoa(dc.PeerListener.Addr().(*net.TCPAddr).Port)
		addrs := make([]string, 0, len(peerAddrs))
		for _, a := range peerAddrs {
			host, _, _ := net.SplitHostPort(a)
			addrs = append(addrs, net.JoinHostPort(host, tcpPort))
		}
		sock, err := probe.ListenUTPAll(addrs)
		if err != nil {
			return dc, nil, fmt.Errorf("peer listener (uTP): %w", err)
		}
		dc.PeerListenerUTP = sock
	}
	// One budget bounds the large message buffers of every session and metadata fetch.
	sc := sessionConfig(cfg, port, src, logger)
	sc.Budget = wire.NewBudget(probe.DefaultBufferBudget)
	if s, ok := dc.PeerListenerUTP.(probe.UTPSocket); ok {
		sc.UTP = s
	}
	if dc.Prober, err = probe.NewProber(sc); err != nil {
		return dc, nil, err
	}
	dc.Listener = probe.ListenerConfig{
		HandshakeTimeout: time.Duration(cfg.Probe.HandshakeTimeout),
		MaxPerIP:         cfg.Peer.IncomingPerIP,
		MaxTotal:         cfg.Peer.IncomingTotal,
	}
	dc.Scheduler = scheduler.Config{
		MaxInFlight:  cfg.Probe.Concurrency,
		RevisitDelay: time.Duration(cfg.Probe.RevisitDelay),
		RevisitMin:   time.Duration(cfg.Probe.RevisitMin),
		Watching:     cfg.Probe.WatchBudget > 0,
		RetryBase:    time.Duration(cfg.Probe.RetryBackoff),
		MaxRetries:   cfg.Probe.RetryAttempts,
		ForgetAfter:  time.Duration(cfg.Probe.ForgetAfter),
		DialRate:     rate.Limit(cfg.Probe.DialRate),
	}
	dc.Metadata = probe.MetadataConfig{ListenPort: port, DialTimeout: time.Duration(cfg.Probe.ConnectTimeout), Budget: sc.Budget, Dial: sc.Dial}

	sightings := make(chan discovery.Sighting, daemon.SightingsBuffer)
	dc.Sightings = sightings
	if cfg.Trackers.Enabled {
		if dc.Trackers, err = tracker.NewAnnouncer(tracker.Config{
			Port:        port,
			NumWant:     int32(cfg.Trackers.NumWant),
			Interval:    time.Duration(cfg.Trackers.RequestInterval),
			HTTPTimeout: time.Duration(cfg.Trackers.Timeout),
			UDPBase:     time.Duration(cfg.Trackers.Timeout),
			StopTimeout: daemon.TrackerStopTimeout,
			UserAgent:   "btda/" + version.Version,
			Source:      src,
			Logger:      logger,
		}, reg, sightings); err != nil {
			return dc, nil, err
		}
	}
	if cfg.DHT.Enabled {
		listen, listen6, err := dhtListen(cfg, src)
		if err != nil {
			return dc, nil, err
		}
		if dc.DHT, err = dht.New(dht.Config{
			Listen:        listen,
			IPv6:          cfg.DHT.IPv6,
			Listen6:       listen6,
			Bootstrap:     cfg.DHT.BootstrapNodes,
			NodesFile:     filepath.Join(filepath.Dir(cfg.Storage.Path), dht.NodesFileName),
			PeerPort:      int(port),
			Interval:      time.Duration(cfg.DHT.RequestInterval),
			LookupTimeout: time.Duration(cfg.DHT.LookupTimeout),
		}, sightings, reg, logger); err != nil {
			return dc, nil, err
		}
	}
	return dc, sightings, nil
}

// sourceAddrs resolves peer.source_addresses (an interface name to its addresses now).
func sourceAddrs(cfg *config.Config, logger *slog.Logger) (srcaddr.Addrs, error) {
	src, err := srcaddr.Resolve(cfg.Peer.SourceAddresses)
	if err != nil {
		return src, fmt.Errorf("peer.source_addresses: %w", err)
	}
	if src.IsSet() && logger != nil {
		logger.Info("outgoing connections leave from the source addresses; other address families are not used",
			"source_addresses", src.String())
	}
	return src, nil
}

// dhtListen is where the DHT nodes listen: the configured addresses, a wildcard or empty
// host following the source addresses.
func dhtListen(cfg *config.Config, src srcaddr.Addrs) (listen, listen6 string, err error) {
	if listen, err = src.ListenAddress(cfg.DHT.ListenAddress, false); err != nil {
		return "", "", fmt.Errorf("dht.listen_address: %w (set it, or disable the DHT)", err)
	}
	listen6 = cfg.DHT.ListenAddress6
	if cfg.DHT.IPv6 {
		if listen6, err = src.ListenAddress(cfg.DHT.ListenAddress6, true); err != nil {
			return "", "", fmt.Errorf("dht.listen_address_v6: %w (set it, or dht.ipv6: false)", err)
		}
	}
	return listen, listen6, nil
}

// sessionConfig is the probe session configuration of cfg; port is sent as `p` (0: none);
// connections leave from src.
func sessionConfig(cfg *config.Config, port uint16, src srcaddr.Addrs, logger *slog.Logger) probe.SessionConfig {
	var dial func(context.Context, string, string) (net.Conn, error)
	if src.IsSet() { // else the prober's own dialer
		dial = src.DialFunc(net.Dialer{})
	}
	return probe.SessionConfig{
		Dial:             dial,
		Version:          version.Version,
		ListenPort:       port,
		DialTimeout:      time.Duration(cfg.Probe.ConnectTimeout),
		HandshakeTimeout: time.Duration(cfg.Probe.HandshakeTimeout),
		QuietWindow:      time.Duration(cfg.Probe.QuietWindow),
		SessionCap:       time.Duration(cfg.Probe.SessionCap),
		MaxMessages:      cfg.Probe.MessageCap,
		SendInterested:   cfg.Probe.SendInterested,
		Encryption:       probe.EncryptionPolicy(cfg.Peer.Encryption),
		IdleGrace:        offIfZero(time.Duration(cfg.Probe.IdleGrace)),
		Watch: probe.NewWatcher(probe.WatchConfig{
			Budget:    offIfZero(cfg.Probe.WatchBudget),
			Max:       time.Duration(cfg.Probe.WatchMax),
			Silence:   time.Duration(cfg.Probe.WatchSilence),
			KeepAlive: time.Duration(cfg.Probe.WatchKeepAlive),
		}),
		Logger: logger,
	}
}

// offIfZero maps a configuration's 0 (off) to the library's negative (off; 0 is default).
func offIfZero[T ~int | ~int64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
