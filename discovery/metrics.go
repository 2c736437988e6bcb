package discovery

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/internal/metricdef"
)

var (
	torrentsDesc = metricdef.Desc("", "torrents", "Watched torrents by state and kind.", "state", "kind")
	torrentInfo  = metricdef.Desc("", "torrent_info", "Watched torrents: names and shapes for the infohash label.",
		"infohash", "name", "pieces", "piece_length")
)

// registryCollector reads the watch list at scrape time (DESIGN.md §5: state is read at
// scrape time, as const metrics).
type registryCollector struct{ r *Registry }

// NewCollector exports the registry's watch list: btda_torrents and btda_torrent_info.
func NewCollector(r *Registry) prometheus.Collector { return registryCollector{r} }

func (c registryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- torrentsDesc
	ch <- torrentInfo
}

func (c registryCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.r.snap.Load() // one consistent view: counts and entries of the same list
	// The kind decides the state (a magnet kind is exactly a pending torrent), so only the
	// pairs that can occur are exported.
	for _, k := range Kinds {
		s := StateActive
		if k == KindMagnet {
			s = StatePendingMetadata
		}
		ch <- prometheus.MustNewConstMetric(torrentsDesc, prometheus.GaugeValue, float64(snap.counts.ByKind[k]), s.String(), k.String())
	}
	for _, e := range snap.entries {
		pieces, pieceLength := "", ""
		if e.Torrent != nil {
			pieces, pieceLength = strconv.Itoa(e.Torrent.Pieces), strconv.FormatInt(e.Torrent.PieceLength, 10)
		}
		ch <- prometheus.MustNewConstMetric(torrentInfo, prometheus.GaugeValue, 1, e.ID.String(), e.Name(), pieces, pieceLength)
	}
}
