package probe

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe/wire"
)

// countingUTP counts the uTP connections the prober opens.
type countingUTP struct {
	UTPSocket
	dials atomic.Int32
}

func (c *countingUTP) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.dials.Add(1)
	return c.UTPSocket.DialContext(ctx, network, addr)
}

// servePeer runs script on every connection ln accepts, until the test ends.
func servePeer(t *testing.T, ln net.Listener, script func(c net.Conn)) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				script(c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// asPeer runs a peerConn script on a raw connection.
func asPeer(t *testing.T, script func(*peerConn)) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		script(&peerConn{t: t, c: c, br: br, dec: wire.NewDecoder(br, 1<<20)})
	}
}

// TestFirstContactTries counts the connections (tries) the prober opens to reach a peer on
// the first contact, by what its TCP and uTP sides do; the peer is reached over uTP in
// every case. Before the RST rule, a peer resetting every TCP connection unread (libtorrent
// with incoming TCP off, as a uTP-only qBittorrent) cost 3 tries: TCP plaintext, TCP MSE,
// uTP; now 2.
func TestFirstContactTries(t *testing.T) {
	checkGoroutines(t)
	resetAtOnce := func(c net.Conn) { // libtorrent with enable_incoming_tcp off: close on accept
		// Once our first bytes are there (so that the connect itself succeeded), close
		// with them unread: the kernel answers with an RST.
		var b [1]byte
		_, _ = c.Read(b[:])
		_ = c.(*net.TCPConn).SetLinger(0)
	}
	hangUpAfterReading := func(c net.Conn) { // reads all we send, then a FIN: refuses our handshake
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil { // whenever our first bytes come
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		_, _ = io.Copy(io.Discard, c)
	}
	cases := []struct {
		name      string
		tcp       func(net.Conn) // nil: nothing listens on TCP (connect refused)
		utp       func(*peerConn)
		hints     discovery.Hints
		tcpTries  int32
		utpTries  int32
		enc       Encryption
		fallbacks Fallbacks
	}{
		{"TCP refused: straight to uTP", nil, seedScript, 0, 1, 1, EncryptionNone, Fallbacks{ToUTP: 1}},
		{"TCP reset unread: uTP before MSE", resetAtOnce, seedScript, 0, 1, 1, EncryptionNone, Fallbacks{ToUTP: 1}},
		{"TCP handshake refused with a FIN: MSE over TCP first", hangUpAfterReading, seedScript, 0, 2, 1, EncryptionNone,
			Fallbacks{ToEncrypted: 1, ToUTP: 1}},
		{"PEX says uTP: one try", resetAtOnce, seedScript, discovery.HintUTP, 0, 1, EncryptionNone, Fallbacks{}},
		{"uTP plaintext dropped: MSE over uTP next", nil, mseOnly(true, rc4Only, seedScript), discovery.HintUTP, 0, 2,
			EncryptionRC4, Fallbacks{ToEncrypted: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tcp, srv := listenBoth(t)
			if c.tcp == nil {
				tcp.Close()
			} else {
				servePeer(t, tcp, c.tcp)
			}
			servePeer(t, srv, asPeer(t, c.utp))
			cli := &countingUTP{UTPSocket: listenUTP(t)}
			var tcpDials atomic.Int32
			var d net.Dialer
			cfg := testConfig()
			cfg.UTP, cfg.QuietWindow, cfg.HandshakeTimeout = cli, 300*time.Millisecond, 500*time.Millisecond
			cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				tcpDials.Add(1)
				return d.DialContext(ctx, network, addr)
			}
			p, err := NewProber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			o := p.Probe(context.Background(), Target{Torrent: testHash, Pieces: n, Addr: utpAddr(srv), Hints: c.hints})
			// How long the failed tries and the handshake of the last took (logged, not asserted).
			t.Logf("%d tries, handshake done after %v", tcpDials.Load()+cli.dials.Load(), o.Start.Sub(start)+o.Timings.Handshake)
			if !o.Outcome.Reached() || o.Transport != TransportUTP || o.Encryption != c.enc || o.Fallbacks != c.fallbacks {
				t.Fatalf("outcome %v (%v), transport %v, encryption %v, fallbacks %+v; want uTP, %v, %+v",
					o.Outcome, o.Err, o.Transport, o.Encryption, o.Fallbacks, c.enc, c.fallbacks)
			}
			if tcpDials.Load() != c.tcpTries || cli.dials.Load() != c.utpTries {
				t.Errorf("tries: %d TCP, %d uTP; want %d, %d", tcpDials.Load(), cli.dials.Load(), c.tcpTries, c.utpTries)
			}
		})
	}
}
