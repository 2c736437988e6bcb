package collector

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/collector/geo/geotest"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/probe"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// testGeo builds a GeoIP DB mapping loopback /16s to places and one to an AS.
func testGeo(t testing.TB) *geo.DB {
	t.Helper()
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	if err := geotest.WriteCity(city, []geotest.City{
		{Network: netip.MustParsePrefix("127.1.0.0/16"), Country: "DE", Continent: "EU", City: "Berlin"},
		{Network: netip.MustParsePrefix("127.2.0.0/16"), Country: "BR", Continent: "SA"},
		{Network: netip.MustParsePrefix("127.3.0.0/16"), Country: "JP", Continent: "AS"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := geotest.WriteASN(asn, []geotest.ASN{
		{Network: netip.MustParsePrefix("127.1.0.0/16"), Number: 64500, Org: "Example Net"},
		{Network: netip.MustParsePrefix("127.2.0.0/16"), Number: 64501, Org: "Other Carrier"},
	}); err != nil {
		t.Fatal(err)
	}
	d := geo.New()
	if err := d.LoadCity(city); err != nil {
		t.Fatal(err)
	}
	if err := d.LoadASN(asn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// feed records sessions the way Record does, committing them at once.
func feed(c *Recorder, obs ...probe.Observation) { c.flush(obs) }

func goldenScenario(t *testing.T) (*Recorder, *prometheus.Registry) {
	c, reg := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{Geo: testGeo(t), TopNetworks: 1})
	t.Cleanup(func() { _ = c.Close() })
	feed(c,
		step{ip: "127.1.0.1", port: 6881, first: 50, last: 99, dur: 10}.obs(),                 // DE download
		step{ip: "127.1.0.2", port: 6881, first: 10, last: 20, dur: 4}.obs(),                  // DE leecher
		step{ip: "127.2.0.1", port: 6881, first: 100, last: 100}.obs(),                        // BR seed
		step{ip: "127.3.0.1", port: 6881, first: 40, last: 40, uploadOnly: true}.obs(),        // JP partial seed
		step{ip: "127.9.0.1", port: 0, dir: probe.Incoming, unknown: true}.obs(),              // ZZ, no progress
		step{ip: "127.9.0.2", port: 6881, outcome: probe.OutcomeRefused, unknown: true}.obs(), // no peer state
	)
	return c, reg
}

// volatile metrics depend on timing or file layout and stay out of the golden file.
var volatile = []string{"btda_store_commit_duration_seconds", "btda_store_size_bytes"}

func TestGoldenExposition(t *testing.T) {
	_, reg := goldenScenario(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var buf bytes.Buffer
	for _, mf := range mfs {
		if slices.Contains(volatile, mf.GetName()) {
			continue
		}
		names = append(names, mf.GetName())
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenExposition -update ./collector/ to create it)", err)
	}
	defer f.Close()
	if err := testutil.GatherAndCompare(reg, f, names...); err != nil {
		t.Fatal(err)
	}
}

func TestLint(t *testing.T) {
	_, reg := goldenScenario(t)
	if _, err := geo.NewRDNS(geo.RDNSConfig{}, resolverFunc(nil), reg, quietLog()); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// resolverFunc adapts a function to geo.Resolver.
type resolverFunc func(ctx context.Context, addr string) ([]string, error)

func (f resolverFunc) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return f(ctx, addr)
}

var dottedQuad = regexp.MustCompile(`\d{1,3}[.\-_]\d{1,3}[.\-_]\d{1,3}[.\-_]\d{1,3}`)

// TestNoAddressInLabels feeds observations from many addresses, with every enrichment on and
// a resolver whose names embed the address (or are one), and checks that no label value of
// any exported series is or contains an address.
func TestNoAddressInLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	res := resolverFunc(func(_ context.Context, addr string) ([]string, error) {
		a := netip.MustParseAddr(addr)
		switch a.As4()[3] % 3 {
		case 0:
			return []string{addr + "."}, nil
		case 1:
			return []string{"host-" + strings.ReplaceAll(addr, ".", "-") + ".dyn.example.net."}, nil
		}
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	})
	rd, err := geo.NewRDNS(geo.RDNSConfig{Rate: 1e6, Queue: 4096}, res, reg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = rd.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	c, err := New(Config{StorePath: filepath.Join(t.TempDir(), "s.db"), Geo: testGeo(t), RDNS: rd, TopNetworks: 1000},
		reg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.AddTorrent(torrent, pieceLength)
	var addrs []string
	var batch []probe.Observation
	for i := range 400 {
		ip := fmt.Sprintf("127.%d.%d.%d", i%4+1, i/200, i%200+1)
		addrs = append(addrs, ip)
		batch = append(batch, step{ip: ip, port: uint16(1000 + i), first: 10, last: 60, dur: 5}.obs())
	}
	feed(c, batch...)
	for _, ip := range addrs { // wait (bounded) for the resolver to answer every address
		for i := 0; i < 2000; i++ {
			if _, ok := rd.Lookup(netip.MustParseAddr(ip)); ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range batch {
		batch[i].Last.At = batch[i].Last.At.Add(time.Hour)
		batch[i].Last.Pieces = 100
	}
	feed(c, batch...)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				v := lp.GetValue()
				values++
				if _, err := netip.ParseAddr(v); err == nil {
					t.Errorf("%s{%s=%q} is an address", mf.GetName(), lp.GetName(), v)
				}
				if _, err := netip.ParsePrefix(v); err == nil {
					t.Errorf("%s{%s=%q} is a network", mf.GetName(), lp.GetName(), v)
				}
				if dottedQuad.MatchString(v) {
					t.Errorf("%s{%s=%q} contains an address", mf.GetName(), lp.GetName(), v)
				}
			}
		}
	}
	if values == 0 {
		t.Fatal("no label values scraped")
	}
	// The domains did reach the network table (so the check above saw them).
	if n := c.Aggregates().Networks["example.net"]; n.Peers == 0 {
		t.Logf("networks: %+v", c.Aggregates().Networks)
		t.Fatal("no peer moved to its registered domain")
	}
}

func TestEnrichment(t *testing.T) {
	g := testGeo(t)
	cases := []struct {
		name string
		cfg  Config
		ip   string
		want store.Peer
	}{
		{"defaults", Config{Geo: g}, "127.1.2.3", store.Peer{Country: "DE", Continent: "EU", City: "Berlin",
			ASN: 64500, Org: "Example Net", NetLabel: "Example Net", Network: netip.MustParsePrefix("127.1.2.0/24")}},
		{"no database", Config{}, "127.1.2.3", store.Peer{Country: "ZZ", Continent: "ZZ", NetLabel: "unknown",
			Network: netip.MustParsePrefix("127.1.2.0/24")}},
		{"loopback without a record", Config{Geo: g}, "127.200.0.1", store.Peer{Country: "ZZ", Continent: "ZZ",
			NetLabel: "unknown", Network: netip.MustParsePrefix("127.200.0.0/24")}},
		{"raw IP kept, no anonymization", Config{Geo: g, KeepRawIP: true, NoAnonymize: true}, "127.3.0.7",
			store.Peer{Country: "JP", Continent: "AS", NetLabel: "unknown", Network: netip.MustParsePrefix("127.3.0.7/32"),
				Addr: netip.MustParseAddr("127.3.0.7")}},
		{"IPv6", Config{Geo: g}, "::1", store.Peer{Country: "ZZ", Continent: "ZZ", NetLabel: "unknown",
			Network: netip.MustParsePrefix("::/48")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCollector(t, filepath.Join(t.TempDir(), "s.db"), tc.cfg)
			defer c.Close()
			o := step{ip: tc.ip, port: 1, first: 1, last: 2}.obs()
			o.Client.Family = "Transmission"
			feed(c, o)
			p := peerRecord(t, c, o)
			got := store.Peer{Country: p.Country, Continent: p.Continent, City: p.City, ASN: p.ASN, Org: p.Org,
				NetLabel: p.NetLabel, Network: p.Network, Addr: p.Addr}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if p.Client != "Transmission" || p.Sources != 1<<1 {
				t.Fatalf("client %q sources %b", p.Client, p.Sources)
			}
		})
	}
}

func TestTopN(t *testing.T) {
	nets := map[string]store.NetworkAgg{"a": {Peers: 5}, "b": {Peers: 3}, "c": {Peers: 3}, "d": {Peers: 1}, "e": {}}
	got := topN(nets, 2, func(n store.NetworkAgg) int64 { return n.Peers })
	want := map[string]int64{"a": 5, "b": 3, "other": 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestSeriesDoNotGrowWithPeers checks the cardinality budget: once every country and
// network of a scenario has appeared, more peers add no series.
func TestSeriesDoNotGrowWithPeers(t *testing.T) {
	c, reg := newCollector(t, filepath.Join(t.TempDir(), "s.db"), Config{Geo: testGeo(t), TopNetworks: 2})
	defer c.Close()
	series := func() map[string]int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, mf := range mfs {
			n[mf.GetName()] = len(mf.GetMetric())
		}
		return n
	}
	peers := func(from, to int) {
		var batch []probe.Observation
		for i := from; i < to; i++ {
			ip := fmt.Sprintf("127.%d.%d.%d", i%5+1, i/250%250, i%250+1)
			batch = append(batch, step{ip: ip, port: uint16(i), first: 10, last: 99, dur: 5}.obs(),
				step{ip: ip, port: uint16(i) + 1, first: 100, last: 100}.obs())
		}
		feed(c, batch...)
	}
	peers(0, 50)
	before := series()
	peers(50, 1000)
	after := series()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("series per metric grew with peers:\nbefore %v\nafter  %v", before, after)
	}
	if n := after["btda_network_peers"]; n > 3 {
		t.Fatalf("btda_network_peers has %d series, budget TopNetworks+1 = 3", n)
	}
}
