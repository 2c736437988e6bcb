package swarmtest

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A peer with DialFrom connects from that address, tells no `p`, and with FixedPeerID uses
// one peer_id for every connection.
func TestDialFromAndFixedPeerID(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	from := netip.MustParseAddr("127.77.0.250")
	s := startTestSwarm(t, Config{Seed: 2, Peers: 1, Mix: map[Profile]float64{Transmission: 1},
		DialOut: l.Addr().String(), DialOutFraction: 1, Redial: 10 * time.Millisecond,
		PeerFunc: func(p *Peer) { p.DialFrom, p.FixedPeerID = from, true }})
	p := s.Peers()[0]
	var ids []string
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got != from {
			t.Fatalf("connection from %s, want %s", got, from)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		hs := make([]byte, 68)
		if _, err := io.ReadFull(c, hs); err != nil { // the dialling peer's handshake
			t.Fatal(err)
		}
		ids = append(ids, string(hs[48:68]))
		copy(hs[48:], "-RD0001-abcdefghijkl")
		hs[25], hs[27] = 0x10, 0x04
		if _, err := c.Write(hs); err != nil {
			t.Fatal(err)
		}
		r := &testReader{t: t, conn: c, npieces: p.Torrent.Pieces, have: make([]bool, p.Torrent.Pieces)}
		r.readUntil(func() bool { return r.ext != nil }, "extension handshake")
		if _, ok := r.ext["p"]; ok {
			t.Errorf("a peer dialling from another address sent p=%v", r.ext["p"])
		}
		c.Close()
	}
	if ids[0] != ids[1] {
		t.Errorf("peer_ids %q and %q differ with FixedPeerID", ids[0], ids[1])
	}
}

// A peer whose curve leaves closes its connections and accepts none afterwards.
func TestLeaveAt(t *testing.T) {
	clk := NewManualClock(t0)
	s := startTestSwarm(t, Config{Seed: 3, Peers: 1, Mix: map[Profile]float64{Libtorrent: 1}, Clock: clk,
		CurveFunc: func(p *Peer) (Curve, bool) {
			return Curve{Start: 1, Interval: time.Hour, LeaveAt: 500 * time.Millisecond}, true
		}})
	p := s.Peers()[0]
	c, err := net.DialTimeout("tcp4", p.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	hs := make([]byte, 68)
	hs[0] = 19
	copy(hs[1:], "BitTorrent protocol")
	copy(hs[28:], p.Torrent.WireHash[:])
	copy(hs[48:], "-RD0001-abcdefghijkl")
	if _, err := c.Write(hs); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, hs); err != nil { // the peer's handshake: the session runs
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := io.Copy(io.Discard, c); err != nil { // until the peer leaves and closes
		t.Fatalf("the connection did not end cleanly: %v", err)
	}
	c2, err := net.DialTimeout("tcp4", p.Addr.String(), 5*time.Second)
	if err != nil {
		return // refusing is leaving too
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(10 * time.Second))
	if n, _ := io.Copy(io.Discard, c2); n != 0 {
		t.Errorf("the peer that left sent %d bytes on a new connection", n)
	}
}
