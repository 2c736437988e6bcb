package scheduler

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// TestCollector drives a scheduler to a known state and compares the whole exposition.
func TestCollector(t *testing.T) {
	h := newHarness(t, Config{MaxPeers: 6, MaxRetries: -1})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	h.add(0, "10.0.0.1:1", discovery.SourceDHT) // duplicate: received, not new
	h.add(0, "10.0.0.1:2", discovery.SourceMagnet)
	h.add(0, "10.0.0.2:1", discovery.SourceDHT)
	h.add(0, "10.0.0.3:1", discovery.SourcePEX)
	h.add(1, "10.0.0.4:1", discovery.SourceTracker)
	h.s.Observed(probe.Observation{Torrent: hash(0), Addr: ap("10.0.0.5:40000"), ListenPort: 6881,
		Direction: probe.Incoming, Outcome: probe.OutcomeOK}) // known, revisited later
	h.add(0, "10.0.0.6:1", discovery.SourceTracker) // the table is full
	h.add(0, "10.0.0.1:0", discovery.SourceTracker) // invalid
	h.add(9, "10.0.0.1:1", discovery.SourceTracker) // unknown torrent
	running := map[string]launch{}
	for _, l := range h.step() { // 10.0.0.1:2 waits for 10.0.0.1:1's session
		running[l.t.Addr.String()] = l
	}
	h.finish(running["10.0.0.2:1"], probe.OutcomeRefused) // given up
	h.finish(running["10.0.0.3:1"], probe.OutcomeRefused) // given up, then revived:
	h.add(0, "10.0.0.3:1", discovery.SourcePEX)
	h.finish(running["10.0.0.4:1"], probe.OutcomeOK, func(o *probe.Observation) { o.Flags.Seed = true }) // done

	const want = `
# HELP btda_discovery_peers_new_total Peer addresses received from each source that were new to btda.
# TYPE btda_discovery_peers_new_total counter
btda_discovery_peers_new_total{source="dht"} 1
btda_discovery_peers_new_total{source="incoming"} 1
btda_discovery_peers_new_total{source="magnet"} 1
btda_discovery_peers_new_total{source="pex"} 1
btda_discovery_peers_new_total{source="tracker"} 2
# HELP btda_discovery_peers_received_total Peer addresses received from each source (duplicates included).
# TYPE btda_discovery_peers_received_total counter
btda_discovery_peers_received_total{source="dht"} 2
btda_discovery_peers_received_total{source="incoming"} 1
btda_discovery_peers_received_total{source="magnet"} 1
btda_discovery_peers_received_total{source="pex"} 2
btda_discovery_peers_received_total{source="tracker"} 3
# HELP btda_queue_deferred_by_ip_total Dispatches deferred because a session to the same IP was open.
# TYPE btda_queue_deferred_by_ip_total counter
btda_queue_deferred_by_ip_total 1
# HELP btda_queue_evicted_total Peers forgotten after no sighting or contact for probe.forget_after.
# TYPE btda_queue_evicted_total counter
btda_queue_evicted_total 0
# HELP btda_queue_gave_up_total Peers given up after their retries ran out.
# TYPE btda_queue_gave_up_total counter
btda_queue_gave_up_total 2
# HELP btda_queue_known_peers Peers the scheduler knows (every state).
# TYPE btda_queue_known_peers gauge
btda_queue_known_peers 6
# HELP btda_queue_length Peers waiting in the scheduler's queue.
# TYPE btda_queue_length gauge
btda_queue_length 2
# HELP btda_queue_peers_done Peers no longer revisited (crossed the threshold, or seed-like for long enough).
# TYPE btda_queue_peers_done gauge
btda_queue_peers_done 1
# HELP btda_queue_peers_due Queued peers whose visit is due now.
# TYPE btda_queue_peers_due gauge
btda_queue_peers_due 1
# HELP btda_queue_peers_given_up Peers whose contact retries ran out (until a source reports them again).
# TYPE btda_queue_peers_given_up gauge
btda_queue_peers_given_up 1
# HELP btda_queue_peers_waiting_ip Due peers parked until their IP's open session ends (one connection per IP).
# TYPE btda_queue_peers_waiting_ip gauge
btda_queue_peers_waiting_ip 1
# HELP btda_queue_retries_total Failed contacts rescheduled with back-off.
# TYPE btda_queue_retries_total counter
btda_queue_retries_total 0
# HELP btda_queue_revived_total Given-up peers revived by a new sighting or an incoming contact.
# TYPE btda_queue_revived_total counter
btda_queue_revived_total 1
# HELP btda_queue_sessions_started_total Active probe sessions started by the scheduler.
# TYPE btda_queue_sessions_started_total counter
btda_queue_sessions_started_total 4
# HELP btda_queue_sightings_dropped_total Sightings not queued, by reason.
# TYPE btda_queue_sightings_dropped_total counter
btda_queue_sightings_dropped_total{reason="invalid"} 1
btda_queue_sightings_dropped_total{reason="queue_full"} 1
btda_queue_sightings_dropped_total{reason="unknown_torrent"} 1
`
	if err := testutil.CollectAndCompare(NewCollector(h.s), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(NewCollector(h.s))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	h.finish(running["10.0.0.1:1"], probe.OutcomeOK)
}

// TestCollectorSeriesOrder: every family's series come out sorted by label value, as the
// registry would sort them, so that nothing is re-sorted at scrape time.
func TestCollectorSeriesOrder(t *testing.T) {
	h := newHarness(t, Config{})
	ch := make(chan prometheus.Metric, 64)
	NewCollector(h.s).Collect(ch)
	close(ch)
	last := map[string]string{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		name := m.Desc().String()
		var label string
		for _, l := range pb.GetLabel() {
			label += l.GetValue()
		}
		if prev, ok := last[name]; ok && label <= prev {
			t.Errorf("%s: series %q after %q", name, label, prev)
		}
		last[name] = label
	}
}
