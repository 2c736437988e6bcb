package collector

import (
	"bytes"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
	"github.com/prometheus/client_golang/prometheus"
)

// otherNetwork is the label the networks beyond the top N are folded into.
const otherNetwork = "other"

type metrics struct {
	c *Collector

	sessions       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	maxGap         prometheus.Histogram
	observed       *prometheus.CounterVec
	firstSeen      *prometheus.CounterVec
	speed          *prometheus.HistogramVec
	commitDuration prometheus.Histogram
	commits        prometheus.Counter
	commitFailures *prometheus.CounterVec
	dropped        prometheus.Counter
	duplicates     prometheus.Counter
	recordErrors   prometheus.Counter
	pending        prometheus.GaugeFunc
	geoLoaded      *prometheus.GaugeVec

	// State read from the committed aggregates at scrape time.
	confirmedDesc, seedsDesc, partialDesc, peersDesc  *prometheus.Desc
	bytesDesc, secondsDesc, netConfDesc, netPeersDesc *prometheus.Desc
	sizeDesc, knownDesc                               *prometheus.Desc

	// Sorted confirmed-download keys and their infohash labels, guarded by c.aggMu.
	confKeys []store.ConfirmedKey
	confHex  []string
}

func histogram(name, help string, buckets []float64) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{Namespace: "btda", Name: name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160}
}

