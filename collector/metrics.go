package collector

import (
	"bytes"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/metricdef"
	"github.com/prometheus/client_golang/prometheus"
)

// otherNetwork is the label the networks beyond the top N are folded into.
const otherNetwork = "other"

// metrics are the recorder's Prometheus series: events counted as batches commit, and the
// committed aggregates (its view) read at scrape time.
type metrics struct {
	c    *Recorder
	view *committedView

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
}

// committedView is what the store holds in total, published after each commit: the
// aggregates, the store's size, and the sorted confirmed-download keys cached for scrapes.
// It has its own lock, so scrapes and commits only ever meet here.
type committedView struct {
	mu   sync.Mutex
	agg  *store.Aggregates
	size int64
	// Sorted confirmed-download keys and their infohash labels (see confirmedKeys).
	confKeys []store.ConfirmedKey
	confHex  []string
}

func (v *committedView) add(delta *store.Aggregates, size int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.agg.Add(delta)
	v.size = size
}

func (v *committedView) copy() *store.Aggregates {
	a := store.NewAggregates()
	v.mu.Lock()
	defer v.mu.Unlock()
	a.Add(v.agg)
	return a
}

// The recorder's subsystems: btda_store_* for the store, btda_* (none) for peers and
// confirmed downloads.
const storeSubsystem = "store"

var (
	confirmedDesc = metricdef.Desc("", "confirmed_downloads_total",
		"Confirmed downloads: peers seen below the completion threshold and later at or above it.",
		"infohash", "country", "continent")
	seedsDesc = metricdef.Desc("", "peers_seed_first_seen_total",
		"Peer identities first seen at or above the completion threshold.", "infohash")
	partialDesc = metricdef.Desc("", "partial_seeds_total",
		"Peer identities that announced upload_only below the completion threshold (BEP 21).", "infohash")
	peersDesc = metricdef.Desc("", "peer_identities_total",
		"Distinct peer identities (torrent, IP, listen port) stored.", "infohash")
	bytesDesc = metricdef.Desc("", "peer_downloaded_bytes_total",
		"Bytes peers gained between progress points while downloading, by country.", "country")
	secondsDesc = metricdef.Desc("", "peer_observed_seconds_total",
		"Seconds between the progress points behind btda_peer_downloaded_bytes_total, by country.", "country")
	netConfDesc = metricdef.Desc("", "network_confirmed_downloads",
		"Confirmed downloads of the top networks (ASN organisation or registered domain), the rest in \"other\".", "network")
	netPeersDesc = metricdef.Desc("", "network_peers",
		"Peer identities of the top networks (ASN organisation or registered domain), the rest in \"other\".", "network")
	sizeDesc  = metricdef.Desc(storeSubsystem, "size_bytes", "Size of the store file.")
	knownDesc = metricdef.Desc(storeSubsystem, "known_peers", "Peer identities in the store.")
)

