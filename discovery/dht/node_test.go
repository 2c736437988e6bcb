package dht

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	adht "github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/bencode"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

// failSafe only stops a broken test from hanging; no test asserts a duration.
const failSafe = 30 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func quietAnacrolix() alog.Logger {
	l := alog.NewLogger("test")
	l.SetHandlers()
	return l.WithFilterLevel(alog.Disabled)
}

// startDHT starts a plain anacrolix node on loopback whose only starting nodes are boot.
func startDHT(t *testing.T, network, listen string, boot ...netip.AddrPort) *adht.Server {
	t.Helper()
	conn, err := net.ListenPacket(network, listen)
	if err != nil {
		t.Fatal(err)
	}
	s, err := adht.NewServer(&adht.ServerConfig{
		Conn:       conn,
		NoSecurity: true,
		StartingNodes: func() ([]adht.Addr, error) {
			var addrs []adht.Addr
			for _, b := range boot {
				addrs = append(addrs, adht.NewAddr(net.UDPAddrFromAddrPort(b)))
			}
			return addrs, nil
		},
		// Not peer_store.InMemory: in v2.23.0 its GetPeers decodes the map key (the bare IP)
		// as an address, so it returns garbage.
		PeerStore:   newBoundedPeerStore(),
		Logger:      quietAnacrolix(),
		SendLimiter: rate.NewLimiter(rate.Inf, 0),
		QueryResendDelay: func() time.Duration {
			return 500 * time.Millisecond
		},
	})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func addrOf(s *adht.Server) netip.AddrPort {
	return s.Addr().(*net.UDPAddr).AddrPort()
}

// startCluster starts n loopback nodes that know each other and returns them.
func startCluster(t *testing.T, network, host string, n int) []*adht.Server {
	t.Helper()
	first := startDHT(t, network, net.JoinHostPort(host, "0"))
	nodes := []*adht.Server{first}
	for range n - 1 {
		nodes = append(nodes, startDHT(t, network, net.JoinHostPort(host, "0"), addrOf(first)))
	}
	for _, s := range nodes[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), failSafe)
		_, err := s.BootstrapContext(ctx)
		cancel()
		if err != nil {
			t.Fatalf("bootstrapping test cluster: %v", err)
		}
	}
	return nodes
}

// announce makes a fresh anacrolix node announce port for ih into the cluster and waits
// until its announce_peer queries are done. It returns the announcer's UDP address.
func announce(t *testing.T, network, host string, boot netip.AddrPort, ih metainfo.Hash, port int, implied bool) netip.AddrPort {
	t.Helper()
	p := startDHT(t, network, net.JoinHostPort(host, "0"), boot)
	a, err := p.AnnounceTraversal(ih, adht.AnnouncePeer(adht.AnnouncePeerOpts{Port: port, ImpliedPort: implied}))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range a.Peers {
	}
	select {
	case <-a.Finished():
	case <-time.After(failSafe):
		t.Fatal("announce did not finish")
	}
	return addrOf(p)
}

func newNode(t *testing.T, cfg Config, out chan<- discovery.Sighting, reg prometheus.Registerer) *Node {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = 500 * time.Millisecond
	}
	if cfg.SendRate == 0 {
		cfg.SendRate = 1000
	}
	n, err := New(cfg, out, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// runNode runs n in the background; the returned func stops it and returns Run's error.
func runNode(t *testing.T, n *Node) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(failSafe):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
}

func waitSighting(t *testing.T, out <-chan discovery.Sighting, want func(discovery.Sighting) bool) discovery.Sighting {
	t.Helper()
	timeout := time.After(failSafe)
	for {
		select {
		case s := <-out:
			if want(s) {
				return s
			}
		case <-timeout:
			t.Fatal("expected sighting never came")
		}
	}
}

func hash(b byte) metainfo.Hash {
	var h metainfo.Hash
	for i := range h {
		h[i] = b ^ byte(i*7)
	}
	return h
}

