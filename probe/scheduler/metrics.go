package scheduler

import (
	"cmp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/metricdef"
)

// The scheduler's families are read from Stats at scrape time, as const metrics
// (DESIGN.md §5: state is read, events are counted where they happen).
var (
	knownDesc     = metricdef.Desc("queue", "known_peers", "Peers the scheduler knows (every state).")
	lengthDesc    = metricdef.Desc("queue", "length", "Peers waiting in the scheduler's queue.")
	dueDesc       = metricdef.Desc("queue", "peers_due", "Queued peers whose visit is due now.")
	waitingIPDesc = metricdef.Desc("queue", "peers_waiting_ip", "Due peers parked until their IP's open session ends (one connection per IP).")
	doneDesc      = metricdef.Desc("queue", "peers_done", "Peers no longer revisited (crossed the threshold, or seed-like for long enough).")
	givenUpDesc   = metricdef.Desc("queue", "peers_given_up", "Peers whose contact retries ran out (until a source reports them again).")
	startedDesc   = metricdef.Desc("queue", "sessions_started_total", "Active probe sessions started by the scheduler.")
	retriesDesc   = metricdef.Desc("queue", "retries_total", "Failed contacts rescheduled with back-off.")
	gaveUpDesc    = metricdef.Desc("queue", "gave_up_total", "Peers given up after their retries ran out.")
	revivedDesc   = metricdef.Desc("queue", "revived_total", "Given-up peers revived by a new sighting or an incoming contact.")
	deferredDesc  = metricdef.Desc("queue", "deferred_by_ip_total", "Dispatches deferred because a session to the same IP was open.")
	evictedDesc   = metricdef.Desc("queue", "evicted_total", "Peers forgotten after no sighting or contact for probe.forget_after.")
	droppedDesc   = metricdef.Desc("queue", "sightings_dropped_total", "Sightings not queued, by reason.", "reason")
	receivedDesc  = metricdef.Desc("discovery", "peers_received_total", "Peer addresses received from each source (duplicates included).", "source")
	newDesc       = metricdef.Desc("discovery", "peers_new_total", "Peer addresses received from each source that were new to btda.", "source")
)

// sortedSources is discovery.Sources in the order of their label values, so that each
// family's series come out sorted.
var sortedSources = slices.SortedFunc(slices.Values(discovery.Sources), func(a, b discovery.Source) int {
	return cmp.Compare(a.String(), b.String())
})

// collector exports a Scheduler's Stats.
type collector struct{ s *Scheduler }

// NewCollector returns a collector of s's queue and discovery families, read from
// s.Stats() at each scrape.
func NewCollector(s *Scheduler) prometheus.Collector { return collector{s} }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{knownDesc, lengthDesc, dueDesc, waitingIPDesc, doneDesc, givenUpDesc,
		startedDesc, retriesDesc, gaveUpDesc, revivedDesc, deferredDesc, evictedDesc, droppedDesc, receivedDesc, newDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	st := c.s.Stats()
	gauge(knownDesc, st.Known)
	gauge(lengthDesc, st.Queued)
	gauge(dueDesc, st.Due)
	gauge(waitingIPDesc, st.WaitingIP)
	gauge(doneDesc, st.Done)
	gauge(givenUpDesc, st.GivenUp)
	counter(startedDesc, st.SessionsStarted)
	counter(retriesDesc, st.RetriesScheduled)
	counter(gaveUpDesc, st.GaveUp)
	counter(revivedDesc, st.Revived)
	counter(deferredDesc, st.DeferredByIP)
	counter(evictedDesc, st.Evicted)
	counter(droppedDesc, st.Rejected, "invalid")
	counter(droppedDesc, st.DroppedFull, "queue_full")
	counter(droppedDesc, st.UnknownTorrent, "unknown_torrent")
	for _, src := range sortedSources {
		counter(receivedDesc, st.Received[src], src.String())
	}
	for _, src := range sortedSources {
		counter(newDesc, st.New[src], src.String())
	}
}
