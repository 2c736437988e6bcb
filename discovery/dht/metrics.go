package dht

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/internal/metricdef"
)

// subsystem of every DHT metric: btda_dht_*.
const subsystem = "dht"

// Lookup failure reasons, the bounded values of the `reason` label.
const (
	ReasonTimeout = "timeout"  // nodes were contacted but none answered in time
	ReasonNoNodes = "no_nodes" // nothing to contact: empty routing table, no saved or bootstrap nodes
	ReasonError   = "error"    // anything else
)

var failureReasons = []string{ReasonTimeout, ReasonNoNodes, ReasonError}

// queryKinds are the bounded values of the `query` label of incoming KRPC queries.
var queryKinds = []string{"ping", "find_node", "get_peers", "announce_peer", "other"}

func queryKind(q string) string {
	switch q {
	case "ping", "find_node", "get_peers", "announce_peer":
		return q
	}
	return "other"
}

type metrics struct {
	lookups          prometheus.Counter
	lookupFailures   *prometheus.CounterVec
	lookupDuration   prometheus.Histogram
	peersReceived    prometheus.Counter
	announcesRecv    prometheus.Counter
	announcesDropped prometheus.Counter
	queriesRecv      *prometheus.CounterVec
	lastSuccess      prometheus.Gauge
	watched          prometheus.Gauge
	inFlight         prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		lookups: prometheus.NewCounter(metricdef.CounterOpts(subsystem, "lookups_total",
			"DHT get_peers lookups that ran to completion or to their deadline (shutdown-cancelled lookups are not counted).")),
		lookupFailures: prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "lookup_failures_total",
			"DHT lookups in which no node answered, by reason (timeout, no_nodes, error)."), []string{"reason"}),
		lookupDuration: prometheus.NewHistogram(metricdef.HistogramOpts(subsystem, "lookup_duration_seconds", "Duration of DHT lookups, including the announce_peer step.",
			[]float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120})),
		peersReceived: prometheus.NewCounter(metricdef.CounterOpts(subsystem, "peers_received_total",
			"Peer addresses received from DHT lookups (distinct within each lookup).")),
		announcesRecv: prometheus.NewCounter(metricdef.CounterOpts(subsystem, "announces_received_total",
			"Valid incoming announce_peer queries for watched torrents.")),
		announcesDropped: prometheus.NewCounter(metricdef.CounterOpts(subsystem, "announces_dropped_total",
			"Incoming announces for watched torrents dropped because too many were waiting to be delivered.")),
		queriesRecv: prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "queries_received_total",
			"KRPC queries received from other DHT nodes, by query type."), []string{"query"}),
		// Success = at least one node answered, peers or not: a torrent nobody announced in
		// the DHT is a valid answer, and alerting on "no peers" would flag quiet swarms as a
		// broken DHT.
		lastSuccess: prometheus.NewGauge(metricdef.GaugeOpts(subsystem, "last_success_timestamp_seconds",
			"Unix time of the last lookup in which at least one node answered (0: never).")),
		watched: prometheus.NewGauge(metricdef.GaugeOpts(subsystem, "watched_torrents",
			"Torrents the DHT node looks up periodically.")),
		inFlight: prometheus.NewGauge(metricdef.GaugeOpts(subsystem, "lookups_in_flight",
			"DHT lookups running now.")),
	}
	for _, r := range failureReasons {
		m.lookupFailures.WithLabelValues(r)
	}
	for _, q := range queryKinds {
		m.queriesRecv.WithLabelValues(q)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.lookups, m.lookupFailures, m.lookupDuration, m.peersReceived,
		m.announcesRecv, m.announcesDropped, m.queriesRecv, m.lastSuccess, m.watched, m.inFlight}
}

// register registers every collector, undoing the ones already registered on failure so a
// caller can retry with another registry.
func register(reg prometheus.Registerer, cs []prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return errors.Join(errors.New("dht: registering metrics"), err)
		}
	}
	return nil
}

// tableCollector reads the routing tables at scrape time (state, not events).
type tableCollector struct {
	n *Node

	nodes, good, outstanding, queriesSent, announcesSent *prometheus.Desc
}

func newTableCollector(n *Node) *tableCollector {
	return &tableCollector{
		n: n,
		nodes: metricdef.Desc(subsystem, "routing_table_nodes",
			"Nodes in the DHT routing table.", "family"),
		good: metricdef.Desc(subsystem, "routing_table_good_nodes",
			"Good nodes (answered recently) in the DHT routing table.", "family"),
		outstanding: metricdef.Desc(subsystem, "outstanding_transactions",
			"KRPC queries awaiting an answer.", "family"),
		queriesSent: metricdef.Desc(subsystem, "queries_sent_total",
			"KRPC queries sent to other DHT nodes.", "family"),
		announcesSent: metricdef.Desc(subsystem, "announces_sent_total",
			"announce_peer queries we sent that got a success answer.", "family"),
	}
}

func (c *tableCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.nodes
	ch <- c.good
	ch <- c.outstanding
	ch <- c.queriesSent
	ch <- c.announcesSent
}

func (c *tableCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.n.servers {
		st := s.srv.Stats()
		ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(st.Nodes), s.family)
		ch <- prometheus.MustNewConstMetric(c.good, prometheus.GaugeValue, float64(st.GoodNodes), s.family)
		ch <- prometheus.MustNewConstMetric(c.outstanding, prometheus.GaugeValue, float64(st.OutstandingTransactions), s.family)
		ch <- prometheus.MustNewConstMetric(c.queriesSent, prometheus.CounterValue, float64(st.OutboundQueriesAttempted), s.family)
		ch <- prometheus.MustNewConstMetric(c.announcesSent, prometheus.CounterValue, float64(st.SuccessfulOutboundAnnouncePeerQueries), s.family)
	}
}
