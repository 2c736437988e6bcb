package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/api"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/daemon"
	"github.com/btda/btda/ui"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// webServer serves /metrics, the health endpoints, /-/reload and a landing page.
type webServer struct {
	mux   *http.ServeMux
	srv   *http.Server
	flags *web.FlagConfig
	log   *slog.Logger
}

func newWebServer(flags *web.FlagConfig, reg *prometheus.Registry, ready *atomic.Bool, reload func() error, logger *slog.Logger) (*webServer, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
		Registry:          reg, // promhttp_metric_handler_errors_total
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "Not ready: still loading torrents", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Configuration reloaded")
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "btda",
		Description: "BitTorrent download analyzer: confirmed downloads in watched swarms",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
			{Address: "/status/", Text: "Status pages"},
			{Address: "/api/v1/torrents", Text: "JSON API: torrents"},
		},
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", landing)
	return &webServer{
		mux: mux,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
		},
		flags: flags,
		log:   logger,
	}, nil
}

// mount adds the JSON API and the status pages, which read the daemon (adm nil: the write
// endpoints are refused).
func (s *webServer) mount(d *daemon.Daemon, adm api.Admin) {
	api.Register(s.mux, api.Config{Daemon: d, Admin: adm, Logger: s.log})
	ui.Register(s.mux, ui.Config{Daemon: d, Logger: s.log})
	// A consistent copy of the running store (bbolt Tx.WriteTo): `btda store backup --url`.
	s.mux.Handle("GET /api/v1/store/backup", store.BackupHandler(d.Store()))
}

// Run serves until ctx is done, then shuts the server down within a short deadline.
func (s *webServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(s.srv, s.flags, s.log) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web server: %w", err)
	}
	return nil
}
