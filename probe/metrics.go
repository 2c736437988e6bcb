package probe

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/internal/metricdef"
)

// subsystem of every probe metric: btda_probe_*. They are all defined here.
const subsystem = "probe"

// Metrics are the probe's Prometheus series: session events, counted as each Observation
// is handed to Observe by whoever receives it (sessions never touch metrics themselves),
// and the prober's and listener's state, read at scrape time.
type Metrics struct {
	prober   *Prober
	listener *Listener // nil: no listener
	limit    int

	sessions *prometheus.CounterVec
	duration *prometheus.HistogramVec
	maxGap   prometheus.Histogram
}

var (
	inFlightDesc = metricdef.Desc(subsystem, "sessions_in_flight", "Active probe sessions running now.")
	limitDesc    = metricdef.Desc(subsystem, "sessions_limit", "The most active probe sessions allowed at once.")
	incomingDesc = metricdef.Desc(subsystem, "incoming_connections_total", "Incoming peer connections accepted by the listener.")
	rejectedDesc = metricdef.Desc(subsystem, "incoming_rejected_total", "Incoming connections closed before a session, by reason.", "reason")
	heldDesc     = metricdef.Desc(subsystem, "connections_held", "Probe connections held open to watch a downloading peer cross the threshold.")
	budgetDesc   = metricdef.Desc(subsystem, "watch_budget", "The most probe connections held open at once (probe.watch_budget).")
)

// NewMetrics returns the probe metrics of p and l (nil: no listener); limit is the most
// active sessions the caller runs at once. Register the result on a registry.
func NewMetrics(p *Prober, l *Listener, limit int) *Metrics {
	secs := prometheus.ExponentialBuckets(0.05, 2, 12) // 50 ms … 102 s
	m := &Metrics{prober: p, listener: l, limit: limit,
		sessions: prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "sessions_total",
			"Probe sessions recorded, by direction and outcome."), []string{"direction", "outcome"}),
		duration: prometheus.NewHistogramVec(metricdef.HistogramOpts(subsystem, "duration_seconds",
			"Length of probe sessions.", secs), []string{"direction"}),
		maxGap: prometheus.NewHistogram(metricdef.HistogramOpts(subsystem, "max_message_gap_seconds",
			"Largest gap between two messages within a probe session.", secs)),
	}
	for _, d := range []Direction{Outgoing, Incoming} {
		for _, o := range Outcomes {
			m.sessions.WithLabelValues(d.String(), o.String())
		}
		m.duration.WithLabelValues(d.String())
	}
	return m
}

// Observe counts one finished session.
func (m *Metrics) Observe(o *Observation) {
	dir := o.Direction.String()
	m.sessions.WithLabelValues(dir, o.Outcome.String()).Inc()
	if o.Direction == Outgoing || o.Direction == Incoming {
		m.duration.WithLabelValues(dir).Observe(o.Timings.Total.Seconds())
	}
	if o.Timings.MaxGap > 0 {
		m.maxGap.Observe(o.Timings.MaxGap.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.sessions.Describe(ch)
	m.duration.Describe(ch)
	m.maxGap.Describe(ch)
	for _, d := range []*prometheus.Desc{inFlightDesc, limitDesc, incomingDesc, rejectedDesc, heldDesc, budgetDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.sessions.Collect(ch)
	m.duration.Collect(ch)
	m.maxGap.Collect(ch)
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(m.prober.active.Load()))
	ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(m.limit))
	w := m.prober.cfg.Watch // nil: both 0
	ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(w.Held()))
	ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(w.Budget()))
	if m.listener == nil {
		return
	}
	ls := m.listener.Stats()
	ch <- prometheus.MustNewConstMetric(incomingDesc, prometheus.CounterValue, float64(ls.Accepted))
	for _, r := range []struct {
		reason string
		n      uint64
	}{
		{"handshake_failed", ls.HandshakeFailed}, {"not_bittorrent", ls.NotBitTorrent},
		{"per_ip_limit", ls.OverPerIPCap}, {"total_limit", ls.OverTotalCap}, {"unknown_infohash", ls.UnknownInfoHash},
	} {
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(r.n), r.reason)
	}
}
