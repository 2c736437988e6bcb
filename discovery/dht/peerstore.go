package dht

import (
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
)

// Bounds of the peers other nodes announce to us. anacrolix's InMemory store never forgets
// and has no size limit; a long-running public node needs both.
const (
	storeMaxTorrents        = 4096
	storeMaxPeersPerTorrent = 64
	storeTTL                = 30 * time.Minute // BEP 5 clients re-announce well within this
	storeMaxValues          = 50               // keeps a get_peers answer inside one UDP packet
)

// boundedPeerStore is the peer store our node answers get_peers from. Having a store at all
// is what makes anacrolix hand out announce tokens, without which nobody can announce to us.
type boundedPeerStore struct {
	mu  sync.Mutex
	m   map[peer_store.InfoHash]map[netip.AddrPort]time.Time
	now func() time.Time
}

var _ peer_store.Interface = (*boundedPeerStore)(nil)

func newBoundedPeerStore() *boundedPeerStore {
	return &boundedPeerStore{m: make(map[peer_store.InfoHash]map[netip.AddrPort]time.Time), now: time.Now}
}

func (s *boundedPeerStore) AddPeer(ih peer_store.InfoHash, na krpc.NodeAddr) {
	ip, ok := netip.AddrFromSlice(na.IP)
	if !ok || na.Port <= 0 || na.Port > 65535 {
		return
	}
	ap := netip.AddrPortFrom(ip.Unmap(), uint16(na.Port))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	peers := s.m[ih]
	if peers == nil {
		if len(s.m) >= storeMaxTorrents {
			s.sweepLocked(now)
			if len(s.m) >= storeMaxTorrents {
				return
			}
		}
		peers = make(map[netip.AddrPort]time.Time)
		s.m[ih] = peers
	}
	if _, ok := peers[ap]; !ok && len(peers) >= storeMaxPeersPerTorrent {
		// Replace the oldest entry: fresh announces are the likelier to be reachable.
		var oldest netip.AddrPort
		var oldestAt time.Time
		for p, at := range peers {
			if oldestAt.IsZero() || at.Before(oldestAt) {
				oldest, oldestAt = p, at
			}
		}
		delete(peers, oldest)
	}
	peers[ap] = now
}

func (s *boundedPeerStore) GetPeers(ih peer_store.InfoHash) []krpc.NodeAddr {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	peers := s.m[ih]
	var out []krpc.NodeAddr
	for p, at := range peers {
		if now.Sub(at) > storeTTL {
			delete(peers, p)
			continue
		}
		if len(out) < storeMaxValues {
			out = append(out, krpc.NodeAddr{IP: p.Addr().AsSlice(), Port: int(p.Port())})
		}
	}
	if peers != nil && len(peers) == 0 {
		delete(s.m, ih)
	}
	return out
}

func (s *boundedPeerStore) sweepLocked(now time.Time) {
	for ih, peers := range s.m {
		for p, at := range peers {
			if now.Sub(at) > storeTTL {
				delete(peers, p)
			}
		}
		if len(peers) == 0 {
			delete(s.m, ih)
		}
	}
}
