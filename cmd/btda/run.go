package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/sync/errgroup"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/config"
)

// shutdownTimeout bounds a graceful shutdown; past it btda exits anyway.
const shutdownTimeout = 4 * time.Second

type runOptions struct {
	configFile string
	torrents   []string
	web        *web.FlagConfig
	shard      string
}

// daemon is the running btda: its configuration, watch list and metrics.
type daemon struct {
	opts     runOptions
	log      *slog.Logger
	registry *discovery.Registry
	shard    shard
	svc      *services

	mu  sync.Mutex // serialises reloads
	cfg *config.Config

	ready           atomic.Bool
	reloadOK        prometheus.Gauge
	reloadTimestamp prometheus.Gauge
}

func run(ctx context.Context, opts runOptions, logger *slog.Logger) int {
	logger.Info("starting btda", "version", version.Info(), "build_context", version.BuildContext())
	sh, err := parseShard(opts.shard)
	if err != nil {
		logger.Error("invalid --shard", "err", err)
		return 2
	}
	cfg, err := config.Load(opts.configFile)
	if err != nil {
		logger.Error("cannot load configuration", "err", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	d := &daemon{
		opts:     opts,
		log:      logger,
		cfg:      cfg,
		shard:    sh,
		registry: discovery.NewRegistry(logger),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "btda_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful (1) or not (0).",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "btda_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("btda"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		d.reloadOK, d.reloadTimestamp,
		&torrentsCollector{registry: d.registry},
	)

	ws, err := newWebServer(opts.web, reg, &d.ready, d.reload, component(logger, "web"))
	if err != nil {
		logger.Error("cannot set up the web server", "err", err)
		return 1
	}
	d.svc, err = newServices(cfg, d.registry, reg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	// bbolt is closed last, after every goroutine below has returned.
	defer d.svc.close()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ws.Run(gctx) })
	g.Go(func() error { return d.svc.run(gctx) })
	g.Go(func() error {
		if err := d.loadTorrents(gctx); err != nil {
			return err
		}
		d.ready.Store(true)
		return nil
	})
	g.Go(func() error { return d.handleSIGHUP(gctx) })

	// After the first SIGINT/SIGTERM, restore default signal handling so that a second
	// one kills btda at once, and bound the graceful shutdown.
	go func() {
		<-gctx.Done()
		stop()
		if ctx.Err() != nil {
			logger.Info("shutting down", "timeout", shutdownTimeout)
		}
		time.AfterFunc(shutdownTimeout, func() {
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

// loadTorrents builds the initial watch list. Torrents that fail to load are logged and
// skipped by the registry; only a failure to read the sources at all is fatal.
func (d *daemon) loadTorrents(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.applyWatchList(ctx, d.cfg); err != nil {
		d.reloadOK.Set(0)
		return fmt.Errorf("loading torrents: %w", err)
	}
	d.reloadOK.Set(1)
	d.reloadTimestamp.SetToCurrentTime()
	return nil
}

func (d *daemon) applyWatchList(ctx context.Context, cfg *config.Config) (discovery.Diff, error) {
	diff, report, err := d.registry.Reload(ctx, discovery.WatchSources{
		TorrentDir: existingPath(cfg.Torrents.Directory),
		MagnetFile: existingPath(cfg.Torrents.MagnetFile),
		Args:       d.opts.torrents,
		Keep:       d.shard.keep,
	})
	if err != nil {
		return diff, err
	}
	for _, f := range report.Failed {
		d.log.Warn("torrent not loaded", "origin", f.Origin, "err", f.Err)
	}
	d.svc.apply(time.Now())
	return diff, nil
}

// existingPath drops a configured default path that does not exist, so that btda starts
// with an empty watch list (and says so) instead of failing on a missing input folder.
func existingPath(p string) string {
	if p == "" {
		return ""
	}
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// reload re-reads the configuration file and the watch list (SIGHUP, POST /-/reload). A
// file that fails to load leaves the running configuration in place.
func (d *daemon) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg, err := config.Load(d.opts.configFile)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var diff discovery.Diff
		diff, err = d.applyWatchList(ctx, cfg)
		if err == nil {
			d.log.Info("configuration reloaded", "added", len(diff.Added), "removed", len(diff.Removed), "changed", len(diff.Changed))
		}
	}
	if err != nil {
		d.reloadOK.Set(0)
		d.log.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	if restartNeeded(d.cfg, cfg) {
		d.log.Warn("settings outside torrents.directory and torrents.magnet_file changed; they take effect at the next restart")
	}
	d.cfg = cfg
	d.reloadOK.Set(1)
	d.reloadTimestamp.SetToCurrentTime()
	return nil
}

func (d *daemon) handleSIGHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_ = d.reload() // logged and exported by reload
		}
	}
}

// torrentsCollector reads the watch list's counts at scrape time.
type torrentsCollector struct{ registry *discovery.Registry }

var torrentsDesc = prometheus.NewDesc("btda_torrents", "Watched torrents by state and kind.", []string{"state", "kind"}, nil)

func (c *torrentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- torrentsDesc }

func (c *torrentsCollector) Collect(ch chan<- prometheus.Metric) {
	// The kind decides the state: a torrent is pending metadata exactly while it is a
	// magnet, so the registry's counts by kind are the counts by (state, kind).
	for k, n := range c.registry.Counts().ByKind {
		s := discovery.StateActive
		if k == discovery.KindMagnet {
			s = discovery.StatePendingMetadata
		}
		ch <- prometheus.MustNewConstMetric(torrentsDesc, prometheus.GaugeValue, float64(n), s.String(), k.String())
	}
}

// restartNeeded reports whether two configurations differ in more than the watch list,
// which is all a reload changes in a running btda.
func restartNeeded(old, new *config.Config) bool {
	a, b := *old, *new
	a.Torrents.Directory, a.Torrents.MagnetFile = "", ""
	b.Torrents.Directory, b.Torrents.MagnetFile = "", ""
	return !reflect.DeepEqual(a, b)
}