func TestFindsAnnouncedPeerAndReusesSavedNodes(t *testing.T) {
	cluster := startCluster(t, "udp4", "127.0.0.1", 5)
	boot := addrOf(cluster[0])
	ih := hash(1)
	announce(t, "udp4", "127.0.0.1", boot, ih, 6881, false)
	peer := netip.MustParseAddrPort("127.0.0.1:6881")
	before := runtime.NumGoroutine()

	nodesFile := filepath.Join(t.TempDir(), NodesFileName)
	out := make(chan discovery.Sighting, 64)
	reg := prometheus.NewPedanticRegistry()
	n := newNode(t, Config{Bootstrap: []string{boot.String()}, NodesFile: nodesFile, PeerPort: 7000}, out, reg)
	n.Add(ih)
	stop := runNode(t, n)
	s := waitSighting(t, out, func(s discovery.Sighting) bool { return s.Addr == peer })
	if s.Source != discovery.SourceDHT || s.Torrent != ih {
		t.Fatalf("sighting %+v: want source dht, torrent %v", s, ih)
	}
	// Our own announce_peer (port 7000) reached the nodes that hold the torrent.
	ourPeer := netip.MustParseAddrPort("127.0.0.1:7000")
	deadline := time.Now().Add(failSafe)
	for !clusterHasPeer(cluster, ih, ourPeer) {
		if time.Now().After(deadline) {
			t.Fatal("our announce_peer never reached the cluster")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(n.m.lastSuccess); got == 0 {
		t.Error("last success timestamp not set after a successful lookup")
	}
	if got := testutil.ToFloat64(n.m.peersReceived); got < 1 {
		t.Errorf("peers received = %v, want ≥ 1", got)
	}
	saved, err := LoadNodes(nodesFile)
	if err != nil || len(saved) == 0 {
		t.Fatalf("saved nodes: %v, %v; want some", saved, err)
	}

	// Second start: no bootstrap at all, only the saved nodes.
	n2 := newNode(t, Config{Bootstrap: nil, NodesFile: nodesFile}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	peers, err := n2.Lookup(ctx, ih)
	if err != nil {
		t.Fatalf("lookup from saved nodes: %v", err)
	}
	if !containsAddr(peers, peer) {
		t.Fatalf("lookup from saved nodes found %v, want %v among them", peers, peer)
	}

	// Control: no saved nodes and no bootstrap means nothing to ask.
	reg3 := prometheus.NewPedanticRegistry()
	n3 := newNode(t, Config{NodesFile: filepath.Join(t.TempDir(), NodesFileName)}, nil, reg3)
	if _, err := n3.Lookup(ctx, ih); !errors.Is(err, ErrNoNodes) {
		t.Fatalf("lookup without nodes: err = %v, want ErrNoNodes", err)
	}
	if got := testutil.ToFloat64(n3.m.lookupFailures.WithLabelValues(ReasonNoNodes)); got != 1 {
		t.Fatalf("no_nodes failures = %v, want 1", got)
	}
	n2.Close()
	n3.Close()
	checkGoroutines(t, before)
}

func clusterHasPeer(cluster []*adht.Server, ih metainfo.Hash, want netip.AddrPort) bool {
	for _, s := range cluster {
		for _, p := range s.PeerStore().GetPeers(peer_store.InfoHash(ih)) {
			if p.ToNodeAddrPort().AddrPort == want {
				return true
			}
		}
	}
	return false
}

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func TestIncomingAnnounceBecomesSighting(t *testing.T) {
	out := make(chan discovery.Sighting, 16)
	reg := prometheus.NewPedanticRegistry()
	n := newNode(t, Config{}, out, reg)
	watched := hash(2)
	n.Add(watched)
	stop := runNode(t, n)
	defer stop()
	self := n.Addr("ipv4")

	// A real anacrolix node announces to us: get_peers for a token, then announce_peer.
	announce(t, "udp4", "127.0.0.1", self, watched, 5555, false)
	s := waitSighting(t, out, func(s discovery.Sighting) bool { return s.Torrent == watched })
	if s.Addr != netip.MustParseAddrPort("127.0.0.1:5555") || s.Source != discovery.SourceDHT {
		t.Fatalf("sighting %+v, want 127.0.0.1:5555 from dht", s)
	}
	if got := testutil.ToFloat64(n.m.announcesRecv); got != 1 {
		t.Fatalf("announces received = %v, want 1", got)
	}
	// Our store answers get_peers for it now, so we are a useful node too. The server
	// calls our OnAnnouncePeer hook before it stores the peer, so wait for the store.
	deadline := time.Now().Add(failSafe)
	ps := n.servers[0].srv.PeerStore().GetPeers(peer_store.InfoHash(watched))
	for len(ps) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		ps = n.servers[0].srv.PeerStore().GetPeers(peer_store.InfoHash(watched))
	}
	if len(ps) != 1 {
		t.Fatalf("peer store holds %v", ps)
	}
}

func TestOnAnnouncePeer(t *testing.T) {
	watched, other := hash(3), hash(4)
	tests := []struct {
		name   string
		ih     metainfo.Hash
		ip     net.IP
		port   int
		portOk bool
		want   netip.AddrPort // zero: no sighting
	}{
		{"watched", watched, net.ParseIP("127.0.0.9"), 6881, true, netip.MustParseAddrPort("127.0.0.9:6881")},
		{"watched v4 in v6 form", watched, net.ParseIP("127.0.0.9").To16(), 1, true, netip.MustParseAddrPort("127.0.0.9:1")},
		{"watched ipv6", watched, net.ParseIP("::1"), 65535, true, netip.MustParseAddrPort("[::1]:65535")},
		{"unwatched", other, net.ParseIP("127.0.0.9"), 6881, true, netip.AddrPort{}},
		{"no port", watched, net.ParseIP("127.0.0.9"), 0, false, netip.AddrPort{}},
		{"port zero", watched, net.ParseIP("127.0.0.9"), 0, true, netip.AddrPort{}},
		{"port too big", watched, net.ParseIP("127.0.0.9"), 70000, true, netip.AddrPort{}},
		{"bad ip", watched, net.IP{1, 2, 3}, 6881, true, netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make(chan discovery.Sighting, 1)
			n := newNode(t, Config{}, out, nil)
			n.Add(watched)
			n.onAnnouncePeer([20]byte(tt.ih), tt.ip, tt.port, tt.portOk)
			// onAnnouncePeer delivers synchronously, so the channel holds the answer now.
			var got netip.AddrPort
			select {
			case s := <-out:
				got = s.Addr
			default:
			}
			if got != tt.want {
				t.Fatalf("sighting %v, want %v", got, tt.want)
			}
			wantCount := 0.0
			if tt.want.IsValid() {
				wantCount = 1
			}
			if c := testutil.ToFloat64(n.m.announcesRecv); c != wantCount {
				t.Fatalf("announces received = %v, want %v", c, wantCount)
			}
		})
	}
}

func TestRemoveStopsWatching(t *testing.T) {
	out := make(chan discovery.Sighting, 1)
	n := newNode(t, Config{}, out, nil)
	h := hash(5)
	n.Add(h)
	n.Add(h) // twice is once
	if got := testutil.ToFloat64(n.m.watched); got != 1 {
		t.Fatalf("watched = %v, want 1", got)
	}
	n.Remove(h)
	n.Remove(h)
	if got := testutil.ToFloat64(n.m.watched); got != 0 {
		t.Fatalf("watched = %v, want 0", got)
	}
	n.onAnnouncePeer([20]byte(h), net.ParseIP("127.0.0.1"), 1, true)
	if len(out) != 0 {
		t.Fatal("removed torrent still produces sightings")
	}
}

// blackhole is a loopback UDP socket that reads queries and never answers.
func blackhole(t *testing.T) (addr netip.AddrPort, got <-chan struct{}) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan struct{}, 1)
	go func() {
		b := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(b); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), ch
}

