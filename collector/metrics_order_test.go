package collector

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
)

// collectLabels runs the scrape-time collector once and returns, per metric name, each
// series' label values in label name order (the order the registry sorts by).
func collectLabels(t *testing.T, c *Recorder) map[string][]string {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	go func() {
		c.m.Collect(ch)
		close(ch)
	}()
	out := map[string][]string{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		vals := make([]string, 0, len(pb.Label))
		for _, lp := range pb.Label {
			vals = append(vals, lp.GetValue())
		}
		name := m.Desc().String()
		name = name[strings.Index(name, `fqName: "`)+9:]
		name = name[:strings.Index(name, `"`)]
		out[name] = append(out[name], strings.Join(vals, "\x00"))
	}
	return out
}

// TestCollectEmitsSorted checks that every scrape-time family comes out already in the
// registry's order, also after new keys invalidate the cached confirmed-download order.
func TestCollectEmitsSorted(t *testing.T) {
	c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{TopNetworks: 3})
	t.Cleanup(func() { _ = c.Close() })
	add := func(seed, n int) {
		d := store.NewAggregates()
		for i := range n {
			// Scatter keys over torrents, countries and continents, in no particular order.
			var h metainfo.Hash
			h[0], h[19] = byte((i*37+seed)%251), byte(i)
			cc := fmt.Sprintf("%c%c", 'A'+(i*7+seed)%26, 'A'+i%26)
			d.Confirmed[store.ConfirmedKey{Torrent: h, Country: cc, Continent: []string{"EU", "AS", "NA", "ZZ"}[i%4]}] = uint64(i + 1)
			d.Torrents[h] = store.TorrentAgg{Peers: uint64(i)}
			d.Countries[cc] = store.CountryAgg{Bytes: uint64(i)}
			d.Networks[fmt.Sprintf("net%d", (i*13+seed)%50)] = store.NetworkAgg{Confirmed: int64(i), Peers: int64(i)}
		}
		c.m.view.add(d, 0)
	}
	check := func(wantConfirmed int) {
		t.Helper()
		got := collectLabels(t, c)
		if n := len(got["btda_confirmed_downloads_total"]); n != wantConfirmed {
			t.Fatalf("confirmed series = %d, want %d", n, wantConfirmed)
		}
		for name, series := range got {
			if !slices.IsSorted(series) {
				t.Errorf("%s: %d series not emitted in label order", name, len(series))
			}
		}
	}
	add(1, 500)
	check(500)
	check(500) // from the cache
	add(2, 300)
	want := len(c.Aggregates().Confirmed)
	check(want)
}
