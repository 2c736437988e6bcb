package probe

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// A fake peer: a loopback listener that runs a script on each accepted connection.

var (
	testHash  = metainfo.Hash{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	otherHash = metainfo.Hash{9, 9, 9}
	fastExt   = wire.Reserved{0, 0, 0, 0, 0, 0x10, 0, 0x05}
	extOnly   = wire.Reserved{0, 0, 0, 0, 0, 0x10, 0, 0}
	noBits    = wire.Reserved{}
)

// peerConn is the fake peer's side of one connection.
type peerConn struct {
	t    *testing.T
	c    net.Conn
	br   *bufio.Reader
	dec  *wire.Decoder
	seen []wire.Message // what btda sent, once readAll ran
}

// startPeer serves script on 127.0.0.1 and returns the address. The listener and every
// script goroutine are gone when the test ends.
func startPeer(t *testing.T, script func(p *peerConn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// Bound every script in time, whatever it does.
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				script(&peerConn{t: t, c: c, br: br, dec: wire.NewDecoder(br, 1<<20)})
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// readHandshake reads btda's handshake.
func (p *peerConn) readHandshake() wire.Handshake {
	h, err := wire.ReadHandshake(p.br, nil)
	if err != nil {
		p.t.Errorf("fake peer: reading handshake: %v", err)
	}
	return h
}

func (p *peerConn) handshake(r wire.Reserved, h metainfo.Hash, id string) {
	var pid [20]byte
	copy(pid[:], id)
	p.raw(wire.AppendHandshake(nil, wire.Handshake{Reserved: r, InfoHash: h, PeerID: pid}))
}

func (p *peerConn) raw(b []byte) {
	_, _ = p.c.Write(b) // btda may have closed already; the test checks the Observation
}

func (p *peerConn) send(m wire.Message) { p.raw(wire.AppendMessage(nil, m)) }

func (p *peerConn) ext(id uint8, payload []byte) {
	p.send(wire.Message{Type: wire.Extended, ExtendedID: id, Payload: payload})
}

func (p *peerConn) extHandshake(h wire.ExtHandshake) {
	b, err := wire.AppendExtHandshake(nil, h)
	if err != nil {
		p.t.Error(err)
	}
	p.ext(0, b)
}

// readFor collects what btda sends for d (or until it closes).
func (p *peerConn) readFor(d time.Duration) {
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	for range 1000 {
		var m wire.Message
		if err := p.dec.Next(&m); err != nil {
			return
		}
		m.Payload = append([]byte(nil), m.Payload...)
		p.seen = append(p.seen, m)
	}
}

// finish half-closes (so btda reads EOF right after the last message, with no quiet
// window to wait out) and drains what btda still sends until it closes.
func (p *peerConn) finish() {
	_ = p.c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, p.br)
}

// waitClose blocks until btda closes the connection (bounded by the script deadline).
func (p *peerConn) waitClose() {
	_, _ = io.Copy(io.Discard, p.br)
}

func bitfieldOf(n int, pieces ...int) []byte {
	s := wire.NewPieceSet(n)
	for _, i := range pieces {
		s.Set(i)
	}
	return s.Clone()
}

func have(i int) wire.Message { return wire.Message{Type: wire.Have, Index: uint32(i)} }

// testConfig has short windows so tests finish fast; nothing asserts on durations.
func testConfig() SessionConfig {
	return SessionConfig{
		Version: "test", ListenPort: 6881,
		DialTimeout: 2 * time.Second, HandshakeTimeout: 2 * time.Second,
		QuietWindow: 2 * time.Second, SessionCap: 8 * time.Second, MaxMessages: 256,
	}
}

func probeOnce(t *testing.T, cfg SessionConfig, addr netip.AddrPort, pieces int) Observation {
	t.Helper()
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.Probe(context.Background(), Target{Torrent: testHash, Pieces: pieces, Addr: addr})
}

// checkGoroutines fails the test if goroutines started during it are still running at
// its end (after a bounded grace period for ones that are just returning).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
