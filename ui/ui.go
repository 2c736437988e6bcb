// Package ui serves btda's status pages under /status/: server-rendered HTML with inline
// SVG charts (internal/svgchart), no scripts and no external assets. The pages read the
// same views as the JSON API (api.Daemon); the per-hour and per-country figures walk the
// store's download log and peer records a page at a time and aggregate while walking
// (report.Collector), so memory does not grow with the store.
package ui

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/btda/btda/api"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/svgchart"
	"github.com/btda/btda/report"
	"github.com/btda/btda/status"
)

// SparkHours is how many hours the overview's sparklines show.
const SparkHours = 48

//go:embed templates/*.html
var files embed.FS

var pages = template.Must(template.New("").Funcs(report.FuncMap).ParseFS(files, "templates/*.html"))

// Config configures the status pages.
type Config struct {
	Daemon api.Daemon
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
}

type server struct {
	cfg Config
	log *slog.Logger
}

// Register adds the status pages to mux.
func Register(mux *http.ServeMux, cfg Config) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &server{cfg: cfg, log: cfg.Logger.With("component", "ui")}
	mux.HandleFunc("GET /status/{$}", s.overview)
	mux.HandleFunc("GET /status/torrent/{infohash}", s.torrent)
	mux.HandleFunc("GET /status/sources", s.sources)
	mux.HandleFunc("GET /status/probes", s.probes)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, http.StatusNotFound, "error", page{Title: "Not found", Error: fmt.Sprintf("no status page %s", clip(r.URL.Path))})
	})
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// page is what every template gets.
type page struct {
	Title string
	Now   time.Time
	CSS   template.CSS
	Error string
	Data  any
}

// render executes a template into a buffer first, so that a failure is a clean 500.
func (s *server) render(w http.ResponseWriter, code int, name string, p page) {
	p.CSS = template.CSS(report.CSS)
	p.Now = s.cfg.Now().UTC()
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, p); err != nil {
		s.log.Error("rendering a status page", "page", name, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

func (s *server) fail(w http.ResponseWriter, code int, err error) {
	s.render(w, code, "error", page{Title: http.StatusText(code), Error: err.Error()})
}

// overviewRow is one torrent of the overview.
type overviewRow struct {
	status.Torrent
	Spark template.HTML
	Last  uint64 // confirmed downloads in the last full hour
}

func (s *server) overview(w http.ResponseWriter, r *http.Request) {
	ts := s.cfg.Daemon.Torrents()
	c := report.NewCollector(ts)
	now := s.cfg.Now()
	since := now.Add(-SparkHours * time.Hour).Truncate(time.Hour)
	if err := s.walkDownloads(r.Context(), metainfo.Hash{}, since, c); err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	rows := make([]overviewRow, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, overviewRow{Torrent: t, Spark: spark(c.Torrent(t.InfoHash), since, now)})
	}
	var total uint64
	for _, t := range ts {
		total += t.Confirmed
	}
	s.render(w, http.StatusOK, "overview", page{Title: "Torrents", Data: struct {
		Rows       []overviewRow
		Total      uint64
		SparkHours int
		AllSpark   template.HTML
	}{rows, total, SparkHours, spark(c.All(), since, now)}})
}

// spark draws the per-hour sparkline of f from since to now.
func spark(f *report.Figures, since, now time.Time) template.HTML {
	n := int(now.Sub(since)/time.Hour) + 1
	vals := make([]float64, n)
	start, hours := f.PerHour(now)
	var sum uint64
	for i, v := range hours {
		at := start.Add(time.Duration(i) * time.Hour)
		if j := int(at.Sub(since) / time.Hour); j >= 0 && j < n {
			vals[j] = float64(v)
			sum += v
		}
	}
	return svgchart.Sparkline(fmt.Sprintf("%d confirmed downloads in the last %d hours, per hour", sum, SparkHours), vals, 120, 20)
}

func (s *server) walkDownloads(ctx context.Context, h metainfo.Hash, since time.Time, c *report.Collector) error {
	src := report.StoreSource(s.cfg.Daemon.Store(), "")
	return src.Downloads(ctx, h, func(d *status.Download) error {
		if d.At.Before(since) {
			return nil
		}
		c.Download(d)
		return nil
	})
}

func (s *server) torrent(w http.ResponseWriter, r *http.Request) {
	h, err := status.ParseInfoHash(r.PathValue("infohash"))
	if err != nil {
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	det, ok, err := s.cfg.Daemon.Torrent(r.Context(), h)
	switch {
	case err != nil:
		s.fail(w, http.StatusInternalServerError, err)
		return
	case !ok:
		s.fail(w, http.StatusNotFound, fmt.Errorf("torrent %s is not watched", h))
		return
	}
	c := report.NewCollector([]status.Torrent{det.Torrent})
	src := report.StoreSource(s.cfg.Daemon.Store(), "")
	err = src.Downloads(r.Context(), h, func(d *status.Download) error { c.Download(d); return nil })
	if err == nil {
		err = src.Peers(r.Context(), h, func(p *status.Peer) error { c.Peer(p); return nil })
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	f := c.Torrent(det.InfoHash)
	perHour, start, hours := report.PerHourChart(f, s.cfg.Now(), 640, 160)
	var prog []svgchart.Bar
	var progRows []report.Bin
	for i, n := range det.Progress {
		prog = append(prog, svgchart.Bar{Label: fmt.Sprint(i * 10), Value: float64(n)})
		progRows = append(progRows, report.Bin{Label: report.ProgressLabels[i], Count: n})
	}
	speeds := f.Speeds()
	var all [5]uint64
	for _, s := range speeds {
		for i, n := range s.Bins {
			all[i] += n
		}
	}
	var sp []svgchart.Bar
	for i, n := range all {
		sp = append(sp, svgchart.Bar{Label: report.SpeedLabels[i], Value: float64(n)})
	}
	countries := f.ByCountry()
	scrape, hasScrape := det.ScrapeDownloaded()
	s.render(w, http.StatusOK, "torrent", page{Title: det.Name, Data: struct {
		status.TorrentDetail
		Figures              *report.Figures
		PerHour              template.HTML
		HourStart            time.Time
		Hours                int
		Countries            []report.CountryRow
		CountryChart         template.HTML
		Progress, SpeedChart template.HTML
		ProgressRows         []report.Bin
		Speeds               []report.SpeedRow
		SpeedLabels          []string
		Scrape               int64
		HasScrape            bool
	}{det, f, perHour, start, hours, countries, report.CountryChart(countries, 640),
		svgchart.Columns("Peers by last progress (% of pieces)", prog, 640, 160),
		svgchart.Columns("Peers by max download speed", sp, 640, 160), progRows, speeds, report.SpeedLabels,
		scrape, hasScrape}})
}

func (s *server) sources(w http.ResponseWriter, _ *http.Request) {
	s.render(w, http.StatusOK, "sources", page{Title: "Sources", Data: s.cfg.Daemon.Sources()})
}

func (s *server) probes(w http.ResponseWriter, _ *http.Request) {
	s.render(w, http.StatusOK, "probes", page{Title: "Recent probes", Data: s.cfg.Daemon.RecentProbes()})
}
