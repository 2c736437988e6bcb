package swarmtest

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/anacrolix/torrent/mse"
)

// BenchmarkReachStart measures what the reach options cost a swarm at rest: heap and
// goroutines per peer after Start, with every peer given the option (plain: none).
//
//	go test -run '^$' -bench ReachStart -benchtime 3x ./internal/swarmtest/
func BenchmarkReachStart(b *testing.B) {
	const peers = 500
	for _, c := range []struct {
		name  string
		reach ReachConfig
	}{{"plain", ReachConfig{}}, {"require_mse", ReachConfig{RequireMSE: 1}},
		{"ipv6", ReachConfig{IPv6: 1}}, {"utp_only", ReachConfig{UTPOnly: 1}}} {
		b.Run(c.name, func(b *testing.B) {
			var heap, gor float64
			for range b.N {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				g0 := runtime.NumGoroutine()
				s, err := Start(context.Background(), Config{Seed: 1, Torrents: 5, Peers: peers, Duration: time.Minute,
					Mix: map[Profile]float64{Libtorrent: 1}, Reach: c.reach, PerAddressLimit: peers}, nil)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap += float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / peers
				gor += float64(runtime.NumGoroutine()-g0) / peers
				s.Close()
			}
			b.ReportMetric(heap/float64(b.N), "heap-B/peer")
			b.ReportMetric(gor/float64(b.N), "goroutines/peer")
		})
	}
}

// BenchmarkReachRead: one op is one connection read to the truth, the way the peers' option
// needs (plaintext TCP, MSE with RC4 over TCP, uTP, TCP on [::1]), with 8 readers at once.
//
//	go test -run '^$' -bench ReachRead -benchtime 2000x ./internal/swarmtest/
func BenchmarkReachRead(b *testing.B) {
	for _, c := range []struct {
		name  string
		reach ReachConfig
	}{{"plain", ReachConfig{}}, {"require_mse", ReachConfig{RequireMSE: 1}},
		{"ipv6", ReachConfig{IPv6: 1}}, {"utp_only", ReachConfig{UTPOnly: 1}}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Start(context.Background(), Config{Seed: 1, Torrents: 5, Peers: 200, Duration: time.Minute,
				Mix: map[Profile]float64{Libtorrent: 1}, Reach: c.reach}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var sock *utp.Socket
			if c.reach.UTPOnly > 0 {
				if sock, err = utp.NewSocket("udp4", "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				defer sock.Close()
			}
			var next, fails atomic.Int64
			b.SetParallelism(4) // × GOMAXPROCS readers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := s.Peers()[int(next.Add(1))%len(s.Peers())]
					if err := benchReachRead(s, p, sock); err != nil && fails.Add(1) <= 5 {
						b.Errorf("peer %d: %v", p.Index, err)
					}
				}
			})
			b.StopTimer()
			if st := s.Stats(); c.reach.RequireMSE > 0 && st.Encrypted == 0 || c.reach.UTPOnly > 0 && st.UTPSessions == 0 {
				b.Errorf("stats %+v: the option was not exercised", st)
			}
		})
	}
}

func benchReachRead(s *Swarm, p *Peer, sock *utp.Socket) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c net.Conn
	var err error
	if p.UTPOnly {
		c, err = sock.DialContext(ctx, "udp4", p.Addr.String())
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", p.Addr.String())
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if p.RequireMSE {
		rw, _, err := mse.InitiateHandshake(c, p.Torrent.WireHash[:], nil, mse.AllSupportedCrypto)
		if err != nil {
			return err
		}
		c = &mseConn{Conn: c, rw: rw}
	}
	r, err := readerHandshake(nil, c, p.Torrent.WireHash, p.Torrent.Pieces)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		want := Progress(p, s.Elapsed())
		if r.count == want && (r.first != "" || want == 0) {
			return nil
		}
		if err := r.next(deadline); err != nil {
			return fmt.Errorf("count %d, want %d: %w", r.count, want, err)
		}
	}
}