func newMetrics(c *Collector) *metrics {
	secs := prometheus.ExponentialBuckets(0.05, 2, 12) // 50 ms … 102 s
	m := &metrics{c: c,
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "btda", Subsystem: "probe",
			Name: "sessions_total", Help: "Probe sessions recorded, by direction and outcome."}, []string{"direction", "outcome"}),
		duration: prometheus.NewHistogramVec(histogram("probe_duration_seconds",
			"Length of probe sessions.", secs), []string{"direction"}),
		maxGap: prometheus.NewHistogram(histogram("probe_max_message_gap_seconds",
			"Largest gap between two messages within a probe session.", secs)),
		observed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "btda", Name: "peers_observed_total",
			Help: "Observations of reachable peers committed to the store, by the source that led to them."}, []string{"source"}),
		firstSeen: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "btda", Name: "peers_first_seen_total",
			Help: "Peer identities (torrent, IP, listen port) seen for the first time, by source."}, []string{"source"}),
		speed: prometheus.NewHistogramVec(histogram("peer_download_speed_bytes_per_second",
			"Download speed of peers between two progress points at least 1 s apart.",
			prometheus.ExponentialBuckets(1024, 4, 11)), []string{"continent"}),
		commitDuration: prometheus.NewHistogram(histogram("store_commit_duration_seconds",
			"Time to commit one batch of observations to the store.", prometheus.ExponentialBuckets(0.001, 2, 14))),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "btda", Subsystem: "store",
			Name: "commits_total", Help: "Store commits that succeeded."}),
		commitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "btda", Subsystem: "store",
			Name: "commit_failures_total", Help: "Store commits that failed, by reason."}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "btda", Subsystem: "store",
			Name: "observations_dropped_total", Help: "Observations dropped after their batch failed every commit attempt."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "btda", Subsystem: "store",
			Name: "observations_duplicate_total", Help: "Observations no newer than the stored peer state, ignored."}),
		recordErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "btda", Subsystem: "store",
			Name: "record_errors_total", Help: "Stored peer records that could not be decoded; their observations were skipped."}),
		geoLoaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "btda", Subsystem: "geoip",
			Name: "database_loaded", Help: "Whether the GeoIP database is loaded (1) or not (0)."}, []string{"database"}),

		confirmedDesc: prometheus.NewDesc("btda_confirmed_downloads_total",
			"Confirmed downloads: peers seen below the completion threshold and later at or above it.",
			[]string{"infohash", "country", "continent"}, nil),
		seedsDesc: prometheus.NewDesc("btda_peers_seed_first_seen_total",
			"Peer identities first seen at or above the completion threshold.", []string{"infohash"}, nil),
		partialDesc: prometheus.NewDesc("btda_partial_seeds_total",
			"Peer identities that announced upload_only below the completion threshold (BEP 21).", []string{"infohash"}, nil),
		peersDesc: prometheus.NewDesc("btda_peer_identities_total",
			"Distinct peer identities (torrent, IP, listen port) stored.", []string{"infohash"}, nil),
		bytesDesc: prometheus.NewDesc("btda_peer_downloaded_bytes_total",
			"Bytes peers gained between progress points while downloading, by country.", []string{"country"}, nil),
		secondsDesc: prometheus.NewDesc("btda_peer_observed_seconds_total",
			"Seconds between the progress points behind btda_peer_downloaded_bytes_total, by country.", []string{"country"}, nil),
		netConfDesc: prometheus.NewDesc("btda_network_confirmed_downloads",
			"Confirmed downloads of the top networks (ASN organisation or registered domain), the rest in \"other\".", []string{"network"}, nil),
		netPeersDesc: prometheus.NewDesc("btda_network_peers",
			"Peer identities of the top networks (ASN organisation or registered domain), the rest in \"other\".", []string{"network"}, nil),
		sizeDesc:  prometheus.NewDesc("btda_store_size_bytes", "Size of the store file.", nil, nil),
		knownDesc: prometheus.NewDesc("btda_store_known_peers", "Peer identities in the store.", nil, nil),
	}
	m.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "btda", Subsystem: "store",
		Name: "observations_pending", Help: "Observations queued or batched, not yet committed."},
		func() float64 { return float64(len(c.in)) + float64(c.batchLen.Load()) })
	for _, d := range []probe.Direction{probe.Outgoing, probe.Incoming} {
		for _, o := range probe.Outcomes {
			m.sessions.WithLabelValues(d.String(), o.String())
		}
		m.duration.WithLabelValues(d.String())
	}
	for _, s := range discovery.Sources {
		m.observed.WithLabelValues(s.String())
		m.firstSeen.WithLabelValues(s.String())
	}
	for _, ct := range geo.Continents {
		m.speed.WithLabelValues(ct)
	}
	for _, r := range failureReasons {
		m.commitFailures.WithLabelValues(r)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.sessions, m.duration, m.maxGap, m.observed, m.firstSeen,
		m.speed, m.commitDuration, m.commits, m.commitFailures, m.dropped, m.duplicates, m.recordErrors,
		m.pending, m.geoLoaded, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// observeSession counts a finished probe session.
func (m *metrics) observeSession(o *probe.Observation) {
	dir := o.Direction.String()
	m.sessions.WithLabelValues(dir, o.Outcome.String()).Inc()
	if o.Direction == probe.Outgoing || o.Direction == probe.Incoming {
		m.duration.WithLabelValues(dir).Observe(o.Timings.Total.Seconds())
	}
	if o.Timings.MaxGap > 0 {
		m.maxGap.Observe(o.Timings.MaxGap.Seconds())
	}
}

// Describe implements prometheus.Collector for the scrape-time state.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.confirmedDesc, m.seedsDesc, m.partialDesc, m.peersDesc,
		m.bytesDesc, m.secondsDesc, m.netConfDesc, m.netPeersDesc, m.sizeDesc, m.knownDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the committed aggregates as const metrics, so the
// counters are exact across restarts (they are the stored totals, not process counters).
//
// Series are emitted sorted the way the registry sorts each family (by label values in label
// name order), so its sort.Sort finds them already in order: at 50,000 confirmed-download
// series, map order made that sort ~42 % of a scrape (BENCHMARKS.md, /metrics latency).
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	c.torrentsMu.RLock()
	watched := make([]metainfo.Hash, 0, len(c.torrents))
	for h := range c.torrents {
		watched = append(watched, h)
	}
	c.torrentsMu.RUnlock()

	c.aggMu.Lock()
	defer c.aggMu.Unlock()
	a := c.agg

	// Watched torrents without aggregates yet are exported at zero beside the stored ones.
	hashes := make([]metainfo.Hash, 0, len(a.Torrents)+len(watched))
	for h := range a.Torrents {
		hashes = append(hashes, h)
	}
	for _, h := range watched {
		if _, ok := a.Torrents[h]; !ok {
			hashes = append(hashes, h)
		}
	}
	// Byte order of the hash is the order of its lowercase hex label.
	slices.SortFunc(hashes, func(x, y metainfo.Hash) int { return bytes.Compare(x[:], y[:]) })
	var known uint64
	for _, h := range hashes {
		t := a.Torrents[h] // zero value for a watched torrent not yet stored
		known += t.Peers
		ih := h.String()
		ch <- prometheus.MustNewConstMetric(m.seedsDesc, prometheus.CounterValue, float64(t.Seeds), ih)
		ch <- prometheus.MustNewConstMetric(m.partialDesc, prometheus.CounterValue, float64(t.PartialSeeds), ih)
		ch <- prometheus.MustNewConstMetric(m.peersDesc, prometheus.CounterValue, float64(t.Peers), ih)
	}

	for i, k := range m.confirmedKeys(a.Confirmed) {
		ch <- prometheus.MustNewConstMetric(m.confirmedDesc, prometheus.CounterValue, float64(a.Confirmed[k]),
			m.confHex[i], k.Country, k.Continent)
	}

	for _, cc := range slices.Sorted(maps.Keys(a.Countries)) {
		v := a.Countries[cc]
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.CounterValue, float64(v.Bytes), cc)
		ch <- prometheus.MustNewConstMetric(m.secondsDesc, prometheus.CounterValue, v.Seconds, cc)
	}
	n := c.cfg.TopNetworks
	conf := topN(a.Networks, n, func(x store.NetworkAgg) int64 { return x.Confirmed })
	for _, label := range slices.Sorted(maps.Keys(conf)) {
		ch <- prometheus.MustNewConstMetric(m.netConfDesc, prometheus.GaugeValue, float64(conf[label]), label)
	}
	peers := topN(a.Networks, n, func(x store.NetworkAgg) int64 { return x.Peers })
	for _, label := range slices.Sorted(maps.Keys(peers)) {
		ch <- prometheus.MustNewConstMetric(m.netPeersDesc, prometheus.GaugeValue, float64(peers[label]), label)
	}
	ch <- prometheus.MustNewConstMetric(m.sizeDesc, prometheus.GaugeValue, float64(c.size.Load()))
	ch <- prometheus.MustNewConstMetric(m.knownDesc, prometheus.GaugeValue, float64(known))
}

