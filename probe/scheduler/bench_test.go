package scheduler

import (
	"context"
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

func TestEntrySize(t *testing.T) {
	// The table is the bulk of the memory per peer; keep an eye on growth.
	if n := unsafe.Sizeof(entry{}); n > 56 {
		t.Errorf("entry is %d bytes, want at most 56", n)
	}
}

// peerAddr gives peer i a distinct IPv4 address (so no per-IP deferral) and a port.
func peerAddr(i int) netip.AddrPort {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 0x0a000000+uint32(i))
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(6881+i%7))
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkKnownPeers1M builds a table of 1,000,000 known peers over 100 torrents and
// reports the heap it takes. Run with -benchtime=1x.
func BenchmarkKnownPeers1M(b *testing.B) {
	const peers, torrents = 1_000_000, 100
	for b.Loop() {
		before := heapInUse()
		s, err := New(Config{Clock: newFakeClock(), Probe: func(context.Context, Target) probe.Observation { return probe.Observation{} }})
		if err != nil {
			b.Fatal(err)
		}
		for i := range torrents {
			if err := s.AddTorrent(hash(i), 1000); err != nil {
				b.Fatal(err)
			}
		}
		for i := range peers {
			s.Add(discovery.Sighting{Torrent: hash(i % torrents), Addr: peerAddr(i), Source: discovery.SourceDHT})
		}
		after := heapInUse()
		start := time.Now()
		st := s.Stats() // every peer is due: the worst case for the due count
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "stats-ms")
		if st.Known != peers || st.Due != peers {
			b.Fatalf("known %d, due %d, want %d", st.Known, st.Due, peers)
		}
		used := float64(after - before)
		b.ReportMetric(used/peers, "heap-bytes/peer")
		b.ReportMetric(used/(1<<20), "heap-MiB")
		if used > 256<<20 {
			b.Errorf("1M peers take %.0f MiB, budget 256 MiB", used/(1<<20))
		}
		runtime.KeepAlive(s)
	}
}

// BenchmarkAdd is the cost of one sighting, half of them duplicates.
func BenchmarkAdd(b *testing.B) {
	s, err := New(Config{Clock: newFakeClock(), Probe: func(context.Context, Target) probe.Observation { return probe.Observation{} }})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.AddTorrent(hash(0), 1000); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		s.Add(discovery.Sighting{Torrent: hash(0), Addr: peerAddr(i / 2), Source: discovery.SourceDHT})
		i++
	}
}

// BenchmarkScheduleStep is the scheduler's own overhead per probe, without goroutines:
// dispatch one due peer and reschedule it, in a table of 100,000 queued peers.
func BenchmarkScheduleStep(b *testing.B) {
	const peers = 100_000
	clk := newFakeClock()
	s, err := New(Config{Clock: clk, MaxInFlight: 1, Probe: func(context.Context, Target) probe.Observation { return probe.Observation{} }})
	if err != nil {
		b.Fatal(err)
	}
	var last launch
	s.launch = func(_ context.Context, i uint32, t Target) { last = launch{i, t} }
	if err := s.AddTorrent(hash(0), 1000); err != nil {
		b.Fatal(err)
	}
	for i := range peers {
		s.Add(discovery.Sighting{Torrent: hash(0), Addr: peerAddr(i), Source: discovery.SourceDHT})
	}
	ctx := context.Background()
	for b.Loop() {
		last.t.Attempt = 0
		s.dispatch(ctx)
		if last.t.Attempt == 0 { // everything rescheduled: let the revisit delay pass
			clk.Advance(DefaultRevisitDelay)
			s.dispatch(ctx)
		}
		s.finish(last.idx, last.t, probe.Observation{Outcome: probe.OutcomeOK})
	}
}

// BenchmarkRunProbe is the end-to-end cost per probe through Run (goroutine per session,
// locking, wake-ups) with a ProbeFunc that returns at once.
func BenchmarkRunProbe(b *testing.B) {
	clk := newFakeClock()
	done := make(chan struct{}, 1024)
	s, err := New(Config{Clock: clk, MaxInFlight: 256,
		Probe:    func(context.Context, Target) probe.Observation { return probe.Observation{Outcome: probe.OutcomeOK} },
		OnResult: func(Target, probe.Observation) { done <- struct{}{} }})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.AddTorrent(hash(0), 1000); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		s.Add(discovery.Sighting{Torrent: hash(0), Addr: peerAddr(i), Source: discovery.SourceDHT})
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	b.ResetTimer()
	go func() { errc <- s.Run(ctx) }()
	for range b.N {
		<-done
	}
	b.StopTimer()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
