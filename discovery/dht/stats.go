package dht

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Stats is a snapshot of the DHT node's health, for the status API and pages.
type Stats struct {
	Nodes, GoodNodes uint64    // routing table, every family
	LastSuccess      time.Time // last lookup in which a node answered; zero: never
	Lookups          uint64
	Failures         map[string]uint64 // lookups in which no node answered, by reason
	PeersReceived    uint64
	Watched          uint64
}

// Stats returns the node's figures, read from its metrics and routing tables.
func (n *Node) Stats() Stats {
	st := Stats{Failures: map[string]uint64{}}
	for _, s := range n.servers {
		ss := s.srv.Stats()
		st.Nodes += uint64(ss.Nodes)
		st.GoodNodes += uint64(ss.GoodNodes)
	}
	st.Lookups = uint64(value(n.m.lookups, nil))
	st.PeersReceived = uint64(value(n.m.peersReceived, nil))
	st.Watched = uint64(value(n.m.watched, nil))
	if v := value(n.m.lastSuccess, nil); v > 0 {
		st.LastSuccess = time.Unix(0, int64(v*1e9)).UTC()
	}
	value(n.m.lookupFailures, func(l map[string]string, v float64) {
		if v > 0 {
			st.Failures[l["reason"]] += uint64(v)
		}
	})
	return st
}

// value returns the value of a single-series collector, or calls each for every series.
func value(c prometheus.Collector, each func(map[string]string, float64)) float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	var last float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		switch {
		case d.Counter != nil:
			last = d.Counter.GetValue()
		case d.Gauge != nil:
			last = d.Gauge.GetValue()
		default:
			continue
		}
		if each != nil {
			l := map[string]string{}
			for _, p := range d.Label {
				l[p.GetName()] = p.GetValue()
			}
			each(l, last)
		}
	}
	return last
}
