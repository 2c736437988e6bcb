package swarmtest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Country is one entry of the swarm's GeoIP world: peers of this country live
// in 127.Octet.0.0/16; the lower half (127.Octet.0-127.x) belongs to ASN[0]
// and City[0], the upper half to ASN[1] and City[1].
type Country struct {
	ISO       string    `json:"iso_code" yaml:"iso_code"`
	Continent string    `json:"continent" yaml:"continent"`
	Octet     int       `json:"octet" yaml:"octet"`
	Weight    float64   `json:"weight" yaml:"weight"`
	Cities    [2]string `json:"cities" yaml:"cities"`
	ASN       [2]uint32 `json:"asn" yaml:"asn"`
	ASOrg     [2]string `json:"as_org" yaml:"as_org"`
}

// DefaultCountries is the built-in world. Octets start at 10 so that
// 127.0.0.0/16 (127.0.0.1: btda, trackers) stays outside the swarm. ASNs are
// from the private range.
func DefaultCountries() []Country {
	c := func(iso, cont string, oct int, w float64, c1, c2 string) Country {
		return Country{ISO: iso, Continent: cont, Octet: oct, Weight: w, Cities: [2]string{c1, c2},
			ASN:   [2]uint32{uint32(64600 + 2*oct), uint32(64601 + 2*oct)},
			ASOrg: [2]string{iso + " Telecom", iso + " Cable"}}
	}
	return []Country{
		c("US", "NA", 10, 18, "New York", "Los Angeles"),
		c("DE", "EU", 11, 9, "Berlin", "Munich"),
		c("FR", "EU", 12, 7, "Paris", "Lyon"),
		c("GB", "EU", 13, 6, "London", "Manchester"),
		c("NL", "EU", 14, 3, "Amsterdam", "Rotterdam"),
		c("RU", "EU", 15, 8, "Moscow", "Saint Petersburg"),
		c("CN", "AS", 16, 10, "Beijing", "Shanghai"),
		c("JP", "AS", 17, 4, "Tokyo", "Osaka"),
		c("BR", "SA", 18, 7, "Sao Paulo", "Rio de Janeiro"),
		c("IN", "AS", 19, 8, "Mumbai", "Delhi"),
		c("CA", "NA", 20, 3, "Toronto", "Vancouver"),
		c("AU", "OC", 21, 2, "Sydney", "Melbourne"),
		c("ES", "EU", 22, 3, "Madrid", "Barcelona"),
		c("IT", "EU", 23, 3, "Rome", "Milan"),
		c("PL", "EU", 24, 3, "Warsaw", "Krakow"),
		c("KR", "AS", 25, 2, "Seoul", "Busan"),
		c("UA", "EU", 26, 2, "Kyiv", "Lviv"),
		c("MX", "NA", 27, 2, "Mexico City", "Guadalajara"),
		c("ZA", "AF", 28, 1, "Johannesburg", "Cape Town"),
		c("EG", "AF", 29, 1, "Cairo", "Alexandria"),
	}
}

func validateCountries(cs []Country) error {
	seen := map[int]string{}
	for i, c := range cs {
		if len(c.ISO) != 2 || c.ISO[0] < 'A' || c.ISO[0] > 'Z' || c.ISO[1] < 'A' || c.ISO[1] > 'Z' {
			return fmt.Errorf("countries[%d]: iso_code %q is not an upper-case ISO 3166-1 alpha-2 code", i, c.ISO)
		}
		if c.Octet < 1 || c.Octet > 255 {
			return fmt.Errorf("countries[%d] (%s): octet %d outside 1..255", i, c.ISO, c.Octet)
		}
		if other, ok := seen[c.Octet]; ok {
			return fmt.Errorf("countries[%d] (%s): octet %d already used by %s", i, c.ISO, c.Octet, other)
		}
		if c.Weight < 0 {
			return fmt.Errorf("countries[%d] (%s): negative weight", i, c.ISO)
		}
		seen[c.Octet] = c.ISO
	}
	if len(cs) == 0 {
		return fmt.Errorf("countries: empty list")
	}
	return nil
}

