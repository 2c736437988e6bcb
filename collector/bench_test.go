package collector

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// benchObs builds the k-th observation of a workload that cycles through pool peers, each
// seen again with more pieces one minute later.
func benchObs(k, pool int) probe.Observation {
	peer, round := k%pool, k/pool
	a := netip.AddrFrom4([4]byte{127, byte(1 + peer>>16), byte(peer >> 8), byte(peer)})
	at := t0.Add(time.Duration(round) * time.Minute)
	pieces := min(10+round*5, numPieces)
	return probe.Observation{Torrent: torrent, Addr: netip.AddrPortFrom(a, 6881), Direction: probe.Outgoing,
		Source: discovery.SourceTracker, Start: at.Add(-time.Second), Outcome: probe.OutcomeOK, Known: true,
		NumPieces: numPieces, First: probe.Point{Pieces: pieces, At: at}, Last: probe.Point{Pieces: pieces + 1, At: at.Add(5 * time.Second)},
		Timings: probe.Timings{Total: 6 * time.Second}}
}

// BenchmarkCommit measures observations committed per second through the batch writer (with
// fsync, GeoIP lookups and the rule), over 100,000 peers that are each seen repeatedly, for
// several batch sizes.
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchCommit(b, batch, false) })
	}
	// Without fsync: what the CPU alone allows (a crash may lose the last commits).
	b.Run("batch=5000/nosync", func(b *testing.B) { benchCommit(b, 5000, true) })
}

func benchCommit(b *testing.B, batch int, noSync bool) {
	c, _ := newCollector(b, filepath.Join(b.TempDir(), "s.db"), Config{Geo: testGeo(b),
		StoreOptions: store.Options{NoSync: noSync}})
	defer c.Close()
	const pool = 100_000
	// Every peer is known before timing starts: steady state, one lookup per observation.
	buf := make([]probe.Observation, 0, batch)
	for k := range pool {
		buf = append(buf, benchObs(k, pool))
		if len(buf) == batch {
			c.flush(buf)
			buf = buf[:0]
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		buf = buf[:0]
		for k := i; k < min(i+batch, b.N); k++ {
			buf = append(buf, benchObs(pool+k, pool))
		}
		c.flush(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "obs/s")
}

// BenchmarkKnownPeers1M stores 1,000,000 distinct peers and reports the collector's heap
// afterwards (per-peer state lives in the store, not in memory) and the store's size.
// Run it with -benchtime=1x.
func BenchmarkKnownPeers1M(b *testing.B) {
	const peers, batch = 1_000_000, 5000
	for range b.N {
		c, _ := newCollector(b, filepath.Join(b.TempDir(), "s.db"), Config{Geo: testGeo(b), BatchSize: batch})
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		buf := make([]probe.Observation, 0, batch)
		for k := range peers {
			buf = append(buf, benchObs(k, peers))
			if len(buf) == batch {
				c.flush(buf)
				buf = buf[:0]
			}
		}
		elapsed := time.Since(start)
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n := c.Aggregates().Torrents[torrent].Peers; n != peers {
			b.Fatalf("peers %d", n)
		}
		b.ReportMetric(float64(peers)/elapsed.Seconds(), "new-peers/s")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heap-growth-MiB")
		b.ReportMetric(float64(c.store.Size())/(1<<20), "store-MiB")
		_ = c.Close()
	}
}

// BenchmarkPeerRecord measures encoding and decoding one peer record.
func BenchmarkPeerRecord(b *testing.B) {
	p := store.Peer{Flags: store.FlagHasPoint, Country: "DE", Continent: "EU", City: "Berlin", Org: "Example Net",
		NetLabel: "Example Net", Network: netip.MustParsePrefix("127.1.0.0/24"), First: store.Point{Pieces: 10, At: t0},
		Last: store.Point{Pieces: 20, At: t0}, Prev: store.Point{Pieces: 15, At: t0}}
	for b.Loop() {
		v, _ := p.MarshalBinary()
		var q store.Peer
		if err := q.UnmarshalBinary(v); err != nil {
			b.Fatal(err)
		}
	}
}
