package swarmtest

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The collector's series use the btswarm_ namespace, not btda_, so that a
// Prometheus scraping both can never mistake the truth for btda's numbers.
var (
	descCrossings = prometheus.NewDesc("btswarm_truth_confirmed_downloads_total",
		"Crossings btda must count (class leecher, threshold crossed from below) that have happened so far, by torrent and country.",
		[]string{"infohash", "country"}, nil)
	descPeers = prometheus.NewDesc("btswarm_truth_peers",
		"Peers in the swarm, by torrent and class (leecher, seed, lazy_seed, super_seed, partial_seed, always_zero, unobservable).",
		[]string{"infohash", "class"}, nil)
	descStart = prometheus.NewDesc("btswarm_start_timestamp_seconds",
		"Wall-clock time of swarm time 0.", nil, nil)
	descAccepted = prometheus.NewDesc("btswarm_connections_accepted_total",
		"Connections accepted by the swarm's peers.", nil, nil)
	descRejected = prometheus.NewDesc("btswarm_connections_rejected_total",
		"Connections closed at once because max_conns were open.", nil, nil)
	descHandshakes = prometheus.NewDesc("btswarm_handshakes_total",
		"BitTorrent handshakes attempted by talking peers.", nil, nil)
	descHandshakeFail = prometheus.NewDesc("btswarm_handshake_failures_total",
		"Handshakes that failed, by reason.", []string{"reason"}, nil)
	descUpdates = prometheus.NewDesc("btswarm_progress_updates_total",
		"have and lt_donthave messages sent as curves moved.", nil, nil)
	descDialOuts = prometheus.NewDesc("btswarm_dialouts_total",
		"Connections dialled to Config.DialOut.", nil, nil)
	descDialFail = prometheus.NewDesc("btswarm_dialout_failures_total",
		"Dials to Config.DialOut that failed, by reason.", []string{"reason"}, nil)
	descEncrypted = prometheus.NewDesc("btswarm_mse_handshakes_total",
		"MSE handshakes completed by peers that require encryption (reach.require_mse).", nil, nil)
	descUTP = prometheus.NewDesc("btswarm_utp_sessions_total",
		"Connections of uTP-only peers (reach.utp_only), accepted or dialled.", nil, nil)
)

type crossKey struct{ torrent, country string }

type collector struct {
	s        *Swarm
	crosses  map[crossKey][]time.Duration // sorted crossing times of counted peers
	classes  map[[2]string]int
	anchored []*Peer // peers whose crossing depends on their first contact: computed per scrape
}

// Collector returns a Prometheus collector of the truth so far (counted
// crossings up to the swarm's current time) and the swarm's counters. The
// caller registers it on its own registry.
func (s *Swarm) Collector() prometheus.Collector {
	c := &collector{s: s, crosses: map[crossKey][]time.Duration{}, classes: map[[2]string]int{}}
	// Crossings are fixed by the curves: compute them once, up to a horizon
	// no run reaches.
	const forever = time.Duration(1 << 62)
	for _, p := range s.peers {
		pt := s.PeerTruth(p, forever)
		c.classes[[2]string{pt.Torrent, pt.Class}]++
		if p.Curve.Anchored {
			c.anchored = append(c.anchored, p)
			continue
		}
		if pt.Counted {
			k := crossKey{pt.Torrent, pt.Country}
			c.crosses[k] = append(c.crosses[k], *pt.CrossAt)
		}
	}
	for _, ts := range c.crosses {
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCrossings, descPeers, descStart, descAccepted, descRejected,
		descHandshakes, descHandshakeFail, descUpdates, descDialOuts, descDialFail, descEncrypted, descUTP} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := c.s.Elapsed()
	late := map[crossKey]int{}
	for _, p := range c.anchored {
		if pt := c.s.PeerTruth(p, now+1); pt.Counted && *pt.CrossAt <= now {
			late[crossKey{pt.Torrent, pt.Country}]++
		}
	}
	// Every torrent × country series exists from the start, at zero.
	for _, t := range c.s.torrents {
		for _, co := range c.s.cfg.Countries {
			k := crossKey{t.WireHex(), co.ISO}
			ts := c.crosses[k]
			n := sort.Search(len(ts), func(i int) bool { return ts[i] > now }) + late[k]
			ch <- prometheus.MustNewConstMetric(descCrossings, prometheus.CounterValue, float64(n), t.WireHex(), co.ISO)
		}
	}
	for k, n := range c.classes {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(c.s.start.UnixNano())/1e9)
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(st.Accepted))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.Rejected))
	ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(st.Handshakes+st.BadHandshakes+st.PlaintextRefused))
	ch <- prometheus.MustNewConstMetric(descHandshakeFail, prometheus.CounterValue, float64(st.BadHandshakes), "handshake")
	ch <- prometheus.MustNewConstMetric(descHandshakeFail, prometheus.CounterValue, float64(st.PlaintextRefused), "plaintext_refused")
	ch <- prometheus.MustNewConstMetric(descEncrypted, prometheus.CounterValue, float64(st.Encrypted))
	ch <- prometheus.MustNewConstMetric(descUTP, prometheus.CounterValue, float64(st.UTPSessions))
	ch <- prometheus.MustNewConstMetric(descUpdates, prometheus.CounterValue, float64(st.Updates))
	ch <- prometheus.MustNewConstMetric(descDialOuts, prometheus.CounterValue, float64(st.DialOuts+st.DialFailures))
	ch <- prometheus.MustNewConstMetric(descDialFail, prometheus.CounterValue, float64(st.DialFailures), "dial")
}
