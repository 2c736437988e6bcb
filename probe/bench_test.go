package probe

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
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
// connect, write 68 bytes, read the reply until EOF, close, against the same peer. The two
// alternate in rounds within one run, so load from elsewhere on the machine hits both
// alike. b.N counts probes; as many raw exchanges run beside them.
func BenchmarkLoopback(b *testing.B) {
	reply := wire.AppendHandshake(nil, wire.Handshake{Reserved: wire.Reserved{7: 0x04}, InfoHash: testHash, PeerID: pid("-LT20A0-abcdefghijkl")})
	reply = wire.AppendMessage(reply, wire.Message{Type: wire.HaveAll})
	addr := benchPeer(b, reply)
	hs := wire.AppendHandshake(nil, wire.Handshake{InfoHash: testHash})
	p, err := NewProber(SessionConfig{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	target := Target{Torrent: testHash, Pieces: 1000, Addr: addr}
	const workers = 64

	raw := func() bool {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialTCP(context.Background(), "tcp", netip.AddrPort{}, addr)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(hs); err != nil {
			return false
		}
		var buf [256]byte
		n, _ := readAll(c, buf[:])
		return n == len(reply) // the reply, then EOF: the peer closes first, as a probe sees it
	}
	probe := func() bool {
		o := p.Probe(context.Background(), target)
		return o.Outcome == OutcomeOK && o.Flags.Seed
	}
	// phase runs n exchanges on the worker pool and returns the time, heap allocations
	// (of the whole process: our side and the peer's) and failures.
	phase := func(n int, fn func() bool) (time.Duration, uint64, int64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if !fn() {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		runtime.ReadMemStats(&ms)
		return el, ms.Mallocs - before, failed.Load()
	}

	var rawT, probeT time.Duration
	var rawA, probeA uint64
	var rawF, probeF int64
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(2000, b.N-done)
		t, a, f := phase(n, raw)
		rawT, rawA, rawF = rawT+t, rawA+a, rawF+f
		t, a, f = phase(n, probe)
		probeT, probeA, probeF = probeT+t, probeA+a, probeF+f
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/probeT.Seconds(), "probes/s")
	b.ReportMetric(float64(b.N)/rawT.Seconds(), "raw_conns/s")
	b.ReportMetric(rawT.Seconds()/probeT.Seconds(), "probe/raw")
	b.ReportMetric(float64(probeA)/float64(b.N), "allocs/probe")
	b.ReportMetric(float64(rawA)/float64(b.N), "allocs/raw")
	b.ReportMetric(float64(probeF+rawF), "failed")
}

// BenchmarkSessionMessages runs the session logic (no sockets) over a peer that sends a
// bitfield and 250 haves: allocations per session must not grow with the message count.
func BenchmarkSessionMessages(b *testing.B) {
	hs := wire.Handshake{Reserved: fastExt, InfoHash: testHash, PeerID: pid("-LT20A0-abcdefghijkl")}
	script := wire.AppendHandshake(nil, hs)
	script = wire.AppendMessage(script, wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(1000, 1, 2, 3)})
	for i := range 250 {
		script = wire.AppendMessage(script, have(i*3))
	}
	p, err := NewProber(SessionConfig{MaxMessages: 1000})
	if err != nil {
		b.Fatal(err)
	}
	conn := &memConn{}
	b.ReportAllocs()
	b.SetBytes(int64(len(script)))
	for b.Loop() {
		conn.r = bytes.NewReader(script)
		o := Observation{Torrent: testHash, NumPieces: 1000, Direction: Outgoing, CompleteAgo: -1}
		p.run(context.Background(), conn, &o, nil)
		if o.Outcome != OutcomeOK || o.Messages != 251 {
			b.Fatalf("%v %d", o.Outcome, o.Messages)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*251), "ns/message")
}