// confirmedKeys returns the keys of conf in the registry's order (label pairs by name:
// continent, country, infohash), with m.confHex holding their infohash labels. The sort is
// cached across scrapes: keys are only ever added to the committed aggregates (Add), so an
// unchanged count means an unchanged set; a key missing from conf rebuilds it all the same.
// The caller holds aggMu, which also guards the cache.
func (m *metrics) confirmedKeys(conf map[store.ConfirmedKey]uint64) []store.ConfirmedKey {
	if len(m.confKeys) == len(conf) {
		valid := true
		for _, k := range m.confKeys {
			if _, ok := conf[k]; !ok {
				valid = false
				break
			}
		}
		if valid {
			return m.confKeys
		}
	}
	keys := make([]store.ConfirmedKey, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y store.ConfirmedKey) int {
		if r := strings.Compare(x.Continent, y.Continent); r != 0 {
			return r
		}
		if r := strings.Compare(x.Country, y.Country); r != 0 {
			return r
		}
		// Byte order of the hash is the order of its lowercase hex label.
		return bytes.Compare(x.Torrent[:], y.Torrent[:])
	})
	hex := make([]string, len(keys))
	for i, k := range keys {
		hex[i] = k.Torrent.String()
	}
	m.confKeys, m.confHex = keys, hex
	return keys
}

// topN returns the n networks with the largest value (ties by name) and the sum of the rest
// under "other". Networks with a value of 0 are left out, so the table stays at most n+1
// series.
func topN(nets map[string]store.NetworkAgg, n int, val func(store.NetworkAgg) int64) map[string]int64 {
	type kv struct {
		k string
		v int64
	}
	all := make([]kv, 0, len(nets))
	for k, a := range nets {
		if v := val(a); v > 0 {
			all = append(all, kv{k, v})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	out := make(map[string]int64, n+1)
	for i, e := range all {
		if i < n && e.k != otherNetwork {
			out[e.k] = e.v
		} else {
			out[otherNetwork] += e.v
		}
	}
	return out
}
