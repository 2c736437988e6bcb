package geo

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/btda/btda/collector/geo/geotest"
)

func testDBs(t *testing.T) (city, asn string) {
	t.Helper()
	dir := t.TempDir()
	city, asn = filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	if err := geotest.WriteCity(city, []geotest.City{
		{Network: netip.MustParsePrefix("127.1.0.0/16"), Country: "DE", Continent: "EU", City: "Berlin"},
		{Network: netip.MustParsePrefix("127.2.0.0/16"), Country: "br", Continent: "SA"},
		{Network: netip.MustParsePrefix("127.3.0.0/16"), Country: "1.2.3.4", Continent: "XX"},
		{Network: netip.MustParsePrefix("fd00:1::/32"), Country: "JP", Continent: "AS"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := geotest.WriteASN(asn, []geotest.ASN{
		{Network: netip.MustParsePrefix("127.1.0.0/16"), Number: 64500, Org: "Example Net"},
	}); err != nil {
		t.Fatal(err)
	}
	return city, asn
}

func TestLookup(t *testing.T) {
	city, asn := testDBs(t)
	d := New()
	if err := d.LoadCity(city); err != nil {
		t.Fatal(err)
	}
	if err := d.LoadASN(asn); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cases := map[string]Info{
		"127.1.2.3":        {Country: "DE", Continent: "EU", City: "Berlin", ASN: 64500, Org: "Example Net"},
		"::ffff:127.1.2.3": {Country: "DE", Continent: "EU", City: "Berlin", ASN: 64500, Org: "Example Net"},
		"127.2.0.1":        {Country: "BR", Continent: "SA"},
		"127.3.0.1":        {Country: "ZZ", Continent: "ZZ"}, // garbage codes never reach a label
		"127.9.0.1":        {Country: "ZZ", Continent: "ZZ"}, // loopback with no record
		"10.0.0.1":         {Country: "ZZ", Continent: "ZZ"},
		"fd00:1::5":        {Country: "JP", Continent: "AS"},
	}
	for in, want := range cases {
		if got := d.Lookup(netip.MustParseAddr(in)); got != want {
			t.Errorf("Lookup(%s) = %+v, want %+v", in, got, want)
		}
	}
	if c, a := d.Loaded(); !c || !a {
		t.Fatalf("Loaded = %v %v", c, a)
	}
	var none *DB
	if got := none.Lookup(netip.MustParseAddr("127.1.2.3")); got.Country != Unknown || got.Continent != Unknown {
		t.Fatalf("nil DB: %+v", got)
	}
	if got := New().Lookup(netip.MustParseAddr("127.1.2.3")); got.Country != Unknown {
		t.Fatalf("empty DB: %+v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	city, asn := testDBs(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("garbage", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")
	cases := []struct {
		name string
		load func(*DB) error
		want string
	}{
		{"city missing", func(d *DB) error { return d.LoadCity(missing) }, "geoip city database " + missing},
		{"city garbage", func(d *DB) error { return d.LoadCity(garbage) }, "geoip city database " + garbage},
		{"asn as city", func(d *DB) error { return d.LoadCity(asn) }, "is a GeoLite2-ASN database, want a City or Country database"},
		{"asn missing", func(d *DB) error { return d.LoadASN(missing) }, "geoip asn database " + missing},
		{"asn garbage", func(d *DB) error { return d.LoadASN(garbage) }, "geoip asn database " + garbage},
		{"city as asn", func(d *DB) error { return d.LoadASN(city) }, "want an ASN database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := New()
			err := c.load(d)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if cl, al := d.Loaded(); cl || al {
				t.Fatal("a failed load left a database loaded")
			}
			if got := d.Lookup(netip.MustParseAddr("127.1.0.1")); got.Country != Unknown {
				t.Fatalf("after a failed load: %+v", got)
			}
		})
	}
}

func TestAnonymize(t *testing.T) {
	cases := []struct {
		in   string
		anon bool
		want string
	}{
		{"127.1.2.3", true, "127.1.2.0/24"},
		{"::ffff:127.1.2.3", true, "127.1.2.0/24"},
		{"2001:db8:1:2::5", true, "2001:db8:1::/48"},
		{"127.1.2.3", false, "127.1.2.3/32"},
		{"2001:db8::5", false, "2001:db8::5/128"},
	}
	for _, c := range cases {
		if got := Anonymize(netip.MustParseAddr(c.in), c.anon).String(); got != c.want {
			t.Errorf("Anonymize(%s, %v) = %s, want %s", c.in, c.anon, got, c.want)
		}
	}
	if Anonymize(netip.Addr{}, true).IsValid() {
		t.Error("an invalid address gave a network")
	}
}

func TestCodes(t *testing.T) {
	for in, want := range map[string]string{"de": "DE", "DE": "DE", "": "ZZ", "D": "ZZ", "1.": "ZZ", "DEU": "ZZ", "é": "ZZ"} {
		if got := CountryCode(in); got != want {
			t.Errorf("CountryCode(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"EU": "EU", "eu": "ZZ", "XX": "ZZ", "": "ZZ", "AN": "AN"} {
		if got := ContinentCode(in); got != want {
			t.Errorf("ContinentCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegisteredDomain(t *testing.T) {
	cases := map[string]string{
		"host-1-2-3-4.dyn.example.com.": "example.com",
		"a.b.example.co.uk":             "example.co.uk",
		"Example.COM":                   "example.com",
		"1.2.3.4":                       "",
		"4.3.2.1.in-addr.arpa.":         "",
		"com":                           "",
		"":                              "",
		"bad_name.example.com":          "",
		"::1":                           "",
	}
	for in, want := range cases {
		if got := RegisteredDomain(in); got != want {
			t.Errorf("RegisteredDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRegisteredDomain(f *testing.F) {
	for _, s := range []string{"a.example.com.", "1.2.3.4", "x.in-addr.arpa", "", "a..b", "co.uk"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := RegisteredDomain(s)
		if _, err := netip.ParseAddr(d); err == nil {
			t.Fatalf("%q gave an address %q", s, d)
		}
		if len(d) > 253 {
			t.Fatalf("%q gave a %d-byte domain", s, len(d))
		}
	})
}

type fakeResolver struct {
	mu    sync.Mutex
	names map[string][]string
	calls int
}

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if n, ok := f.names[addr]; ok {
		return n, nil
	}
	if addr == "127.0.0.99" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

func TestRDNS(t *testing.T) {
	before := runtime.NumGoroutine()
	res := &fakeResolver{names: map[string][]string{"127.1.0.1": {"peer-1.isp.example.net."}}}
	reg := prometheus.NewPedanticRegistry()
	r, err := NewRDNS(RDNSConfig{Rate: 1000, Timeout: 50 * time.Millisecond}, res, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()

	want := map[string]string{"127.1.0.1": "example.net", "127.1.0.2": "", "127.0.0.99": ""}
	for addr, dom := range want {
		a := netip.MustParseAddr(addr)
		if _, ok := r.Lookup(a); ok {
			t.Fatalf("%s answered before any lookup ran", addr)
		}
		var got string
		var ok bool
		for i := 0; i < 1000 && !ok; i++ { // bounded wait for the background worker
			time.Sleep(5 * time.Millisecond)
			got, ok = r.Lookup(a)
		}
		if !ok || got != dom {
			t.Errorf("Lookup(%s) = %q, %v; want %q", addr, got, ok, dom)
		}
	}
	if n := testutil.ToFloat64(r.failures.WithLabelValues("timeout")); n != 1 {
		t.Errorf("timeouts = %v, want 1", n)
	}
	if n := testutil.ToFloat64(r.failures.WithLabelValues("not_found")); n != 1 {
		t.Errorf("not_found = %v, want 1", n)
	}
	cancel()
	<-done
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}
