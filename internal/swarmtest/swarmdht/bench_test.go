package swarmdht

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkLookup is one get_peers traversal from a client node through a 16-node cluster,
// finding 50 peers.
func BenchmarkLookup(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
	c, err := Start(ctx, 16, nil)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ih := [20]byte{0xbe}
	var peers []netip.AddrPort
	for i := range 50 {
		peers = append(peers, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 8, 0, byte(i + 1)}), 6881))
	}
	c.Announce(ih, peers)
	s := freshNode(b, c)
	for b.Loop() {
		if got, _ := lookup(b, s, ih); len(got) != 50 {
			b.Fatalf("found %d peers", len(got))
		}
	}
}

// BenchmarkStart is bringing up and bootstrapping a 16-node cluster, then closing it.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		c, err := Start(b.Context(), 16, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
