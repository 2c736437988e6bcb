package swarmtest

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/oschwald/geoip2-golang/v2"
)

func TestWriteGeoIPReadBack(t *testing.T) {
	dir := t.TempDir()
	cs := DefaultCountries()
	cityPath, asnPath, err := WriteGeoIP(dir, cs)
	if err != nil {
		t.Fatal(err)
	}
	city, err := geoip2.Open(cityPath)
	if err != nil {
		t.Fatal(err)
	}
	defer city.Close()
	asn, err := geoip2.Open(asnPath)
	if err != nil {
		t.Fatal(err)
	}
	defer asn.Close()
	for _, c := range cs {
		for k := 0; k < 600; k += 97 {
			addr, half, err := countryAddr(c, k)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := city.City(addr)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Country.ISOCode != c.ISO || rec.Continent.Code != c.Continent || rec.City.Names.English != c.Cities[half] {
				t.Errorf("%s: got %s/%s/%s, want %s/%s/%s", addr, rec.Country.ISOCode, rec.Continent.Code,
					rec.City.Names.English, c.ISO, c.Continent, c.Cities[half])
			}
			a, err := asn.ASN(addr)
			if err != nil {
				t.Fatal(err)
			}
			if uint32(a.AutonomousSystemNumber) != c.ASN[half] || a.AutonomousSystemOrganization != c.ASOrg[half] {
				t.Errorf("%s: ASN %d %q, want %d %q", addr, a.AutonomousSystemNumber, a.AutonomousSystemOrganization, c.ASN[half], c.ASOrg[half])
			}
		}
	}
	// Outside the swarm's ranges nothing is found (btda maps that to ZZ).
	rec, err := city.City(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.HasData() {
		t.Errorf("127.0.0.1 has data: %+v", rec.Country)
	}
}

func TestValidateCountries(t *testing.T) {
	good := DefaultCountries()[0]
	tests := []struct {
		name string
		cs   []Country
		want string
	}{
		{"empty", nil, "empty"},
		{"lower case", []Country{{ISO: "us", Octet: 10}}, "iso_code"},
		{"octet zero", []Country{{ISO: "US", Octet: 0}}, "octet 0"},
		{"duplicate octet", []Country{good, {ISO: "DE", Octet: good.Octet}}, "already used"},
		{"negative weight", []Country{{ISO: "US", Octet: 10, Weight: -1}}, "negative"},
	}
	for _, tt := range tests {
		err := validateCountries(tt.cs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want containing %q", tt.name, err, tt.want)
		}
	}
	if err := validateCountries(DefaultCountries()); err != nil {
		t.Error(err)
	}
}
