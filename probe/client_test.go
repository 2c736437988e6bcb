package probe

import "testing"

func pid(s string) (id [20]byte) {
	copy(id[:], s)
	return id
}

func TestDecodePeerID(t *testing.T) {
	cases := []struct{ id, family, version string }{
		{"-LT20A0-abcdefghijkl", "libtorrent (Rasterbar)", "2.0.10"},
		{"-LT1234-abcdefghijkl", "libtorrent (Rasterbar)", "1.2.3.4"},
		{"-qB4560-abcdefghijkl", "qBittorrent", "4.5.6"},
		{"-TR300Z-abcdefghijkl", "Transmission", "3.00"},
		{"-TR2940-abcdefghijkl", "Transmission", "2.94"},
		{"-TR4060-abcdefghijkl", "Transmission", "4.0.6"},
		{"-DE2110-abcdefghijkl", "Deluge", "2.1.1"},
		{"-UT355W-abcdefghijkl", "µTorrent", "3.5.5"},
		{"-BC0200-abcdefghijkl", "BitComet", "0.2.0"},
		{"-lt0D80-abcdefghijkl", "libTorrent (rakshasa)", "0.13.8"},
		{"-GT0003-abcdefghijkl", "anacrolix/torrent", "0.0.0.3"},
		{"-XL0012-abcdefghijkl", "Xunlei", "0.0.1.2"},
		{"-SD0100-abcdefghijkl", "Xunlei", "0.1.0"},
		{"A2-1-36-0-abcdefghij", "aria2", "1.36.0"},
		{"M7-4-3--abcdefghijkl", "BitTorrent (Mainline)", "7.4.3"},
		{"T03I-----abcdefghijk", "BitTornado", "0.3.18"},
		{"S58B-----abcdefghijk", "Shadow", "5.8.11"},
		{"exbc\x00\x4cabcdefghijklmn", "BitComet", "0.76"},
		{"-ZZ1234-abcdefghijkl", "", ""},
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "", ""},
		{"--------------------", "", ""},
		{"Tabc", "", ""},
	}
	for _, c := range cases {
		f, v := DecodePeerID(pid(c.id))
		if f != c.family || v != c.version {
			t.Errorf("%q: got %q %q, want %q %q", c.id, f, v, c.family, c.version)
		}
	}
}

func FuzzDecodePeerID(f *testing.F) {
	f.Add([]byte("-LT20A0-abcdefghijkl"))
	f.Add([]byte("A2-1-36-0-abcdefghij"))
	f.Add([]byte("T03I-----abcdefghijk"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var id [20]byte
		copy(id[:], b)
		DecodePeerID(id)
	})
}
