package swarmdht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"
)

// MaxValues is the most peers one node puts in a get_peers reply ("values"), as libtorrent's
// dht_settings.max_peers_reply; more would not fit a UDP datagram for big swarms.
const MaxValues = 100

// MaxNodes bounds the cluster size (each node is a socket and a few goroutines).
const MaxNodes = 64

// AnnouncePeer is one announce_peer query a cluster node accepted (valid token).
type AnnouncePeer struct {
	At       time.Time
	Node     netip.AddrPort // the cluster node that received it
	InfoHash [20]byte
	// Peer is the querier's IP with the announced port (or its source port with implied_port).
	Peer   netip.AddrPort
	PortOK bool
}

// Cluster is a set of DHT nodes on loopback that know each other.
type Cluster struct {
	log     *slog.Logger
	servers []*dht.Server
	conns   []*muteConn
	stores  []*peerStore
	addrs   []netip.AddrPort
	configs []*dht.ServerConfig // kept for tests that inspect StartingNodes

	muted     atomic.Bool
	closeOnce sync.Once

	mu        sync.Mutex
	announces []AnnouncePeer
}

// Config sets up a Cluster.
type Config struct {
	// Nodes is the number of nodes (1..MaxNodes).
	Nodes int
	// DistinctIPs puts node i on 127.100.i.1 instead of all on 127.0.0.1, for clients whose
	// routing tables keep one node per IP or per /24 (libtorrent's restrict_routing_ips).
	DistinctIPs bool
	// Logger receives the nodes' Info and higher messages (default: discard).
	Logger *slog.Logger
}

// Start opens n nodes (1..MaxNodes) on 127.0.0.1, each on its own UDP port, and bootstraps each
// from the others only (never from the public routers). ctx bounds the bootstrap.
func Start(ctx context.Context, n int, logger *slog.Logger) (*Cluster, error) {
	return StartConfig(ctx, Config{Nodes: n, Logger: logger})
}

// StartConfig is Start with the options of Config.
func StartConfig(ctx context.Context, cfg Config) (*Cluster, error) {
	n, logger := cfg.Nodes, cfg.Logger
	if n < 1 || n > MaxNodes {
		return nil, fmt.Errorf("swarmdht: %d nodes, want 1..%d", n, MaxNodes)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{log: logger.With("component", "swarmdht")}
	var lc net.ListenConfig
	for i := range n {
		host := "127.0.0.1:0"
		if cfg.DistinctIPs {
			host = fmt.Sprintf("127.100.%d.1:0", i)
		}
		pc, err := lc.ListenPacket(ctx, "udp4", host)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("swarmdht: listen: %w", err)
		}
		mc := &muteConn{PacketConn: pc, muted: &c.muted}
		c.conns = append(c.conns, mc)
		c.addrs = append(c.addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	for i, mc := range c.conns {
		self := c.addrs[i]
		store := newPeerStore(uint64(i))
		cfg := dht.NewDefaultServerConfig()
		cfg.Conn = mc
		// Node ID security (BEP 42) ties IDs to public IPs; on loopback it would reject every node.
		cfg.NoSecurity = true
		// The default StartingNodes resolves the public routers: replace it with the other
		// cluster nodes only.
		others := slices.DeleteFunc(slices.Clone(c.addrs), func(a netip.AddrPort) bool { return a == self })
		cfg.StartingNodes = func() ([]dht.Addr, error) {
			out := make([]dht.Addr, 0, len(others))
			for _, a := range others {
				out = append(out, dht.NewAddr(net.UDPAddrFromAddrPort(a)))
			}
			if len(out) == 0 {
				return nil, errors.New("swarmdht: single-node cluster has no starting nodes")
			}
			return out, nil
		}
		cfg.PeerStore = store
		cfg.OnAnnouncePeer = func(ih metainfo.Hash, ip net.IP, port int, portOK bool) {
			addr, _ := netip.AddrFromSlice(ip)
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.announces) < 100000 {
				c.announces = append(c.announces, AnnouncePeer{At: time.Now(), Node: self, InfoHash: ih,
					Peer: netip.AddrPortFrom(addr.Unmap(), uint16(port)), PortOK: portOK})
			}
		}
		// The package default limiter is one global 25/s bucket shared by every Server in the
		// process (btda's own node included); test nodes get their own, unlimited.
		cfg.SendLimiter = rate.NewLimiter(rate.Inf, 0)
		// The library's own log lines are not the swarm's business: the cluster logs its
		// events itself (c.log), and a second bridge to slog would repeat btda's.
		cfg.Logger = alog.Default.WithFilterLevel(alog.Disabled)
		s, err := dht.NewServer(cfg)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("swarmdht: node %s: %w", self, err)
		}
		c.servers = append(c.servers, s)
		c.stores = append(c.stores, store)
		c.configs = append(c.configs, cfg)
	}
	if n > 1 {
		if err := c.bootstrap(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) bootstrap(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.servers))
	for i, s := range c.servers {
		wg.Go(func() {
			_, err := s.BootstrapContext(ctx)
			errs[i] = err
		})
	}
	wg.Wait()
	for i, s := range c.servers {
		if errs[i] != nil {
			return fmt.Errorf("swarmdht: bootstrapping node %s: %w", c.addrs[i], errs[i])
		}
		if s.NumNodes() == 0 {
			return fmt.Errorf("swarmdht: node %s knows no other node after bootstrap", c.addrs[i])
		}
	}
	return nil
}

