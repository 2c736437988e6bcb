package metainfo

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	hexV1  = "c0fda1edafdbdbb96443424e0b3899af7159d10e"
	b32V1  = "YD62D3NP3PN3SZCDIJHAWOEZV5YVTUIO" // base32 of hexV1
	hexV2  = "95e04d0c4bad94ab206efa884666fd89777dbe4f7bd9945af1829037a85c6192"
	magnV1 = "magnet:?xt=urn:btih:" + hexV1
	magnV2 = "magnet:?xt=urn:btmh:1220" + hexV2
)

func TestParseMagnet(t *testing.T) {
	v1, _ := ParseHash(hexV1)
	cases := []struct {
		name, uri string
		check     func(t *testing.T, m *Magnet)
	}{
		{"hex btih", magnV1, func(t *testing.T, m *Magnet) {
			if m.InfoHashV1 != v1 || !m.InfoHashV2.IsZero() || m.Hash() != v1 || m.Label() != hexV1 {
				t.Errorf("%+v", m)
			}
		}},
		{"upper-case hex", "magnet:?xt=urn:btih:" + strings.ToUpper(hexV1), func(t *testing.T, m *Magnet) {
			if m.InfoHashV1 != v1 {
				t.Errorf("%s", m.InfoHashV1)
			}
		}},
		{"base32 btih", "MAGNET:?xt=urn:btih:" + b32V1, func(t *testing.T, m *Magnet) {
			if m.InfoHashV1 != v1 {
				t.Errorf("%s", m.InfoHashV1)
			}
		}},
		{"lower-case base32", "magnet:?xt=urn:btih:" + strings.ToLower(b32V1), func(t *testing.T, m *Magnet) {
			if m.InfoHashV1 != v1 {
				t.Errorf("%s", m.InfoHashV1)
			}
		}},
		{"btmh", magnV2, func(t *testing.T, m *Magnet) {
			if m.InfoHashV2.String() != hexV2 || !m.InfoHashV1.IsZero() || m.Hash().String() != hexV2[:40] || m.Label() != hexV2 {
				t.Errorf("%+v", m)
			}
		}},
		{"hybrid", magnV1 + "&xt=urn:btmh:1220" + hexV2, func(t *testing.T, m *Magnet) {
			hs := m.Hashes()
			if len(hs) != 2 || hs[0] != v1 || hs[1].String() != hexV2[:40] {
				t.Errorf("%v", hs)
			}
		}},
		{"everything", magnV1 + "&dn=My+File%20x&xl=1234&tr=udp%3A%2F%2Ft.example%3A80&tr=http://u.example/a&tr=udp%3A%2F%2Ft.example%3A80&tr=%20&tr.1=http://v.example/&x.pe=127.0.0.1:6881&x.pe=[::1]:6882&x.pe=Peer.Example:7000&xt=urn:sha1:ABC&so=0", func(t *testing.T, m *Magnet) {
			if m.Name != "My File x" || m.Length != 1234 {
				t.Errorf("dn %q xl %d", m.Name, m.Length)
			}
			if strings.Join(m.Trackers, " ") != "udp://t.example:80 http://u.example/a http://v.example/" {
				t.Errorf("tr %q", m.Trackers)
			}
			want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6881"), netip.MustParseAddrPort("[::1]:6882")}
			if len(m.Peers) != 2 || m.Peers[0] != want[0] || m.Peers[1] != want[1] {
				t.Errorf("peers %v", m.Peers)
			}
			if len(m.PeerHosts) != 1 || m.PeerHosts[0] != "peer.example:7000" {
				t.Errorf("peer hosts %v", m.PeerHosts)
			}
		}},
		{"mapped v4 peer", magnV1 + "&x.pe=[::ffff:127.0.0.2]:1", func(t *testing.T, m *Magnet) {
			if m.Peers[0] != netip.MustParseAddrPort("127.0.0.2:1") {
				t.Errorf("peers %v", m.Peers)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMagnet(c.uri)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, m)
			// String round-trips.
			again, err := ParseMagnet(m.String())
			if err != nil {
				t.Fatalf("reparse %q: %v", m.String(), err)
			}
			if again.String() != m.String() {
				t.Errorf("round trip %q != %q", again.String(), m.String())
			}
		})
	}
}

func TestParseMagnetErrors(t *testing.T) {
	cases := []struct{ name, uri, want string }{
		{"not a magnet", "http://example.com/?xt=urn:btih:" + hexV1, "does not start with"},
		{"empty", "", "does not start with"},
		{"no xt", "magnet:?dn=x", "xt: no urn:btih or urn:btmh"},
		{"other xt only", "magnet:?xt=urn:sha1:abc", "xt: no urn:btih"},
		{"short btih", "magnet:?xt=urn:btih:abc", "btih: want 40 hex or 32 base32 characters, got 3"},
		{"bad hex", "magnet:?xt=urn:btih:" + strings.Repeat("z", 40), "btih: invalid hex"},
		{"bad base32", "magnet:?xt=urn:btih:" + strings.Repeat("1", 32), "btih: invalid base32"},
		{"zero btih", "magnet:?xt=urn:btih:" + strings.Repeat("0", 40), "all-zero"},
		{"two btih", magnV1 + "&xt=urn:btih:" + strings.Repeat("1", 40), "two different urn:btih"},
		{"btmh wrong code", "magnet:?xt=urn:btmh:1320" + hexV2, `multihash prefix "1320"`},
		{"btmh short", "magnet:?xt=urn:btmh:1220abcd", "btmh: want"},
		{"btmh bad hex", "magnet:?xt=urn:btmh:1220" + strings.Repeat("x", 64), "btmh: invalid hex"},
		{"bad xl", magnV1 + "&xl=-5", "xl \"-5\""},
		{"x.pe no port", magnV1 + "&x.pe=127.0.0.1", "x.pe \"127.0.0.1\""},
		{"x.pe port 0", magnV1 + "&x.pe=127.0.0.1:0", "x.pe \"127.0.0.1:0\": port 0"},
		{"x.pe bad port", magnV1 + "&x.pe=host:99999", "port must be 1-65535"},
		{"x.pe bad host", magnV1 + "&x.pe=bad%20host:80", "invalid host name"},
		{"bad escape", magnV1 + "&dn=%zz", "magnet: query"},
		{"too long", "magnet:?xt=urn:btih:" + hexV1 + "&dn=" + strings.Repeat("a", MaxMagnetLength), "byte limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMagnet(c.uri)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseMagnetsFile(t *testing.T) {
	data := strings.Join([]string{
		"# watched torrents",
		"",
		magnV1,
		"   ",
		"magnet:?xt=urn:btih:nothex",
		"  " + magnV2 + "  ",
		"#" + magnV1,
		"not a magnet\r",
	}, "\n")
	lines, errs := ParseMagnets([]byte(data), "magnets.txt")
	if len(lines) != 2 || lines[0].Line != 3 || lines[1].Line != 6 {
		t.Errorf("lines %+v", lines)
	}
	if len(errs) != 2 {
		t.Fatalf("errors %v", errs)
	}
	if !strings.HasPrefix(errs[0].Error(), "magnets.txt:5: magnet: xt") || !strings.HasPrefix(errs[1].Error(), "magnets.txt:8: ") {
		t.Errorf("errors %v", errs)
	}

	path := filepath.Join(t.TempDir(), "m.txt")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	lines, errs, err := LoadMagnets(path)
	if err != nil || len(lines) != 2 || len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), path+":5: ") {
		t.Errorf("LoadMagnets: %v %v %v", lines, errs, err)
	}
	if _, _, err := LoadMagnets(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing file: no error")
	}
}
