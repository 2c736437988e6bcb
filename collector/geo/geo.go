// Package geo enriches peer addresses: country, continent and city from a GeoIP2/GeoLite2
// City or Country database, autonomous system from an ASN database, the registered domain
// from reverse DNS, and the anonymized network the store keeps instead of the address.
//
// Unknown is spelled "ZZ" for both countries (ISO 3166-1 user-assigned code) and continents,
// so every label value is a two-letter code. Loopback and private addresses are looked up
// like any other: a database that maps them (tests do) is believed, and only an address the
// database has no record for becomes ZZ.
package geo

import (
	"errors"
	"fmt"
	"net/netip"

	geoip2 "github.com/oschwald/geoip2-golang/v2"
)

// Unknown is the country and continent code of an address with no known location.
const Unknown = "ZZ"

// Continents lists every continent code Lookup returns, Unknown last.
var Continents = []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA", Unknown}

// Info is what the databases say about one address.
type Info struct {
	Country   string // ISO 3166-1 alpha-2, upper case, or "ZZ"
	Continent string // one of Continents
	City      string // English name, "" unknown
	ASN       uint32 // 0 unknown
	Org       string // the autonomous system's organisation, "" unknown
}

// DB holds the optional City and ASN databases. The zero value (or New()) answers ZZ for
// everything. Load the databases before sharing a DB between goroutines; lookups are then
// safe for concurrent use.
type DB struct {
	city, asn *geoip2.Reader
}

// New returns a DB with no database loaded.
func New() *DB { return &DB{} }

// LoadCity opens a City or Country database. On error the DB keeps answering ZZ.
func (d *DB) LoadCity(path string) error {
	r, err := geoip2.Open(path)
	if err != nil {
		return fmt.Errorf("geoip city database %s: %w", path, err)
	}
	if _, err := r.City(netip.IPv4Unspecified()); err != nil {
		var inv geoip2.InvalidMethodError
		_ = r.Close()
		if errors.As(err, &inv) {
			return fmt.Errorf("geoip city database %s: is a %s database, want a City or Country database", path, inv.DatabaseType)
		}
		return fmt.Errorf("geoip city database %s: test lookup: %w", path, err)
	}
	if d.city != nil {
		_ = d.city.Close()
	}
	d.city = r
	return nil
}

// LoadASN opens an ASN (or ISP) database. On error the DB keeps answering without ASNs.
func (d *DB) LoadASN(path string) error {
	r, err := geoip2.Open(path)
	if err != nil {
		return fmt.Errorf("geoip asn database %s: %w", path, err)
	}
	if _, err := r.ASN(netip.IPv4Unspecified()); err != nil {
		var inv geoip2.InvalidMethodError
		_ = r.Close()
		if errors.As(err, &inv) {
			return fmt.Errorf("geoip asn database %s: is a %s database, want an ASN database", path, inv.DatabaseType)
		}
		return fmt.Errorf("geoip asn database %s: test lookup: %w", path, err)
	}
	if d.asn != nil {
		_ = d.asn.Close()
	}
	d.asn = r
	return nil
}

// Loaded reports which databases are loaded.
func (d *DB) Loaded() (city, asn bool) { return d != nil && d.city != nil, d != nil && d.asn != nil }

// Close releases the databases.
func (d *DB) Close() error {
	var errs []error
	if d.city != nil {
		errs = append(errs, d.city.Close())
		d.city = nil
	}
	if d.asn != nil {
		errs = append(errs, d.asn.Close())
		d.asn = nil
	}
	return errors.Join(errs...)
}

// Lookup returns what the loaded databases know about a. It never fails: a failed or empty
// lookup is "unknown".
func (d *DB) Lookup(a netip.Addr) Info {
	info := Info{Country: Unknown, Continent: Unknown}
	if d == nil || !a.IsValid() {
		return info
	}
	a = a.Unmap()
	if d.city != nil {
		if c, err := d.city.City(a); err == nil && c.HasData() {
			cc := c.Country.ISOCode
			if cc == "" {
				cc = c.RegisteredCountry.ISOCode
			}
			info.Country = CountryCode(cc)
			info.Continent = ContinentCode(c.Continent.Code)
			info.City = clip(c.City.Names.English, 64)
		}
	}
	if d.asn != nil {
		if r, err := d.asn.ASN(a); err == nil && r.AutonomousSystemNumber != 0 && r.AutonomousSystemNumber <= 1<<32-1 {
			info.ASN = uint32(r.AutonomousSystemNumber)
			info.Org = clip(r.AutonomousSystemOrganization, 64)
		}
	}
	return info
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CountryCode returns s as an upper-case ISO 3166-1 alpha-2 code, or ZZ when it is not
// two letters (a label value must stay a bounded code whatever the database holds).
func CountryCode(s string) string {
	if len(s) != 2 {
		return Unknown
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return Unknown
		}
		b[i] = c
	}
	return string(b)
}

// ContinentCode returns s if it is one of Continents, else ZZ.
func ContinentCode(s string) string {
	for _, c := range Continents {
		if s == c {
			return c
		}
	}
	return Unknown
}

// Anonymize returns the network the store keeps for a: its /24 (IPv4) or /48 (IPv6) when
// anon is true, the single address otherwise.
func Anonymize(a netip.Addr, anon bool) netip.Prefix {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	bits := a.BitLen()
	if anon {
		bits = 24
		if a.Is6() {
			bits = 48
		}
	}
	p, _ := a.Prefix(bits)
	return p
}
