package dht

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
)

func na(s string) krpc.NodeAddr {
	ap := netip.MustParseAddrPort(s)
	return krpc.NodeAddr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}
}

func TestPeerStore(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newBoundedPeerStore()
	s.now = func() time.Time { return now }
	ih := [20]byte{1}

	s.AddPeer(ih, na("127.0.0.1:1"))
	s.AddPeer(ih, na("127.0.0.1:2"))                                    // same IP, other port: another peer
	s.AddPeer(ih, na("127.0.0.1:1"))                                    // refresh, not a duplicate
	s.AddPeer(ih, krpc.NodeAddr{IP: net.ParseIP("127.0.0.1"), Port: 0}) // no port: ignored
	s.AddPeer(ih, krpc.NodeAddr{IP: net.IP{1, 2}, Port: 5})             // bad IP: ignored
	if got := len(s.GetPeers(ih)); got != 2 {
		t.Fatalf("%d peers, want 2", got)
	}
	if got := s.GetPeers([20]byte{2}); len(got) != 0 {
		t.Fatalf("unknown torrent has peers %v", got)
	}

	// Per-torrent cap: the oldest entry makes room.
	for i := range storeMaxPeersPerTorrent {
		now = now.Add(time.Second)
		s.AddPeer(ih, krpc.NodeAddr{IP: net.IP{127, 0, 1, byte(i)}, Port: 10})
	}
	if got := len(s.m[ih]); got != storeMaxPeersPerTorrent {
		t.Fatalf("%d stored peers, want the cap %d", got, storeMaxPeersPerTorrent)
	}
	if _, ok := s.m[ih][netip.MustParseAddrPort("127.0.0.1:1")]; ok {
		t.Fatal("oldest peer not evicted")
	}
	if got := len(s.GetPeers(ih)); got != storeMaxValues {
		t.Fatalf("answer holds %d peers, want %d", got, storeMaxValues)
	}

	// Expiry.
	now = now.Add(storeTTL + time.Minute)
	if got := s.GetPeers(ih); len(got) != 0 {
		t.Fatalf("expired peers returned: %d", len(got))
	}
	if _, ok := s.m[ih]; ok {
		t.Fatal("empty torrent entry kept")
	}

	// Torrent cap: full of fresh entries, a new torrent is refused; once they expire, it fits.
	for i := range storeMaxTorrents {
		s.AddPeer([20]byte{byte(i), byte(i >> 8), 9}, na("127.0.0.1:1"))
	}
	extra := [20]byte{0xff, 0xff, 0xff}
	s.AddPeer(extra, na("127.0.0.1:1"))
	if len(s.GetPeers(extra)) != 0 {
		t.Fatal("torrent cap exceeded")
	}
	now = now.Add(storeTTL + time.Minute)
	s.AddPeer(extra, na("127.0.0.1:1"))
	if len(s.GetPeers(extra)) != 1 || len(s.m) != 1 {
		t.Fatalf("after expiry: %d torrents stored", len(s.m))
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		d := jitter(300 * time.Second)
		if d < 270*time.Second || d > 330*time.Second {
			t.Fatalf("jitter(300s) = %v, outside ±10%%", d)
		}
	}
}

func BenchmarkPeerStore(b *testing.B) {
	s := newBoundedPeerStore()
	ih := [20]byte{1}
	for i := range storeMaxPeersPerTorrent {
		s.AddPeer(ih, krpc.NodeAddr{IP: net.IP{127, 0, 0, byte(i)}, Port: 1})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.AddPeer(ih, krpc.NodeAddr{IP: net.IP{127, 0, 1, byte(i)}, Port: 1})
		s.GetPeers(ih)
	}
}
