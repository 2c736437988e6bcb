package dht

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest/swarmdht"
)

// TestHybridLookedUpUnderBothHashes: a hybrid torrent is watched under its ID (v1 hash) and
// its truncated v2 hash. Peers stored in the test swarm's DHT cluster under either hash,
// and an incoming announce_peer under the v2 hash, become sightings under the hash that
// found them (the daemon maps both to the torrent); btda's own
// announce_peer reaches the cluster under both hashes; the node counts one watched
// torrent and one lookup per round.
func TestHybridLookedUpUnderBothHashes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	cluster, err := swarmdht.Start(ctx, 4, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	v1, v2 := hash(31), hash(32)
	v1Peer := netip.MustParseAddrPort("127.4.0.1:6881")
	v2Peer := netip.MustParseAddrPort("127.4.0.2:6882") // a v2-only client: under the v2 hash alone
	cluster.Announce(v1, []netip.AddrPort{v1Peer})
	cluster.Announce(v2, []netip.AddrPort{v2Peer})

	var boot []string
	for _, a := range cluster.Addrs() {
		boot = append(boot, a.String())
	}
	out := make(chan discovery.Sighting, 64)
	reg := prometheus.NewPedanticRegistry()
	n := newNode(t, Config{Bootstrap: boot, PeerPort: 7001, Interval: time.Hour}, out, reg)
	n.Add(v1, v1, v2) // the ID repeated among the hashes counts once
	stop := runNode(t, n)
	defer stop()

	got := map[netip.AddrPort]bool{}
	waitSighting(t, out, func(s discovery.Sighting) bool {
		want := map[netip.AddrPort]metainfo.Hash{v1Peer: v1, v2Peer: v2}[s.Addr]
		if s.Torrent != want || s.Source != discovery.SourceDHT {
			t.Errorf("sighting %+v: want torrent %s from dht (the hash it was found under)", s, want)
		}
		got[s.Addr] = true
		return got[v1Peer] && got[v2Peer]
	})

	// Our announce_peer went out under both hashes.
	self := netip.MustParseAddrPort("127.0.0.1:7001")
	deadline := time.Now().Add(failSafe)
	for {
		var under1, under2 bool
		for _, a := range cluster.AnnouncePeers() {
			if a.Peer == self {
				under1 = under1 || a.InfoHash == v1
				under2 = under2 || a.InfoHash == v2
			}
		}
		if under1 && under2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("announce_peer under v1 %v, under v2 %v; want both", under1, under2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w := testutil.ToFloat64(n.m.watched); w != 1 {
		t.Errorf("watched torrents = %v, want 1", w)
	}
	for testutil.ToFloat64(n.m.lookups) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if l := testutil.ToFloat64(n.m.lookups); l != 1 {
		t.Errorf("lookups = %v, want 1 (one lookup traverses both hashes)", l)
	}

	// A v2-only client announcing to us under the v2 hash is a peer of the torrent.
	announce(t, "udp4", "127.0.0.1", n.Addr("ipv4"), v2, 5556, false)
	s := waitSighting(t, out, func(s discovery.Sighting) bool { return s.Addr.Port() == 5556 })
	if s.Torrent != v2 {
		t.Errorf("incoming announce under the v2 hash: sighting %+v, want torrent %s", s, v2)
	}

	// Removing the torrent forgets both hashes.
	n.Remove(v1)
	if _, ok := n.watchedID(v2); ok {
		t.Error("v2 hash still watched after Remove")
	}
}

// TestAddUpdatesHashes: a watched magnet whose metadata names a second hash gets it on
// Add again; a hash another watched torrent holds stays with that torrent.
func TestAddUpdatesHashes(t *testing.T) {
	n := newNode(t, Config{}, nil, nil)
	a, b, c := hash(41), hash(42), hash(43)
	n.Add(a)
	n.Add(c)
	n.Add(a, b, c)
	if hs := n.hashesOf(a); len(hs) != 2 || hs[0] != a || hs[1] != b {
		t.Errorf("hashes of a: %v, want [a b]", hs)
	}
	for h, want := range map[[20]byte][20]byte{a: a, b: a, c: c} {
		if id, ok := n.watchedID(h); !ok || id != want {
			t.Errorf("watchedID(%x) = %x, %v", h[:2], id[:2], ok)
		}
	}
	if w := testutil.ToFloat64(n.m.watched); w != 2 {
		t.Errorf("watched = %v, want 2", w)
	}
}
