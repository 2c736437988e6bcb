package swarmdht

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	"golang.org/x/time/rate"
)

// checkGoroutines fails the test if goroutines started during it outlive it. anacrolix/dht
// lets some goroutines finish after Server.Close, so it waits for them (bounded).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func startCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	checkGoroutines(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// freshNode is a client node, as btda would run, bootstrapped only from the cluster.
func freshNode(t testing.TB, c *Cluster) *dht.Server {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := dht.NewDefaultServerConfig()
	cfg.Conn = pc
	cfg.NoSecurity = true
	boot := c.Addrs()
	cfg.StartingNodes = func() ([]dht.Addr, error) {
		var out []dht.Addr
		for _, a := range boot {
			out = append(out, dht.NewAddr(net.UDPAddrFromAddrPort(a)))
		}
		return out, nil
	}
	cfg.SendLimiter = rate.NewLimiter(rate.Inf, 0)
	// Short resends keep the "stopped cluster" case quick; they change no outcome.
	cfg.QueryResendDelay = func() time.Duration { return 100 * time.Millisecond }
	s, err := dht.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); pc.Close() })
	return s
}

// lookup runs a get_peers traversal (no announce, no scrape) and returns the peers found.
func lookup(t testing.TB, s *dht.Server, ih [20]byte) (peers []netip.AddrPort, responders int) {
	t.Helper()
	a, err := s.AnnounceTraversal(ih)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	seen := map[netip.AddrPort]bool{}
	for {
		select {
		case pv, ok := <-a.Peers:
			if !ok {
				slices.SortFunc(peers, netip.AddrPort.Compare)
				return peers, responders
			}
			responders++
			for _, p := range pv.Peers {
				ap := p.ToNodeAddrPort().AddrPort
				ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
				if !seen[ap] {
					seen[ap] = true
					peers = append(peers, ap)
				}
			}
		case <-timeout.C:
			t.Fatal("traversal did not end within 30 s")
		}
	}
}

func TestStartingNodesAreClusterOnly(t *testing.T) {
	c := startCluster(t, 4)
	for i, cfg := range c.configs {
		got, err := cfg.StartingNodes()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Errorf("node %d: %d starting nodes, want 3", i, len(got))
		}
		for _, a := range got {
			ap := a.KRPC().ToNodeAddrPort().AddrPort
			if !ap.Addr().Unmap().IsLoopback() || !slices.Contains(c.Addrs(), netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())) || ap == c.addrs[i] {
				t.Errorf("node %d: starting node %v is not another cluster node", i, ap)
			}
		}
		if !cfg.NoSecurity || cfg.PeerStore == nil {
			t.Errorf("node %d: NoSecurity %v PeerStore %v", i, cfg.NoSecurity, cfg.PeerStore)
		}
	}
	for i, n := range c.NumNodes() {
		if n != 3 {
			t.Errorf("node %d knows %d nodes after bootstrap, want 3", i, n)
		}
	}
}

func TestFreshNodeFindsAnnouncedPeers(t *testing.T) {
	c := startCluster(t, 8)
	ih := [20]byte{1, 2, 3}
	other := [20]byte{9}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:6000"),
		netip.MustParseAddrPort("127.0.0.1:6001"), // same IP, other port: kept apart
		netip.MustParseAddrPort("127.3.4.5:6881"),
	}
	c.Announce(ih, want)
	c.Announce(other, []netip.AddrPort{netip.MustParseAddrPort("127.9.9.9:1")})
	s := freshNode(t, c)
	got, responders := lookup(t, s, ih)
	if !slices.Equal(got, want) {
		t.Errorf("found %v, want %v", got, want)
	}
	if responders == 0 {
		t.Error("no node answered get_peers")
	}
	if !slices.Equal(c.Peers(ih), want) {
		t.Errorf("Peers %v", c.Peers(ih))
	}
}

func TestDistinctIPs(t *testing.T) {
	checkGoroutines(t)
	c, err := StartConfig(t.Context(), Config{Nodes: 4, DistinctIPs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for i, a := range c.Addrs() {
		if want := netip.AddrFrom4([4]byte{127, 100, byte(i), 1}); a.Addr() != want {
			t.Errorf("node %d on %v, want %v", i, a, want)
		}
	}
	ih := [20]byte{0xd1}
	c.Announce(ih, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.5:5")})
	if got, _ := lookup(t, freshNode(t, c), ih); len(got) != 1 {
		t.Errorf("found %v", got)
	}
}

func TestRepliesCapValues(t *testing.T) {
	c := startCluster(t, 1)
	var many []netip.AddrPort
	for i := range 300 {
		many = append(many, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 7, byte(i / 200), byte(i%200 + 1)}), 7000))
	}
	ih := [20]byte{7}
	c.Announce(ih, many)
	if n := len(c.stores[0].GetPeers(ih)); n != MaxValues {
		t.Errorf("get_peers values: %d, want %d", n, MaxValues)
	}
	if n := len(c.Peers(ih)); n != 300 {
		t.Errorf("stored %d peers, want 300", n)
	}
}

func TestAnnouncePeerReachesCluster(t *testing.T) {
	c := startCluster(t, 5)
	ih := [20]byte{0xab}
	a := freshNode(t, c)
	// A real announce_peer traversal, as btda's DHT source does for its own listen port.
	ann, err := a.AnnounceTraversal(ih, dht.AnnouncePeer(dht.AnnouncePeerOpts{Port: 6999}))
	if err != nil {
		t.Fatal(err)
	}
	for range ann.Peers { // drain until the traversal and its announces end
	}
	ann.Close()
	recs := c.AnnouncePeers()
	if len(recs) == 0 {
		t.Fatal("no announce_peer received")
	}
	for _, r := range recs {
		if r.InfoHash != ih || r.Peer != netip.MustParseAddrPort("127.0.0.1:6999") || !r.PortOK {
			t.Errorf("announce_peer record %+v", r)
		}
	}
	// The peer store update runs in its own goroutine in anacrolix/dht: wait for it (bounded).
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6999")}
	for i := 0; i < 200 && !slices.Equal(c.Peers(ih), want); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	b := freshNode(t, c)
	if got, _ := lookup(t, b, ih); !slices.Equal(got, want) {
		t.Errorf("second client found %v, want %v", got, want)
	}
}

func TestStopSilencesAndResumeRestores(t *testing.T) {
	c := startCluster(t, 4)
	ih := [20]byte{0x55}
	c.Announce(ih, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.9:9")})
	c.Stop()
	s := freshNode(t, c)
	if got, responders := lookup(t, s, ih); len(got) != 0 || responders != 0 {
		t.Errorf("stopped cluster answered: %v from %d nodes", got, responders)
	}
	c.Resume()
	if got, _ := lookup(t, freshNode(t, c), ih); len(got) != 1 {
		t.Errorf("resumed cluster: found %v", got)
	}
}

func TestStartRejectsBadSize(t *testing.T) {
	for _, n := range []int{0, -1, MaxNodes + 1} {
		if _, err := Start(t.Context(), n, nil); err == nil {
			t.Errorf("Start with %d nodes succeeded", n)
		}
	}
}