func TestLookupTimeoutCounted(t *testing.T) {
	hole, _ := blackhole(t)
	reg := prometheus.NewPedanticRegistry()
	n := newNode(t, Config{Bootstrap: []string{hole.String()}, LookupTimeout: 300 * time.Millisecond,
		QueryTimeout: 100 * time.Millisecond}, nil, reg)
	_, err := n.Lookup(context.Background(), hash(6))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if got := testutil.ToFloat64(n.m.lookupFailures.WithLabelValues(ReasonTimeout)); got != 1 {
		t.Fatalf("timeout failures = %v, want 1", got)
	}
	if got := testutil.ToFloat64(n.m.lookups); got != 1 {
		t.Fatalf("lookups = %v, want 1", got)
	}
	if got := testutil.ToFloat64(n.m.lastSuccess); got != 0 {
		t.Fatalf("last success = %v after a failed lookup", got)
	}
}

func TestShutdownDuringTraversal(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		hole, got := blackhole(t)
		out := make(chan discovery.Sighting) // never read: shutdown must not wait for it
		n := newNode(t, Config{Bootstrap: []string{hole.String()}, LookupTimeout: time.Hour,
			QueryTimeout: time.Hour, NodesFile: filepath.Join(t.TempDir(), NodesFileName)}, out, nil)
		for i := range 4 {
			n.Add(hash(byte(10 + i)))
		}
		stop := runNode(t, n)
		select {
		case <-got: // a traversal is waiting for the black hole to answer
		case <-time.After(failSafe):
			t.Fatal("no query reached the black hole")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
		if _, err := n.Lookup(context.Background(), hash(1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("lookup after close: %v, want ErrClosed", err)
		}
		if err := n.Run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("run after close: %v, want ErrClosed", err)
		}
		if got := testutil.ToFloat64(n.m.lookups); got != 0 {
			t.Fatalf("lookups cancelled by shutdown were counted: %v", got)
		}
	}()
	checkGoroutines(t, before)
}

