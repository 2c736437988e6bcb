// Package geotest writes small GeoIP2-compatible databases for tests, mapping loopback
// networks (127.x.0.0/16 and the like) to countries and autonomous systems.
package geotest

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// City maps one network to a place.
type City struct {
	Network   netip.Prefix
	Country   string // ISO 3166-1 alpha-2
	Continent string // continent code
	City      string // English name, "" for none
}

// ASN maps one network to an autonomous system.
type ASN struct {
	Network netip.Prefix
	Number  uint32
	Org     string
}

func newTree(dbType string) (*mmdbwriter.Tree, error) {
	return mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: dbType,
		// Tests map loopback and documentation ranges, which the writer refuses by default.
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
}

func ipnet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func write(t *mmdbwriter.Tree, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := t.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// WriteCity writes a GeoLite2-City database with the given networks to path.
func WriteCity(path string, entries []City) error {
	t, err := newTree("GeoLite2-City")
	if err != nil {
		return err
	}
	for _, e := range entries {
		rec := mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(e.Country)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(e.Continent)},
		}
		if e.City != "" {
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(e.City)}}
		}
		if err := t.Insert(ipnet(e.Network), rec); err != nil {
			return fmt.Errorf("insert %s: %w", e.Network, err)
		}
	}
	return write(t, path)
}

// WriteASN writes a GeoLite2-ASN database with the given networks to path.
func WriteASN(path string, entries []ASN) error {
	t, err := newTree("GeoLite2-ASN")
	if err != nil {
		return err
	}
	for _, e := range entries {
		rec := mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(e.Number),
			"autonomous_system_organization": mmdbtype.String(e.Org),
		}
		if err := t.Insert(ipnet(e.Network), rec); err != nil {
			return fmt.Errorf("insert %s: %w", e.Network, err)
		}
	}
	return write(t, path)
}
