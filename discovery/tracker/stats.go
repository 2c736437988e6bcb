package tracker

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// HostStats is a snapshot of one tracker host's requests, for the status API and pages.
type HostStats struct {
	Host            string
	LastSuccess     time.Time // zero: never
	Interval        time.Duration
	Announces       uint64
	Scrapes         uint64
	PeersReceived   uint64
	Failures        map[Reason]uint64 // announce and scrape failures; zero reasons left out
	ScrapeByTorrent map[string]ScrapeResponse
}

// Stats returns every tracker host's figures, sorted by host. They are read from the
// announcer's metrics, the one place the counts are kept.
func (a *Announcer) Stats() []HostStats {
	m := a.c.m
	hosts := map[string]*HostStats{}
	host := func(h string) *HostStats {
		s := hosts[h]
		if s == nil {
			s = &HostStats{Host: h, Failures: map[Reason]uint64{}, ScrapeByTorrent: map[string]ScrapeResponse{}}
			hosts[h] = s
		}
		return s
	}
	each(m.requests, func(l map[string]string, v float64) {
		s := host(l["tracker"])
		if l["kind"] == KindScrape {
			s.Scrapes += uint64(v)
		} else {
			s.Announces += uint64(v)
		}
	})
	each(m.failures, func(l map[string]string, v float64) {
		if v > 0 {
			host(l["tracker"]).Failures[Reason(l["reason"])] += uint64(v)
		}
	})
	each(m.peers, func(l map[string]string, v float64) { host(l["tracker"]).PeersReceived += uint64(v) })
	each(m.lastSuccess, func(l map[string]string, v float64) {
		if v > 0 {
			host(l["tracker"]).LastSuccess = time.Unix(0, int64(v*1e9)).UTC()
		}
	})
	each(m.interval, func(l map[string]string, v float64) {
		host(l["tracker"]).Interval = time.Duration(v * float64(time.Second))
	})
	scrape := func(l map[string]string) *ScrapeResponse {
		s := host(l["tracker"])
		r, ok := s.ScrapeByTorrent[l["infohash"]]
		if !ok {
			r = ScrapeResponse{Seeders: -1, Leechers: -1, Downloaded: -1}
		}
		s.ScrapeByTorrent[l["infohash"]] = r
		return &r
	}
	set := func(l map[string]string, f func(*ScrapeResponse)) {
		r := scrape(l)
		f(r)
		host(l["tracker"]).ScrapeByTorrent[l["infohash"]] = *r
	}
	each(m.seeders, func(l map[string]string, v float64) { set(l, func(r *ScrapeResponse) { r.Seeders = int64(v) }) })
	each(m.leechers, func(l map[string]string, v float64) { set(l, func(r *ScrapeResponse) { r.Leechers = int64(v) }) })
	each(m.downloaded, func(l map[string]string, v float64) { set(l, func(r *ScrapeResponse) { r.Downloaded = int64(v) }) })
	out := make([]HostStats, 0, len(hosts))
	for _, s := range hosts {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b HostStats) int {
		if a.Host < b.Host {
			return -1
		}
		if a.Host > b.Host {
			return 1
		}
		return 0
	})
	return out
}

// each calls fn with the labels and value of every series c collects (counters and gauges).
func each(c prometheus.Collector, fn func(labels map[string]string, v float64)) {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		l := make(map[string]string, len(d.Label))
		for _, p := range d.Label {
			l[p.GetName()] = p.GetValue()
		}
		switch {
		case d.Counter != nil:
			fn(l, d.Counter.GetValue())
		case d.Gauge != nil:
			fn(l, d.Gauge.GetValue())
		}
	}
}