// checkGoroutines waits for the goroutine count to come back near before. Some slack
// covers runtime and test-framework goroutines; a leak per torrent or query exceeds it.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	var now int
	for range 200 {
		now = runtime.NumGoroutine()
		if now <= before+2 {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("goroutines: %d before, %d after\n%s", before, now, buf)
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bootstrap without port", Config{Bootstrap: []string{"127.0.0.1"}}, `bootstrap node 0 "127.0.0.1"`},
		{"bootstrap port zero", Config{Bootstrap: []string{"127.0.0.1:1", "127.0.0.1:0"}}, `bootstrap node 1`},
		{"bootstrap port text", Config{Bootstrap: []string{"127.0.0.1:http"}}, `bad port "http"`},
		{"bootstrap no host", Config{Bootstrap: []string{":6881"}}, `empty host`},
		{"peer port", Config{PeerPort: 65536}, "peer port"},
		{"interval", Config{Interval: -1}, "interval"},
		{"lookup timeout", Config{LookupTimeout: -1}, "lookup timeout"},
		{"concurrency", Config{MaxConcurrentLookups: -1}, "concurrent"},
		{"listen", Config{Listen: "127.0.0.1:99999"}, "listen udp4 on 127.0.0.1:99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.cfg, nil, nil, nil)
			if err == nil {
				n.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCorruptNodesFileIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), NodesFileName)
	if err := os.WriteFile(path, []byte("not a node file"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, Config{NodesFile: path}, nil, nil)
	if len(n.saved) != 0 {
		t.Fatalf("saved = %v from a corrupt file", n.saved)
	}
	// Closing with an empty table keeps the old file rather than writing an empty one.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a node file" {
		t.Fatalf("file rewritten to %q", b)
	}
}

func TestStartingNodesOnlyFromConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), NodesFileName)
	saved := []SavedNode{
		{ID: [20]byte{1}, Addr: netip.MustParseAddrPort("127.0.0.7:1")},
		{ID: [20]byte{2}, Addr: netip.MustParseAddrPort("[::1]:2")},
	}
	if err := SaveNodes(path, saved); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, Config{NodesFile: path, Bootstrap: []string{"127.0.0.8:3", "[::1]:4"}}, nil, nil)
	var got []string
	for _, a := range n.startingNodes(n.servers[0]) {
		got = append(got, a.String())
	}
	// Saved nodes first, then bootstrap; IPv6 ones are for the IPv6 node only.
	want := []string{"127.0.0.7:1", "127.0.0.8:3"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("starting nodes %v, want %v", got, want)
	}
	empty := newNode(t, Config{}, nil, nil)
	if got := empty.startingNodes(empty.servers[0]); len(got) != 0 {
		t.Fatalf("empty config gave starting nodes %v", got)
	}
}

