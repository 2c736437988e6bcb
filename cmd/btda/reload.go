package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/config"
	"github.com/btda/btda/internal/metricdef"
)

// reloadTimeout bounds one reload of the watch list.
const reloadTimeout = time.Minute

// reloader loads the watch list at start and reloads the configuration file (SIGHUP,
// POST /-/reload). A reload changes only the watch list; every other setting stays as it
// was at start, and each reload that finds them changed says which ones wait for a restart.
type reloader struct {
	opts   runOptions
	log    *slog.Logger
	daemon *daemon.Daemon // set once constructed, before initial runs

	mu      sync.Mutex    // serialises reloads
	inForce config.Config // the settings in force: the start configuration plus the reloaded watch list
	ready   atomic.Bool

	ok, timestamp prometheus.Gauge
}

func newReloader(opts runOptions, cfg *config.Config, reg prometheus.Registerer, logger *slog.Logger) *reloader {
	r := &reloader{opts: opts, log: logger, inForce: *cfg,
		ok: prometheus.NewGauge(metricdef.GaugeOpts("config", "last_reload_successful",
			"Whether the last configuration reload attempt was successful (1) or not (0).")),
		timestamp: prometheus.NewGauge(metricdef.GaugeOpts("config", "last_reload_success_timestamp_seconds",
			"Timestamp of the last successful configuration reload.")),
	}
	reg.MustRegister(r.ok, r.timestamp)
	return r
}

// initial builds the first watch list. Torrents that fail to load are logged and skipped;
// only a failure to read the sources at all is fatal.
func (r *reloader) initial(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.load(ctx, &r.inForce); err != nil {
		r.ok.Set(0)
		return fmt.Errorf("loading torrents: %w", err)
	}
	r.ok.Set(1)
	r.timestamp.SetToCurrentTime()
	r.ready.Store(true)
	return nil
}

func (r *reloader) load(ctx context.Context, cfg *config.Config) (discovery.Diff, error) {
	// A missing input the file names is worth a warning each time; an absent default only
	// means btda watches what it gets elsewhere.
	for _, n := range cfg.CheckInputs() {
		if n.Err {
			r.log.Warn("watch-list input not usable", "key", n.Key, "path", n.Path, "problem", n.Msg)
		} else {
			r.log.Info("watch-list input absent", "key", n.Key, "path", n.Path)
		}
	}
	diff, _, err := r.daemon.Load(ctx, discovery.WatchSources{
		TorrentDir: existingPath(cfg.Torrents.Directory),
		MagnetFile: existingPath(cfg.Torrents.MagnetFile),
		Args:       r.opts.torrents,
	})
	return diff, err
}

// existingPath drops a configured path that does not exist, so that btda starts with an
// empty watch list (and says so) instead of failing on a missing input folder.
func existingPath(p string) string {
	if p == "" {
		return ""
	}
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// reload re-reads the configuration file and the watch list. A file that fails to load
// leaves everything as it was.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := r.opts.config.load(r.log)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
		defer cancel()
		var diff discovery.Diff
		if diff, err = r.load(ctx, cfg); err == nil {
			r.log.Info("configuration reloaded", "added", len(diff.Added), "removed", len(diff.Removed), "changed", len(diff.Changed))
		}
	}
	if err != nil {
		r.ok.Set(0)
		r.log.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	r.inForce.Torrents.Directory, r.inForce.Torrents.MagnetFile = cfg.Torrents.Directory, cfg.Torrents.MagnetFile
	if changed := config.Changed(&r.inForce, cfg); len(changed) > 0 {
		r.log.Warn("settings changed in the file take effect at the next restart; the values from the start stay in force",
			"keys", strings.Join(changed, ","))
	}
	r.ok.Set(1)
	r.timestamp.SetToCurrentTime()
	return nil
}

func (r *reloader) onSIGHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_ = r.reload() // logged and exported by reload
		}
	}
}
