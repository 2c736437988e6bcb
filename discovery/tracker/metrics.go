package tracker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/internal/metricdef"
)

// Request kinds, the `kind` label.
const (
	KindAnnounce = "announce"
	KindScrape   = "scrape"
)

// metrics are the tracker client's Prometheus series.
type metrics struct {
	requests    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	peers       *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	interval    *prometheus.GaugeVec
	seeders     *prometheus.GaugeVec
	leechers    *prometheus.GaugeVec
	downloaded  *prometheus.GaugeVec
}

// newMetrics creates the series and registers them on reg (nil: not registered).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const sub = "tracker"
	m := &metrics{
		requests: prometheus.NewCounterVec(metricdef.CounterOpts(sub, "requests_total", "Tracker requests made, by tracker host and kind (announce, scrape)."),
			[]string{"tracker", "kind"}),
		failures: prometheus.NewCounterVec(metricdef.CounterOpts(sub, "request_failures_total", "Tracker requests that failed, by tracker host, kind and reason."),
			[]string{"tracker", "kind", "reason"}),
		duration: prometheus.NewHistogramVec(metricdef.HistogramOpts(sub, "request_duration_seconds", "Duration of tracker requests (successful or not), including UDP retransmissions.",
			[]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}), []string{"tracker", "kind"}),
		peers: prometheus.NewCounterVec(metricdef.CounterOpts(sub, "peers_received_total", "Peer addresses received in announce replies."),
			[]string{"tracker"}),
		lastSuccess: prometheus.NewGaugeVec(metricdef.GaugeOpts(sub, "last_success_timestamp_seconds", "Unix time of the last successful announce to the tracker host."),
			[]string{"tracker"}),
		interval: prometheus.NewGaugeVec(metricdef.GaugeOpts(sub, "interval_seconds", "Announce interval in force for the tracker host (after min interval and back-off)."),
			[]string{"tracker"}),
		seeders: prometheus.NewGaugeVec(metricdef.GaugeOpts(sub, "scrape_seeders", "Seeders (complete) the tracker reported in its last scrape."),
			[]string{"infohash", "tracker"}),
		leechers: prometheus.NewGaugeVec(metricdef.GaugeOpts(sub, "scrape_leechers", "Leechers (incomplete) the tracker reported in its last scrape."),
			[]string{"infohash", "tracker"}),
		downloaded: prometheus.NewGaugeVec(metricdef.GaugeOpts(sub, "scrape_downloaded", "Completed downloads the tracker reported in its last scrape."),
			[]string{"infohash", "tracker"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.failures, m.duration, m.peers,
			m.lastSuccess, m.interval, m.seeders, m.leechers, m.downloaded} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, errors.New("tracker metrics already registered on this registerer")
				}
				return nil, err
			}
		}
	}
	return m, nil
}

// initTracker pre-creates the per-tracker series at zero.
func (m *metrics) initTracker(tracker string) {
	for _, kind := range []string{KindAnnounce, KindScrape} {
		m.requests.WithLabelValues(tracker, kind)
		m.duration.WithLabelValues(tracker, kind)
		for _, r := range Reasons {
			m.failures.WithLabelValues(tracker, kind, string(r))
		}
	}
	m.peers.WithLabelValues(tracker)
}

// setScrape sets a torrent's scrape gauges at a tracker host.
func (m *metrics) setScrape(infohash, tracker string, r *ScrapeResponse) {
	m.seeders.WithLabelValues(infohash, tracker).Set(float64(r.Seeders))
	m.leechers.WithLabelValues(infohash, tracker).Set(float64(r.Leechers))
	m.downloaded.WithLabelValues(infohash, tracker).Set(float64(r.Downloaded))
}

// deleteScrape drops a removed torrent's scrape gauges.
func (m *metrics) deleteScrape(infohash, tracker string) {
	m.seeders.DeleteLabelValues(infohash, tracker)
	m.leechers.DeleteLabelValues(infohash, tracker)
	m.downloaded.DeleteLabelValues(infohash, tracker)
}