func TestIPv6Lookup(t *testing.T) {
	cluster := startCluster(t, "udp6", "::1", 4)
	boot := addrOf(cluster[0])
	ih := hash(20)
	announce(t, "udp6", "::1", boot, ih, 6882, false)
	reg := prometheus.NewPedanticRegistry()
	n := newNode(t, Config{IPv6: true, Listen6: "[::1]:0", Bootstrap: []string{boot.String()}}, nil, reg)
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	// The IPv4 node has nothing to start from; the lookup still succeeds through IPv6.
	peers, err := n.Lookup(ctx, ih)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("[::1]:6882"); !containsAddr(peers, want) {
		t.Fatalf("found %v, want %v among them", peers, want)
	}
	if got := testutil.ToFloat64(n.m.lookupFailures.WithLabelValues(ReasonNoNodes)); got != 0 {
		t.Fatalf("a lookup that succeeded on one family counted as no_nodes")
	}
}

func TestImpliedPortAnnounce(t *testing.T) {
	out := make(chan discovery.Sighting, 16)
	n := newNode(t, Config{}, out, nil)
	ih := hash(21)
	n.Add(ih)
	stop := runNode(t, n)
	defer stop()
	// implied_port: the announcer's UDP source port is its peer port (BEP 5).
	from := announce(t, "udp4", "127.0.0.1", n.Addr("ipv4"), ih, 0, true)
	s := waitSighting(t, out, func(s discovery.Sighting) bool { return s.Torrent == ih })
	if s.Addr != from {
		t.Fatalf("sighting %v, want the announcer's UDP address %v", s.Addr, from)
	}
}

// BenchmarkLookupLoopback measures one whole lookup (traversal plus announce_peer) against an
// 8-node loopback DHT.
func BenchmarkLookupLoopback(b *testing.B) {
	cluster := startClusterB(b, 8)
	ih := hash(30)
	n, err := New(Config{Listen: "127.0.0.1:0", Bootstrap: []string{addrOf(cluster[0]).String()},
		PeerPort: 7001, SendRate: 1e6, QueryTimeout: 500 * time.Millisecond}, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Lookup(ctx, ih); err != nil {
			b.Fatal(err)
		}
	}
}

