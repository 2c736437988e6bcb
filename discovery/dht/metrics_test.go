package dht

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsPreCreated checks that every series exists at zero before anything happens, and
// that the names pass the Prometheus linter.
func TestMetricsPreCreated(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	newNode(t, Config{}, nil, reg)

	want := `
# HELP btda_dht_announces_dropped_total Incoming announces for watched torrents dropped because too many were waiting to be delivered.
# TYPE btda_dht_announces_dropped_total counter
btda_dht_announces_dropped_total 0
# HELP btda_dht_announces_received_total Valid incoming announce_peer queries for watched torrents.
# TYPE btda_dht_announces_received_total counter
btda_dht_announces_received_total 0
# HELP btda_dht_announces_sent_total announce_peer queries we sent that got a success answer.
# TYPE btda_dht_announces_sent_total counter
btda_dht_announces_sent_total{family="ipv4"} 0
# HELP btda_dht_last_success_timestamp_seconds Unix time of the last lookup in which at least one node answered (0: never).
# TYPE btda_dht_last_success_timestamp_seconds gauge
btda_dht_last_success_timestamp_seconds 0
# HELP btda_dht_lookup_failures_total DHT lookups in which no node answered, by reason (timeout, no_nodes, error).
# TYPE btda_dht_lookup_failures_total counter
btda_dht_lookup_failures_total{reason="error"} 0
btda_dht_lookup_failures_total{reason="no_nodes"} 0
btda_dht_lookup_failures_total{reason="timeout"} 0
# HELP btda_dht_lookups_in_flight DHT lookups running now.
# TYPE btda_dht_lookups_in_flight gauge
btda_dht_lookups_in_flight 0
# HELP btda_dht_lookups_total DHT get_peers lookups that ran to completion or to their deadline (shutdown-cancelled lookups are not counted).
# TYPE btda_dht_lookups_total counter
btda_dht_lookups_total 0
# HELP btda_dht_outstanding_transactions KRPC queries awaiting an answer.
# TYPE btda_dht_outstanding_transactions gauge
btda_dht_outstanding_transactions{family="ipv4"} 0
# HELP btda_dht_peers_received_total Peer addresses received from DHT lookups (distinct within each lookup).
# TYPE btda_dht_peers_received_total counter
btda_dht_peers_received_total 0
# HELP btda_dht_queries_received_total KRPC queries received from other DHT nodes, by query type.
# TYPE btda_dht_queries_received_total counter
btda_dht_queries_received_total{query="announce_peer"} 0
btda_dht_queries_received_total{query="find_node"} 0
btda_dht_queries_received_total{query="get_peers"} 0
btda_dht_queries_received_total{query="other"} 0
btda_dht_queries_received_total{query="ping"} 0
# HELP btda_dht_queries_sent_total KRPC queries sent to other DHT nodes.
# TYPE btda_dht_queries_sent_total counter
btda_dht_queries_sent_total{family="ipv4"} 0
# HELP btda_dht_routing_table_good_nodes Good nodes (answered recently) in the DHT routing table.
# TYPE btda_dht_routing_table_good_nodes gauge
btda_dht_routing_table_good_nodes{family="ipv4"} 0
# HELP btda_dht_routing_table_nodes Nodes in the DHT routing table.
# TYPE btda_dht_routing_table_nodes gauge
btda_dht_routing_table_nodes{family="ipv4"} 0
# HELP btda_dht_watched_torrents Torrents the DHT node looks up periodically.
# TYPE btda_dht_watched_torrents gauge
btda_dht_watched_torrents 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"btda_dht_announces_dropped_total", "btda_dht_announces_received_total",
		"btda_dht_announces_sent_total", "btda_dht_last_success_timestamp_seconds",
		"btda_dht_lookup_failures_total", "btda_dht_lookups_total", "btda_dht_lookups_in_flight",
		"btda_dht_outstanding_transactions", "btda_dht_peers_received_total",
		"btda_dht_queries_received_total", "btda_dht_queries_sent_total",
		"btda_dht_routing_table_good_nodes", "btda_dht_routing_table_nodes",
		"btda_dht_watched_torrents"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(newMetrics().lookupDuration); got != 1 {
		t.Fatalf("duration histogram series = %d, want 1", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

func TestIPv6FamilyMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	newNode(t, Config{IPv6: true, Listen6: "[::1]:0"}, nil, reg)
	if got := testutil.CollectAndCount(reg, "btda_dht_routing_table_nodes"); got != 2 {
		t.Fatalf("routing table series = %d, want one per family", got)
	}
}

func TestRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	newNode(t, Config{}, nil, reg)
	n, err := New(Config{Listen: "127.0.0.1:0"}, nil, reg, nil)
	if err == nil {
		n.Close()
		t.Fatal("second node registered on the same registry")
	}
	if !strings.Contains(err.Error(), "registering metrics") {
		t.Fatalf("err = %v", err)
	}
}