// countryAddr returns the k-th address of a country: B.C walks 1..254 in C
// over both halves of the /16, alternating halves so both ASNs get peers.
func countryAddr(c Country, k int) (netip.Addr, int, error) {
	half := k % 2
	j := k / 2
	b := j / 254
	if b >= 128 {
		return netip.Addr{}, 0, fmt.Errorf("country %s: more than %d peers", c.ISO, 2*128*254)
	}
	b += 128 * half
	return netip.AddrFrom4([4]byte{127, byte(c.Octet), byte(b), byte(1 + j%254)}), half, nil
}

// Geo paths written by WriteGeoIP.
const (
	CityDBName = "swarm-city.mmdb"
	ASNDBName  = "swarm-asn.mmdb"
)

// WriteGeoIP writes a GeoLite2-City and a GeoLite2-ASN style database mapping
// every country's 127.Octet.0.0/16 (two /17 halves) to its records, and
// returns their paths.
func WriteGeoIP(dir string, countries []Country) (cityPath, asnPath string, err error) {
	return writeGeoIP(dir, countries, nil)
}

// writeGeoIP is WriteGeoIP that also places ::1 in country v6 (its first city and ASN),
// when v6 is not nil: the swarm's IPv6 peers all live there.
func writeGeoIP(dir string, countries []Country, v6 *Country) (cityPath, asnPath string, err error) {
	if err := validateCountries(countries); err != nil {
		return "", "", err
	}
	opts := func(typ string) mmdbwriter.Options {
		return mmdbwriter.Options{
			DatabaseType: typ, RecordSize: 28, Languages: []string{"en"},
			Description: map[string]string{"en": "btswarm loopback test database"},
			// Loopback is reserved: both options are needed to insert 127/8.
			IncludeReservedNetworks: true, DisableIPv4Aliasing: true,
		}
	}
	city, err := mmdbwriter.New(opts("GeoLite2-City"))
	if err != nil {
		return "", "", fmt.Errorf("geoip: new city tree: %w", err)
	}
	asn, err := mmdbwriter.New(opts("GeoLite2-ASN"))
	if err != nil {
		return "", "", fmt.Errorf("geoip: new asn tree: %w", err)
	}
	type block struct {
		n *net.IPNet
		c Country
		h int
	}
	var blocks []block
	for _, c := range countries {
		for h := 0; h < 2; h++ {
			blocks = append(blocks, block{&net.IPNet{IP: net.IPv4(127, byte(c.Octet), byte(128*h), 0).To4(), Mask: net.CIDRMask(17, 32)}, c, h})
		}
	}
	if v6 != nil {
		blocks = append(blocks, block{&net.IPNet{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)}, *v6, 0})
	}
	for _, bl := range blocks {
		n, c, h := bl.n, bl.c, bl.h
		rec := mmdbtype.Map{
			"continent": mmdbtype.Map{"code": mmdbtype.String(c.Continent),
				"names": mmdbtype.Map{"en": mmdbtype.String(c.Continent)}},
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(c.ISO),
				"names": mmdbtype.Map{"en": mmdbtype.String(c.ISO)}},
			"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String(c.ISO)},
			"city":               mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(c.Cities[h])}},
		}
		if err := city.Insert(n, rec); err != nil {
			return "", "", fmt.Errorf("geoip: insert %s into city db: %w", n, err)
		}
		arec := mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(c.ASN[h]),
			"autonomous_system_organization": mmdbtype.String(c.ASOrg[h]),
		}
		if err := asn.Insert(n, arec); err != nil {
			return "", "", fmt.Errorf("geoip: insert %s into asn db: %w", n, err)
		}
	}
	cityPath = filepath.Join(dir, CityDBName)
	asnPath = filepath.Join(dir, ASNDBName)
	if err := writeTree(cityPath, city); err != nil {
		return "", "", err
	}
	if err := writeTree(asnPath, asn); err != nil {
		return "", "", err
	}
	return cityPath, asnPath, nil
}

func writeTree(path string, t *mmdbwriter.Tree) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("geoip: %w", err)
	}
	if _, err := t.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("geoip: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("geoip: close %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