func startClusterB(b *testing.B, size int) []*adht.Server {
	var nodes []*adht.Server
	for i := range size {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var boot []adht.Addr
		if i > 0 {
			boot = []adht.Addr{adht.NewAddr(nodes[0].Addr().(*net.UDPAddr))}
		}
		s, err := adht.NewServer(&adht.ServerConfig{Conn: conn, NoSecurity: true,
			StartingNodes: func() ([]adht.Addr, error) { return boot, nil },
			PeerStore:     newBoundedPeerStore(), Logger: quietAnacrolix(),
			SendLimiter: rate.NewLimiter(rate.Inf, 0)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		nodes = append(nodes, s)
		if i > 0 {
			if _, err := s.Bootstrap(); err != nil {
				b.Fatal(err)
			}
		}
	}
	return nodes
}

// recordingHole is a loopback UDP socket that never answers and records the info hashes of
// the get_peers queries it receives.
type recordingHole struct {
	addr netip.AddrPort
	mu   sync.Mutex
	seen []metainfo.Hash
}

func newRecordingHole(t *testing.T) *recordingHole {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &recordingHole{addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
	go func() {
		b := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(b)
			if err != nil {
				return
			}
			var m krpc.Msg
			if bencode.Unmarshal(b[:n], &m) != nil || m.Q != "get_peers" || m.A == nil {
				continue
			}
			h.mu.Lock()
			if !slices.Contains(h.seen, metainfo.Hash(m.A.InfoHash)) {
				h.seen = append(h.seen, metainfo.Hash(m.A.InfoHash))
			}
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *recordingHole) waitSeen(t *testing.T, count int) []metainfo.Hash {
	t.Helper()
	deadline := time.Now().Add(failSafe)
	for {
		h.mu.Lock()
		seen := slices.Clone(h.seen)
		h.mu.Unlock()
		if len(seen) >= count {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("saw %d looked-up torrents, want %d", len(seen), count)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaxConcurrentLookups(t *testing.T) {
	hole := newRecordingHole(t)
	before := runtime.NumGoroutine()
	n := newNode(t, Config{Bootstrap: []string{hole.addr.String()}, MaxConcurrentLookups: 2,
		LookupTimeout: time.Hour, QueryTimeout: time.Hour}, nil, nil)
	for i := range 5 {
		n.Add(hash(byte(40 + i)))
	}
	stop := runNode(t, n)
	// The hole never answers, so the first two lookups hold both slots.
	first := hole.waitSeen(t, 2)
	if got := testutil.ToFloat64(n.m.inFlight); got != 2 {
		t.Fatalf("lookups in flight = %v, want 2", got)
	}
	if len(first) != 2 {
		t.Fatalf("%d torrents looked up at once, want 2", len(first))
	}
	// Removing them cancels their lookups and frees the slots for the next two.
	n.Remove(first[0])
	n.Remove(first[1])
	next := hole.waitSeen(t, 4)
	if len(next) != 4 {
		t.Fatalf("%d torrents looked up, want 4", len(next))
	}
	if got := testutil.ToFloat64(n.m.inFlight); got > 2 {
		t.Fatalf("lookups in flight = %v, want ≤ 2", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, before)
}

func TestSamePortBothFamilies(t *testing.T) {
	// The production default puts both nodes on port 17000; udp6 sockets are v6-only in Go,
	// so the two do not collide. Use a free port to stay independent of the machine.
	c, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	n, err := New(Config{Listen: net.JoinHostPort("0.0.0.0", strconv.Itoa(port)), IPv6: true,
		Listen6: net.JoinHostPort("::", strconv.Itoa(port))}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Addr("ipv4").Port() != uint16(port) || n.Addr("ipv6").Port() != uint16(port) {
		t.Fatalf("addresses %v and %v, want port %d on both", n.Addr("ipv4"), n.Addr("ipv6"), port)
	}
	if n.Addr("nonsense").IsValid() {
		t.Fatal("unknown family has an address")
	}
}

func TestDefaultBootstrapIsACopy(t *testing.T) {
	if len(DefaultBootstrap) == 0 || &DefaultBootstrap[0] == &adht.DefaultGlobalBootstrapHostPorts[0] {
		t.Fatal("DefaultBootstrap must be a non-empty copy of anacrolix's list")
	}
	for _, hp := range DefaultBootstrap {
		if _, _, err := splitHostPort(hp); err != nil {
			t.Errorf("default bootstrap %q: %v", hp, err)
		}
	}
}

func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"127.0.0.1:6881", "[::1]:1", "router.example:0", ":1", "x", "[::1", "a:65536", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := splitHostPort(s)
		if err != nil {
			return
		}
		if host == "" || port == 0 {
			t.Fatalf("%q accepted as host %q port %d", s, host, port)
		}
	})
}
