package probe

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btda/btda/probe/wire"
)

// benchPeer is a loopback peer that, for every connection, reads the 68-byte handshake,
// answers with reply and closes. It is the same exchange for the raw-TCP ceiling and for
// probes, so the two rates compare directly.
func benchPeer(b *testing.B, reply []byte) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
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
				var hs [wire.HandshakeLen]byte
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, hs[:]); err != nil {
					return
				}
				_, _ = c.Write(reply)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func readAll(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// BenchmarkLoopback compares completed probes per second with the ceiling: bare TCP
// connect, write 68 bytes, read the reply until EOF, close, against the same peer.
func BenchmarkLoopback(b *testing.B) {
	reply := wire.AppendHandshake(nil, wire.Handshake{Reserved: wire.Reserved{7: 0x04}, InfoHash: testHash, PeerID: pid("-LT20A0-abcdefghijkl")})
	reply = wire.AppendMessage(reply, wire.Message{Type: wire.HaveAll})
	const parallelism = 32 // goroutines per GOMAXPROCS

	b.Run("raw_tcp", func(b *testing.B) {
		addr := benchPeer(b, reply)
		hs := wire.AppendHandshake(nil, wire.Handshake{InfoHash: testHash})
		var failed atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 256)
			d := net.Dialer{Timeout: 5 * time.Second}
			for pb.Next() {
				c, err := d.Dial("tcp", addr.String())
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(hs); err != nil {
					failed.Add(1)
				} else if n, _ := readAll(c, buf); n != len(reply) {
					failed.Add(1) // the reply, then EOF: the peer closes first, like a probe sees it
				}
				c.Close()
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
		b.ReportMetric(float64(failed.Load()), "failed")
	})

	b.Run("probe", func(b *testing.B) {
		addr := benchPeer(b, reply)
		cfg := SessionConfig{Version: "bench"}
		p, err := NewProber(cfg)
		if err != nil {
			b.Fatal(err)
		}
		t := Target{Torrent: testHash, Pieces: 1000, Addr: addr}
		var failed atomic.Int64
		var lastBad atomic.Value
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o := p.Probe(context.Background(), t)
				if o.Outcome != OutcomeOK || !o.Flags.Seed {
					failed.Add(1)
					lastBad.Store(o.Outcome.String())
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "probes/s")
		b.ReportMetric(float64(failed.Load()), "failed")
		if bad := lastBad.Load(); bad != nil {
			b.Logf("%d of %d probes failed, last outcome %v", failed.Load(), b.N, bad)
		}
	})
}
