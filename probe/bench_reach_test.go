package probe

import (
	"context"
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

// reachPeer serves ln like benchPeer: per connection, the incoming sniff (plaintext, or an
// MSE handshake keyed with testHash, exactly as btda's listener does it), then the 68-byte
// handshake, the reply, and close.
func reachPeer(b *testing.B, ln net.Listener, reply []byte) {
	keys := func() []metainfo.Hash { return []metainfo.Hash{testHash} }
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
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				sr, err := acceptStream(c, keys)
				if err != nil {
					return
				}
				var hs [wire.HandshakeLen]byte
				if _, err := io.ReadFull(sr.conn, hs[:]); err != nil {
					return
				}
				_, _ = sr.conn.Write(reply)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); wg.Wait() })
}

// BenchmarkReach is the cost of one contact (dial, handshakes, a have_all, close) by
// transport and encryption, one contact at a time: plaintext TCP, MSE over TCP (the
// initiator's and the receiver's Diffie-Hellman and RC4 setup), and plaintext uTP. Run the
// sub-benchmarks in one `go test -bench` for the ratios (see BENCHMARKS.md).
func BenchmarkReach(b *testing.B) {
	reply := wire.AppendHandshake(nil, wire.Handshake{Reserved: wire.Reserved{7: 0x04}, InfoHash: testHash, PeerID: pid("-LT20A0-abcdefghijkl")})
	reply = wire.AppendMessage(reply, wire.Message{Type: wire.HaveAll})
	for _, c := range []struct {
		name   string
		utp    bool
		policy EncryptionPolicy
	}{{"tcp_plaintext", false, DisableEncrypted}, {"tcp_mse", false, RequireEncrypted}, {"utp_plaintext", true, DisableEncrypted}, {"utp_mse", true, RequireEncrypted}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := SessionConfig{Version: "bench", Encryption: c.policy}
			var addr netip.AddrPort
			if c.utp {
				srv, err := ListenUTP("127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				reachPeer(b, srv, reply)
				cli, err := ListenUTP("127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cli.Close() })
				cfg.UTP = cli
				addr = utpAddr(srv)
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				reachPeer(b, ln, reply)
				addr = ln.Addr().(*net.TCPAddr).AddrPort()
			}
			p, err := NewProber(cfg)
			if err != nil {
				b.Fatal(err)
			}
			hints := Target{Torrent: testHash, Pieces: 1000, Addr: addr}
			if c.utp {
				hints.Hints = discovery.HintUTP // straight to uTP
			}
			b.ResetTimer()
			for range b.N {
				o := p.Probe(context.Background(), hints)
				if o.Outcome != OutcomeOK || !o.Flags.Seed {
					b.Fatalf("outcome %v (%v)", o.Outcome, o.Err)
				}
			}
		})
	}
}
