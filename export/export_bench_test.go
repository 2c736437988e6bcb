package export

import (
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
)

// fillPeers writes n peer records in batches (NoSync: a benchmark fixture).
func fillPeers(tb testing.TB, path string, n int) {
	tb.Helper()
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	at := time.Unix(1700000000, 0).UTC()
	const batch = 50000
	for i := 0; i < n; i += batch {
		if err := st.Update(func(tx *store.Tx) error {
			for j := i; j < min(n, i+batch); j++ {
				var k store.PeerKey
				binary.BigEndian.PutUint32(k[12:], uint32(j))
				p := store.Peer{Flags: store.FlagHasPoint, Contacts: 3, FirstSeen: at, LastContact: at.Add(time.Hour),
					NumPieces: 1000, First: store.Point{Pieces: 10, At: at}, Last: store.Point{Pieces: 990, At: at.Add(time.Hour)},
					MaxSpeed: 1e5, Client: "Transmission", Country: "DE", Continent: "EU", City: "Berlin",
					ASN: 3320, Org: "Deutsche Telekom AG", Network: netip.MustParsePrefix("10.1.2.0/24"),
					Torrent: metainfo.Hash{byte(j % 7)}}
				if err := tx.PutPeer(k, &p); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkExportPeers exports 1,000,000 peer records as CSV and reports the rate and the
// peak heap in use while exporting (sampled), which must not grow with the store.
func BenchmarkExportPeers(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "btda.db")
	fillPeers(b, path, n)
	st, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	b.ResetTimer()
	rows := 0
	for range b.N {
		got, err := FromStore(context.Background(), st, Options{Table: "peers", Format: "csv"}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%d rows, want %d", got, n)
		}
		rows += got
	}
	b.StopTimer()
	close(stop)
	<-sampled
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MiB")
}
