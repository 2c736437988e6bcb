package probe

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

var hashB = metainfo.Hash{0xBB}

// testListener runs a Listener on 127.0.0.1 and returns its address, the channel of
// delivered observations, and a stop function that cancels Serve and waits for it.
func testListener(t *testing.T, cfg SessionConfig, lc ListenerConfig) (*Listener, netip.AddrPort, chan Observation, func()) {
	t.Helper()
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	obs := make(chan Observation, 100)
	lc.Lookup = func(h metainfo.Hash) (int, bool) {
		switch h {
		case testHash:
			return n, true
		case hashB:
			return 9, true
		}
		return 0, false
	}
	lc.Deliver = func(o Observation) { obs <- o }
	l, err := NewListener(p, lc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(20 * time.Second): // liveness bound, not a performance check
				t.Fatal("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return l, ln.Addr().(*net.TCPAddr).AddrPort(), obs, stop
}

// dialFrom connects to addr from a chosen loopback source address.
func dialFrom(t *testing.T, addr netip.AddrPort, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func sendHandshake(t *testing.T, c net.Conn, h metainfo.Hash, r wire.Reserved) {
	t.Helper()
	if _, err := c.Write(wire.AppendHandshake(nil, wire.Handshake{Reserved: r, InfoHash: h, PeerID: pid("-TR4060-abcdefghijkl")})); err != nil {
		t.Fatal(err)
	}
}

// closedAtOnce reports whether the listener closed c without sending anything.
func closedAtOnce(t *testing.T, c net.Conn) bool {
	t.Helper()
	var b [1]byte
	_, err := c.Read(b[:])
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func TestListenerRouting(t *testing.T) {
	checkGoroutines(t)
	l, addr, obs, stop := testListener(t, testConfig(), ListenerConfig{})

	c := dialFrom(t, addr, "127.0.0.1")
	sendHandshake(t, c, hashB, fastExt)
	br := bufio.NewReader(c)
	hs, err := wire.ReadHandshake(br, nil)
	if err != nil || metainfo.Hash(hs.InfoHash) != hashB || hs.Reserved != wire.OurReserved {
		t.Fatalf("our handshake: %+v %v", hs, err)
	}
	ext, _ := wire.AppendExtHandshake(nil, wire.ExtHandshake{P: 51413, V: "Transmission 4.0.6", Reqq: -1, MetadataSize: -1, CompleteAgo: -1})
	var out []byte
	out = wire.AppendMessage(out, wire.Message{Type: wire.Extended, Payload: ext})
	out = wire.AppendMessage(out, wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(9, 0, 8)})
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, br)

	o := <-obs
	want(t, o, OutcomeOK, true, 2)
	if o.Torrent != hashB || o.NumPieces != 9 || o.Direction != Incoming || o.Source != discovery.SourceIncoming ||
		o.ListenPort != 51413 || o.Addr.Addr() != netip.MustParseAddr("127.0.0.1") || o.Client.Family != "Transmission" {
		t.Fatalf("observation %+v", o)
	}

	// A second peer for the other torrent, without `p`: the listen port stays unknown.
	c2 := dialFrom(t, addr, "127.0.0.2")
	sendHandshake(t, c2, testHash, fastExt)
	if _, err := c2.Write(wire.AppendMessage(nil, wire.Message{Type: wire.HaveAll})); err != nil {
		t.Fatal(err)
	}
	_ = c2.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c2)
	o = <-obs
	want(t, o, OutcomeOK, true, n)
	if o.Torrent != testHash || o.ListenPort != 0 || o.Addr.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("observation %+v", o)
	}
	stop()
	if s := l.Stats(); s.Accepted != 2 || s.Sessions != 2 || s.UnknownInfoHash != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestListenerRejects(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig()
	cfg.QuietWindow, cfg.SessionCap = 20*time.Second, 30*time.Second // held sessions stay open
	l, addr, obs, stop := testListener(t, cfg, ListenerConfig{MaxPerIP: 2, MaxTotal: 3, HandshakeTimeout: time.Second, ShutdownTimeout: 100 * time.Millisecond})

	// An unknown info hash is closed at once, before any reply.
	c := dialFrom(t, addr, "127.0.0.1")
	sendHandshake(t, c, otherHash, fastExt)
	if !closedAtOnce(t, c) {
		t.Fatal("unknown info hash got an answer")
	}
	// Garbage, and a handshake that never comes.
	g := dialFrom(t, addr, "127.0.0.1")
	_, _ = g.Write([]byte("\x13BitTorrent protocoX and then some more bytes"))
	if !closedAtOnce(t, g) {
		t.Fatal("garbage got an answer")
	}
	s := dialFrom(t, addr, "127.0.0.1")
	if !closedAtOnce(t, s) { // after HandshakeTimeout
		t.Fatal("silent connection got an answer")
	}

	// Two held sessions from 127.0.0.1 fill its per-IP cap; a third is closed at once.
	hold := func(from string) net.Conn {
		c := dialFrom(t, addr, from)
		sendHandshake(t, c, testHash, noBits)
		if _, err := wire.ReadHandshake(c, nil); err != nil {
			t.Fatalf("held session from %s: %v", from, err)
		}
		return c
	}
	hold("127.0.0.1")
	hold("127.0.0.1")
	third := dialFrom(t, addr, "127.0.0.1")
	sendHandshake(t, third, testHash, noBits)
	if !closedAtOnce(t, third) {
		t.Fatal("per-IP cap not enforced")
	}
	// Another IP still gets in, up to the total cap of 3; then everyone is turned away.
	hold("127.0.0.2")
	fourth := dialFrom(t, addr, "127.0.0.3")
	sendHandshake(t, fourth, testHash, noBits)
	if !closedAtOnce(t, fourth) {
		t.Fatal("total cap not enforced")
	}

	// Shutdown with three sessions open: Serve ends them and returns.
	stop()
	st := l.Stats()
	if st.UnknownInfoHash != 1 || st.NotBitTorrent != 1 || st.HandshakeFailed != 1 || st.OverPerIPCap != 1 || st.OverTotalCap != 1 || st.Sessions != 3 {
		t.Fatalf("stats %+v", st)
	}
	for range 3 {
		o := <-obs
		if o.Outcome != OutcomeLocalError || o.Known {
			t.Errorf("session ended by shutdown: %v known %v", o.Outcome, o.Known)
		}
	}
	select {
	case o := <-obs:
		t.Fatalf("unexpected observation %+v", o)
	default:
	}
}

func TestListenerRequiresCallbacks(t *testing.T) {
	p, err := NewProber(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewListener(p, ListenerConfig{}); err == nil {
		t.Fatal("no Lookup/Deliver accepted")
	}
}
