package geo

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/internal/metricdef"
)

// subsystem of every GeoIP and reverse-DNS metric: btda_geoip_*.
const subsystem = "geoip"

// RDNS failure reasons (the `reason` label).
var rdnsReasons = []string{"timeout", "not_found", "error"}

// newMetrics creates the reverse-DNS pool's event counters and registers them on reg.
func (r *RDNS) newMetrics(reg prometheus.Registerer) error {
	r.lookups = prometheus.NewCounter(metricdef.CounterOpts(subsystem, "rdns_lookups_total",
		"Reverse DNS lookups of peer addresses."))
	r.failures = prometheus.NewCounterVec(metricdef.CounterOpts(subsystem, "rdns_failures_total",
		"Reverse DNS lookups that gave no registered domain, by reason."), []string{"reason"})
	r.dropped = prometheus.NewCounter(metricdef.CounterOpts(subsystem, "rdns_dropped_total",
		"Reverse DNS requests dropped because the queue was full."))
	for _, reason := range rdnsReasons {
		r.failures.WithLabelValues(reason)
	}
	for _, c := range []prometheus.Collector{r.lookups, r.failures, r.dropped} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var loadedDesc = metricdef.Desc(subsystem, "database_loaded",
	"Whether the GeoIP database is loaded (1) or not (0).", "database")

// dbCollector reads which databases are loaded at scrape time.
type dbCollector struct{ db *DB }

// NewCollector exports btda_geoip_database_loaded{database="city"|"asn"} for db (nil: none
// loaded).
func NewCollector(db *DB) prometheus.Collector { return dbCollector{db} }

func (c dbCollector) Describe(ch chan<- *prometheus.Desc) { ch <- loadedDesc }

func (c dbCollector) Collect(ch chan<- prometheus.Metric) {
	city, asn := c.db.Loaded()
	for _, l := range []struct {
		name string
		ok   bool
	}{{"asn", asn}, {"city", city}} {
		v := 0.0
		if l.ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, v, l.name)
	}
}