func newMetrics(c *Recorder, agg *store.Aggregates, size int64) *metrics {
	m := &metrics{c: c, view: &committedView{agg: agg, size: size},
		observed: prometheus.NewCounterVec(metricdef.CounterOpts("", "peers_observed_total",
			"Observations of reachable peers committed to the store, by the source that led to them."), []string{"source"}),
		firstSeen: prometheus.NewCounterVec(metricdef.CounterOpts("", "peers_first_seen_total",
			"Peer identities (torrent, IP, listen port) seen for the first time, by source."), []string{"source"}),
		speed: prometheus.NewHistogramVec(metricdef.HistogramOpts("", "peer_download_speed_bytes_per_second",
			"Download speed of peers between two progress points at least 1 s apart.",
			prometheus.ExponentialBuckets(1024, 4, 11)), []string{"continent"}),
		commitDuration: prometheus.NewHistogram(metricdef.HistogramOpts(storeSubsystem, "commit_duration_seconds",
			"Time to commit one batch of observations to the store.", prometheus.ExponentialBuckets(0.001, 2, 14))),
		commits: prometheus.NewCounter(metricdef.CounterOpts(storeSubsystem, "commits_total",
			"Store commits that succeeded.")),
		commitFailures: prometheus.NewCounterVec(metricdef.CounterOpts(storeSubsystem, "commit_failures_total",
			"Store commits that failed, by reason."), []string{"reason"}),
		dropped: prometheus.NewCounter(metricdef.CounterOpts(storeSubsystem, "observations_dropped_total",
			"Observations dropped after their batch failed every commit attempt.")),
		duplicates: prometheus.NewCounter(metricdef.CounterOpts(storeSubsystem, "observations_duplicate_total",
			"Observations no newer than the stored peer state, ignored.")),
		recordErrors: prometheus.NewCounter(metricdef.CounterOpts(storeSubsystem, "record_errors_total",
			"Stored peer records that could not be decoded; their observations were skipped.")),
	}
	m.pending = prometheus.NewGaugeFunc(metricdef.GaugeOpts(storeSubsystem, "observations_pending",
		"Observations queued or batched, not yet committed."), func() float64 { return float64(c.pending()) })
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
	for _, c := range []prometheus.Collector{m.observed, m.firstSeen, m.speed, m.commitDuration, m.commits,
		m.commitFailures, m.dropped, m.duplicates, m.recordErrors, m.pending, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements prometheus.Collector for the scrape-time state.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{confirmedDesc, seedsDesc, partialDesc, peersDesc,
		bytesDesc, secondsDesc, netConfDesc, netPeersDesc, sizeDesc, knownDesc} {
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
	watched := m.c.watched()
	v := m.view
	v.mu.Lock()
	defer v.mu.Unlock()
	a := v.agg

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
		ch <- prometheus.MustNewConstMetric(seedsDesc, prometheus.CounterValue, float64(t.Seeds), ih)
		ch <- prometheus.MustNewConstMetric(partialDesc, prometheus.CounterValue, float64(t.PartialSeeds), ih)
		ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.CounterValue, float64(t.Peers), ih)
	}

	for i, k := range v.confirmedKeys() {
		ch <- prometheus.MustNewConstMetric(confirmedDesc, prometheus.CounterValue, float64(a.Confirmed[k]),
			v.confHex[i], k.Country, k.Continent)
	}

	for _, cc := range slices.Sorted(maps.Keys(a.Countries)) {
		v := a.Countries[cc]
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(v.Bytes), cc)
		ch <- prometheus.MustNewConstMetric(secondsDesc, prometheus.CounterValue, v.Seconds, cc)
	}
	n := m.c.cfg.TopNetworks
	conf := topN(a.Networks, n, func(x store.NetworkAgg) int64 { return x.Confirmed })
	for _, label := range slices.Sorted(maps.Keys(conf)) {
		ch <- prometheus.MustNewConstMetric(netConfDesc, prometheus.GaugeValue, float64(conf[label]), label)
	}
	peers := topN(a.Networks, n, func(x store.NetworkAgg) int64 { return x.Peers })
	for _, label := range slices.Sorted(maps.Keys(peers)) {
		ch <- prometheus.MustNewConstMetric(netPeersDesc, prometheus.GaugeValue, float64(peers[label]), label)
	}
	ch <- prometheus.MustNewConstMetric(sizeDesc, prometheus.GaugeValue, float64(v.size))
	ch <- prometheus.MustNewConstMetric(knownDesc, prometheus.GaugeValue, float64(known))
}

// confirmedKeys returns the keys of the confirmed downloads in the registry's order (label
// pairs by name: continent, country, infohash), with v.confHex holding their infohash
// labels. The sort is cached across scrapes: keys are only ever added to the committed
// aggregates (Add), so an unchanged count means an unchanged set; a key missing from the
// aggregates rebuilds it all the same. The caller holds v.mu.
func (v *committedView) confirmedKeys() []store.ConfirmedKey {
	conf := v.agg.Confirmed
	if len(v.confKeys) == len(conf) {
		valid := true
		for _, k := range v.confKeys {
			if _, ok := conf[k]; !ok {
				valid = false
				break
			}
		}
		if valid {
			return v.confKeys
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
	v.confKeys, v.confHex = keys, hex
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
