package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/discovery"
)

// schedulerCollector reads the scheduler's, the listener's and the watch list's state at
// scrape time, as const metrics (DESIGN.md §5: state is read, events are counted).
type schedulerCollector struct{ s *services }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	queueKnownDesc     = desc("btda_queue_known_peers", "Peers the scheduler knows (every state).")
	queueLengthDesc    = desc("btda_queue_length", "Peers waiting in the scheduler's queue.")
	queueDueDesc       = desc("btda_queue_peers_due", "Queued peers whose visit is due now.")
	queueWaitIPDesc    = desc("btda_queue_peers_waiting_ip", "Due peers parked until their IP's open session ends (one connection per IP).")
	queueDoneDesc      = desc("btda_queue_peers_done", "Peers no longer revisited (crossed the threshold, or seed-like for long enough).")
	queueGivenUpDesc   = desc("btda_queue_peers_given_up", "Peers whose contact retries ran out (until a source reports them again).")
	inFlightDesc       = desc("btda_probe_sessions_in_flight", "Active probe sessions running now.")
	limitDesc          = desc("btda_probe_sessions_limit", "The most active probe sessions allowed at once.")
	startedDesc        = desc("btda_queue_sessions_started_total", "Active probe sessions started by the scheduler.")
	retriesDesc        = desc("btda_queue_retries_total", "Failed contacts rescheduled with back-off.")
	gaveUpDesc         = desc("btda_queue_gave_up_total", "Peers given up after their retries ran out.")
	revivedDesc        = desc("btda_queue_revived_total", "Given-up peers revived by a new sighting or an incoming contact.")
	deferredDesc       = desc("btda_queue_deferred_by_ip_total", "Dispatches deferred because a session to the same IP was open.")
	evictedDesc        = desc("btda_queue_evicted_total", "Peers forgotten after no sighting or contact for probe.forget_after.")
	droppedDesc        = desc("btda_queue_sightings_dropped_total", "Sightings not queued, by reason.", "reason")
	receivedDesc       = desc("btda_discovery_peers_received_total", "Peer addresses received from each source (duplicates included).", "source")
	newDesc            = desc("btda_discovery_peers_new_total", "Peer addresses received from each source that were new to btda.", "source")
	incomingDesc       = desc("btda_probe_incoming_connections_total", "Incoming peer connections accepted by the listener.")
	incomingRejectDesc = desc("btda_probe_incoming_rejected_total", "Incoming connections closed before a session, by reason.", "reason")
	torrentInfoDesc    = desc("btda_torrent_info", "Watched torrents: names and shapes for the infohash label.", "infohash", "name", "pieces", "piece_length")
)

func (c *schedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueKnownDesc, queueLengthDesc, queueDueDesc, queueWaitIPDesc, queueDoneDesc,
		queueGivenUpDesc, inFlightDesc, limitDesc, startedDesc, retriesDesc, gaveUpDesc, revivedDesc, deferredDesc,
		evictedDesc, droppedDesc, receivedDesc, newDesc, incomingDesc, incomingRejectDesc, torrentInfoDesc} {
		ch <- d
	}
}

func (c *schedulerCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	st := c.s.sched.Stats()
	gauge(queueKnownDesc, float64(st.Known))
	gauge(queueLengthDesc, float64(st.Queued))
	gauge(queueDueDesc, float64(st.Due))
	gauge(queueWaitIPDesc, float64(st.WaitingIP))
	gauge(queueDoneDesc, float64(st.Done))
	gauge(queueGivenUpDesc, float64(st.GivenUp))
	gauge(inFlightDesc, float64(st.InFlight))
	gauge(limitDesc, float64(st.Limit))
	counter(startedDesc, st.SessionsStarted)
	counter(retriesDesc, st.RetriesScheduled)
	counter(gaveUpDesc, st.GaveUp)
	counter(revivedDesc, st.Revived)
	counter(deferredDesc, st.DeferredByIP)
	counter(evictedDesc, st.Evicted)
	counter(droppedDesc, st.Rejected, "invalid")
	counter(droppedDesc, st.UnknownTorrent, "unknown_torrent")
	counter(droppedDesc, st.DroppedFull, "queue_full")
	for _, src := range discovery.Sources {
		counter(receivedDesc, st.Received[src], src.String())
		counter(newDesc, st.New[src], src.String())
	}

	ls := c.s.listener.Stats()
	counter(incomingDesc, ls.Accepted)
	counter(incomingRejectDesc, ls.UnknownInfoHash, "unknown_infohash")
	counter(incomingRejectDesc, ls.OverPerIPCap, "per_ip_limit")
	counter(incomingRejectDesc, ls.OverTotalCap, "total_limit")
	counter(incomingRejectDesc, ls.NotBitTorrent, "not_bittorrent")
	counter(incomingRejectDesc, ls.HandshakeFailed, "handshake_failed")

	for _, e := range c.s.registry.Entries() {
		pieces, pieceLength := "", ""
		if e.Torrent != nil {
			pieces, pieceLength = strconv.Itoa(e.Torrent.Pieces), strconv.FormatInt(e.Torrent.PieceLength, 10)
		}
		gauge(torrentInfoDesc, 1, e.ID.String(), e.Name(), pieces, pieceLength)
	}
}