// Addrs returns the nodes' addresses: the bootstrap list for a client under test.
func (c *Cluster) Addrs() []netip.AddrPort { return slices.Clone(c.addrs) }

// Announce stores peers for infoHash in every node's peer store, so any get_peers reaching any
// node returns them (up to MaxValues per reply). It does not run announce_peer traversals.
func (c *Cluster) Announce(infoHash [20]byte, peers []netip.AddrPort) {
	for _, s := range c.stores {
		for _, p := range peers {
			s.add(infoHash, p)
		}
	}
}

// Peers returns every peer any node stores for infoHash (from Announce and from announce_peer
// queries), sorted.
func (c *Cluster) Peers(infoHash [20]byte) []netip.AddrPort {
	seen := make(map[netip.AddrPort]bool)
	var out []netip.AddrPort
	for _, s := range c.stores {
		for _, p := range s.all(infoHash) {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// AnnouncePeers returns the announce_peer queries the nodes accepted, in arrival order.
func (c *Cluster) AnnouncePeers() []AnnouncePeer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.announces)
}

// NumNodes returns, per node, how many nodes its routing table holds.
func (c *Cluster) NumNodes() []int {
	out := make([]int, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.NumNodes()
	}
	return out
}

// Stop makes every node silent: packets to it are read and dropped and nothing is sent, as a
// DHT that has gone away (the ports stay bound, so no ICMP "port unreachable" gives it away).
func (c *Cluster) Stop() { c.muted.Store(true) }

// Resume undoes Stop.
func (c *Cluster) Resume() { c.muted.Store(false) }

// Close shuts every node down and releases its port. Idempotent.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.muted.Store(true)
		for _, s := range c.servers {
			s.Close()
		}
		// dht.Server.Close closes the socket in a goroutine; close it here too so the port is
		// free when Close returns (a second Close of a PacketConn is harmless).
		for _, mc := range c.conns {
			mc.PacketConn.Close()
		}
	})
}

// muteConn drops all traffic while muted.
type muteConn struct {
	net.PacketConn
	muted *atomic.Bool
}

func (m *muteConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := m.PacketConn.ReadFrom(b)
		if err != nil || !m.muted.Load() {
			return n, addr, err
		}
	}
}

func (m *muteConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if m.muted.Load() {
		return len(b), nil
	}
	return m.PacketConn.WriteTo(b, addr)
}

// peerStore implements peer_store.Interface keyed by IP and port (anacrolix's InMemory keys by
// IP alone, which would merge test peers sharing an IP) and answers with a random subset of at
// most MaxValues peers, as a real node does.
type peerStore struct {
	mu    sync.Mutex
	rng   *rand.Rand
	peers map[[20]byte][]netip.AddrPort
	index map[[20]byte]map[netip.AddrPort]bool
}

var _ peer_store.Interface = (*peerStore)(nil)

func newPeerStore(seed uint64) *peerStore {
	return &peerStore{
		rng:   rand.New(rand.NewPCG(seed, 0x5eed)),
		peers: make(map[[20]byte][]netip.AddrPort),
		index: make(map[[20]byte]map[netip.AddrPort]bool),
	}
}

func (s *peerStore) add(ih [20]byte, p netip.AddrPort) {
	p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	if !p.IsValid() || p.Port() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index[ih] == nil {
		s.index[ih] = make(map[netip.AddrPort]bool)
	}
	if !s.index[ih][p] {
		s.index[ih][p] = true
		s.peers[ih] = append(s.peers[ih], p)
	}
}

func (s *peerStore) all(ih [20]byte) []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers[ih])
}

// AddPeer is called by the node for an accepted announce_peer.
func (s *peerStore) AddPeer(ih peer_store.InfoHash, na krpc.NodeAddr) {
	addr, ok := netip.AddrFromSlice(na.IP)
	if !ok || na.Port <= 0 || na.Port > 65535 {
		return
	}
	s.add(ih, netip.AddrPortFrom(addr, uint16(na.Port)))
}

// GetPeers answers get_peers.
func (s *peerStore) GetPeers(ih peer_store.InfoHash) []krpc.NodeAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.peers[ih]
	n := min(len(all), MaxValues)
	pick := slices.Clone(all)
	for i := range n {
		j := i + s.rng.IntN(len(pick)-i)
		pick[i], pick[j] = pick[j], pick[i]
	}
	out := make([]krpc.NodeAddr, 0, n)
	for _, p := range pick[:n] {
		out = append(out, krpc.NodeAddr{IP: p.Addr().AsSlice(), Port: int(p.Port())})
	}
	return out
}
