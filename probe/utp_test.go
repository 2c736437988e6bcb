package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

func listenUTP(t *testing.T) UTPSocket {
	t.Helper()
	s, err := ListenUTP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// listenBoth opens a TCP listener and a uTP socket on one loopback port number, as the
// daemon runs them. A port free for one protocol may be taken for the other (the test's own
// connections use ephemeral TCP ports), so it tries a few ports.
func listenBoth(t *testing.T) (net.Listener, UTPSocket) {
	t.Helper()
	var last error
	for range 20 {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s, err := ListenUTP(tcp.Addr().String())
		if err == nil {
			t.Cleanup(func() { s.Close(); tcp.Close() })
			return tcp, s
		}
		tcp.Close()
		last = err
	}
	t.Fatalf("no loopback port free for both TCP and uTP: %v", last)
	return nil, nil
}

func utpAddr(s UTPSocket) netip.AddrPort {
	return s.Addr().(*net.UDPAddr).AddrPort()
}

// TestUTPBothWays: btda's prober reaches btda's listener over uTP only (nothing listens on
// TCP at that port), falling back from a refused TCP connect, with MSE required; the
// listener serves TCP and uTP with one set of caps.
func TestUTPBothWays(t *testing.T) {
	checkGoroutines(t)
	p, err := NewProber(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	obs := make(chan Observation, 10)
	l, err := NewListener(p, ListenerConfig{
		Lookup:     func(h metainfo.Hash) (int, bool) { return n, h == testHash },
		Deliver:    func(o Observation) { obs <- o },
		InfoHashes: func() []metainfo.Hash { return []metainfo.Hash{testHash} },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := listenUTP(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, srv) }()

	cli := listenUTP(t)
	for _, c := range []struct {
		name      string
		policy    EncryptionPolicy
		hints     discovery.Hints
		enc       Encryption
		fallbacks Fallbacks
	}{
		{"TCP refused, then uTP", "", 0, EncryptionNone, Fallbacks{ToUTP: 1}},
		{"PEX says uTP", "", discovery.HintUTP, EncryptionNone, Fallbacks{}},
		{"uTP with MSE required", RequireEncrypted, discovery.HintUTP, EncryptionHeader, Fallbacks{}},
	} {
		cfg := testConfig()
		cfg.UTP, cfg.Encryption, cfg.QuietWindow = cli, c.policy, 300*time.Millisecond
		cfg.PeerID = pid("-DA0001-utpclient123")
		pr, err := NewProber(cfg)
		if err != nil {
			t.Fatal(err)
		}
		o := pr.Probe(context.Background(), Target{Torrent: testHash, Pieces: n, Addr: utpAddr(srv), Hints: c.hints})
		if !o.Outcome.Reached() || o.Transport != TransportUTP || o.Encryption != c.enc || o.Fallbacks != c.fallbacks {
			t.Fatalf("%s: outcome %v (%v), transport %v, encryption %v, fallbacks %+v", c.name, o.Outcome, o.Err, o.Transport, o.Encryption, o.Fallbacks)
		}
		if o.Hints()&discovery.HintUTP == 0 {
			t.Errorf("%s: Hints() lacks uTP", c.name)
		}
		in := <-obs
		if in.Transport != TransportUTP || in.Encryption != c.enc || in.Client.PeerID != cfg.PeerID {
			t.Fatalf("%s: incoming side: transport %v, encryption %v", c.name, in.Transport, in.Encryption)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if st := l.Stats(); st.UTP != 3 || st.Sessions != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUTPSocketCloseLeavesNoGoroutines opens, uses and closes uTP sockets and checks that
// their goroutines are gone.
func TestUTPSocketCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		a, err := ListenUTP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b, err := ListenUTP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := a.Accept(); err == nil {
				_, _ = c.Write([]byte("hi"))
				c.Close()
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := b.DialContext(ctx, "udp", a.Addr().String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var buf [2]byte
		_, _ = c.Read(buf[:])
		c.Close()
		a.Close()
		b.Close()
	}
	deadline := time.Now().Add(5 * time.Second) // liveness bound, not a speed check
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after closing the sockets:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestListenUTPAllBothFamilies: with a listen address of each family (peer.source_addresses
// 127.0.0.1 and ::1), the uTP socket reaches and accepts peers of both. With one socket on
// the first address, every uTP-only IPv6 peer of TestEndToEndReach stayed unreachable.
func TestListenUTPAllBothFamilies(t *testing.T) {
	before := runtime.NumGoroutine()
	m, err := ListenUTPAll([]string{"127.0.0.1:0", "[::1]:0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1:0", "[::1]:0"} {
		peer, err := ListenUTP(host)
		if err != nil {
			t.Fatal(err)
		}
		// Outgoing: from the socket of the peer's family.
		var wg sync.WaitGroup
		wg.Go(func() {
			if c, err := peer.Accept(); err == nil {
				_, _ = c.Write([]byte("hi"))
				c.Close()
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := m.DialContext(ctx, "udp", peer.Addr().String())
		cancel()
		if err != nil {
			t.Fatalf("dial %s: %v", peer.Addr(), err)
		}
		var buf [2]byte
		if _, err := c.Read(buf[:]); err != nil || string(buf[:]) != "hi" {
			t.Errorf("read from %s: %q, %v", peer.Addr(), buf, err)
		}
		if la := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr(); la.Is4() != utpAddr(peer).Addr().Is4() {
			t.Errorf("dialled %s from %s", peer.Addr(), la)
		}
		c.Close()
		// Incoming: the peer dials the merged socket's address of its family.
		var target string
		for _, s := range m.(*multiUTP).socks {
			if utpAddr(s).Addr().Is4() == utpAddr(peer).Addr().Is4() {
				target = s.Addr().String()
			}
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if c, err := peer.DialContext(ctx, "udp", target); err == nil {
				_, _ = c.Write([]byte("yo"))
				c.Close()
			}
		})
		in, err := m.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if !isUTP(in) || remoteAddr(in).Addr().Is4() != utpAddr(peer).Addr().Is4() {
			t.Errorf("accepted %T from %s for a peer on %s", in, in.RemoteAddr(), peer.Addr())
		}
		in.Close()
		wg.Wait()
		peer.Close()
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	if _, err := m.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second) // liveness bound, not a speed check
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
