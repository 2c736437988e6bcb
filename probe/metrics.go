package probe

import (
	"net/netip"

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
	reach    *prometheus.CounterVec
	encFB    *prometheus.CounterVec
	transFB  *prometheus.CounterVec
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
		reach: prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "connections_total",
			"Probe sessions that got a connection, by direction, transport (tcp, utp), encryption (none, header, rc4) and address family (ipv4, ipv6)."),
			[]string{"direction", "transport", "encryption", "family"}),
		encFB: prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "encryption_fallbacks_total",
			"Outgoing contacts retried at once on a new connection with the other encryption, by what they retried with (mse, plaintext)."),
			[]string{"to"}),
		transFB: prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "transport_fallbacks_total",
			"Outgoing contacts retried at once over the other transport, by what they retried with (utp, tcp)."),
			[]string{"to"}),
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
		for _, tr := range Transports {
			for _, e := range Encryptions {
				for _, f := range []string{"ipv4", "ipv6"} {
					m.reach.WithLabelValues(d.String(), tr.String(), e.String(), f)
				}
			}
		}
	}
	for _, to := range []string{"mse", "plaintext"} {
		m.encFB.WithLabelValues(to)
	}
	for _, to := range Transports {
		m.transFB.WithLabelValues(to.String())
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
	if o.Transport != 0 && o.Encryption != 0 {
		m.reach.WithLabelValues(dir, o.Transport.String(), o.Encryption.String(), family(o.Addr.Addr())).Inc()
	}
	fb := &o.Fallbacks
	for _, c := range []struct {
		v  *prometheus.CounterVec
		to string
		n  uint8
	}{{m.encFB, "mse", fb.ToEncrypted}, {m.encFB, "plaintext", fb.ToPlaintext},
		{m.transFB, "utp", fb.ToUTP}, {m.transFB, "tcp", fb.ToTCP}} {
		if c.n > 0 {
			c.v.WithLabelValues(c.to).Add(float64(c.n))
		}
	}
	if o.Timings.MaxGap > 0 {
		m.maxGap.Observe(o.Timings.MaxGap.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.sessions.Describe(ch)
	m.reach.Describe(ch)
	m.encFB.Describe(ch)
	m.transFB.Describe(ch)
	m.duration.Describe(ch)
	m.maxGap.Describe(ch)
	for _, d := range []*prometheus.Desc{inFlightDesc, limitDesc, incomingDesc, rejectedDesc, heldDesc, budgetDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.sessions.Collect(ch)
	m.reach.Collect(ch)
	m.encFB.Collect(ch)
	m.transFB.Collect(ch)
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
		{"mse_unknown_infohash", ls.MSEUnknownHash}, {"mse_failed", ls.MSEFailed},
	} {
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(r.n), r.reason)
	}
}

// family is the `family` label of a peer address.
func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}
