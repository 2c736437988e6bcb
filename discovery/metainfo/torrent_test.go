package metainfo

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zeebo/bencode"
)

// enc bencodes v (keys sorted) and fails the test on error.
func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bencode.EncodeBytes(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pieces(n int) string { return strings.Repeat("0123456789abcdefghij", n) }

// v1Info is a valid single-file v1 info dictionary: 3 pieces of 16 KiB.
func v1Info() map[string]any {
	return map[string]any{
		"name":         "file.bin",
		"piece length": 16384,
		"length":       40000,
		"pieces":       pieces(3),
	}
}

func torrentWith(t testing.TB, info map[string]any, extra map[string]any) []byte {
	t.Helper()
	top := map[string]any{"info": info}
	for k, v := range extra {
		top[k] = v
	}
	return enc(t, top)
}

func TestParseV1(t *testing.T) {
	data := torrentWith(t, v1Info(), map[string]any{
		"announce":      "http://a.example/announce",
		"announce-list": []any{[]any{" udp://b.example:80 ", "", "   ", "udp://b.example:80"}, []any{"http://a.example/announce", "http://c.example/x"}, []any{}},
		"comment":       "hello",
		"created by":    "test",
		"creation date": 1700000000,
		"url-list":      "http://seed.example/file.bin",
		"nodes":         []any{[]any{"127.0.0.1", 6881}, []any{"::1", 6882}, []any{"bad"}},
	})
	tor, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if tor.Kind != KindV1 || tor.Pieces != 3 || tor.PieceLength != 16384 || tor.TotalLength != 40000 || tor.Name != "file.bin" {
		t.Errorf("got kind %s pieces %d pl %d total %d name %q", tor.Kind, tor.Pieces, tor.PieceLength, tor.TotalLength, tor.Name)
	}
	info := enc(t, v1Info())
	if tor.InfoHashV1 != Hash(sha1.Sum(info)) || !tor.InfoHashV2.IsZero() {
		t.Errorf("hashes %s %s", tor.InfoHashV1, tor.InfoHashV2)
	}
	// announce-list replaces announce; trimmed, de-duplicated across tiers, empty tiers dropped.
	want := [][]string{{"udp://b.example:80"}, {"http://a.example/announce", "http://c.example/x"}}
	if !equalTiers(tor.Trackers, want) {
		t.Errorf("trackers %q, want %q", tor.Trackers, want)
	}
	if tor.Comment != "hello" || tor.CreatedBy != "test" || tor.CreationDate.Unix() != 1700000000 {
		t.Errorf("comment %q created by %q date %v", tor.Comment, tor.CreatedBy, tor.CreationDate)
	}
	if len(tor.URLList) != 1 || len(tor.Nodes) != 2 || tor.Nodes[1] != "[::1]:6882" {
		t.Errorf("url-list %q nodes %q", tor.URLList, tor.Nodes)
	}
	if len(tor.Warnings) != 1 || !strings.Contains(tor.Warnings[0], "nodes[2]") {
		t.Errorf("warnings %q", tor.Warnings)
	}
	if tor.Label() != tor.InfoHashV1.String() || tor.HexV2() != "" {
		t.Errorf("label %s hexv2 %q", tor.Label(), tor.HexV2())
	}
	m := tor.Magnet().String()
	if !strings.HasPrefix(m, "magnet:?xt=urn:btih:"+tor.HexV1()+"&dn=file.bin&xl=40000&tr=udp%3A%2F%2Fb.example%3A80&tr=") {
		t.Errorf("magnet %s", m)
	}
}

func equalTiers(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalPath(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestParseAnnounceOnlyAndPrivate(t *testing.T) {
	info := v1Info()
	info["private"] = 1
	tor, err := Parse(torrentWith(t, info, map[string]any{"announce": "\t udp://t.example/announce", "announce-list": "garbage"}))
	if err != nil {
		t.Fatal(err)
	}
	if !tor.Private {
		t.Error("private flag lost")
	}
	if !equalTiers(tor.Trackers, [][]string{{"udp://t.example/announce"}}) {
		t.Errorf("trackers %q", tor.Trackers)
	}
	if len(tor.Warnings) != 1 || !strings.Contains(tor.Warnings[0], "announce-list") {
		t.Errorf("warnings %q", tor.Warnings)
	}
}

func TestTrackerLimit(t *testing.T) {
	var tier []any
	for i := range MaxTrackers + 10 {
		tier = append(tier, "http://t.example/"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+strings.Repeat("y", i))
	}
	tor, err := Parse(torrentWith(t, v1Info(), map[string]any{"announce-list": []any{tier}}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tor.Trackers[0]); n != MaxTrackers {
		t.Errorf("%d trackers kept, want %d", n, MaxTrackers)
	}
}

func TestParseMultiFileAndPad(t *testing.T) {
	info := map[string]any{
		"name":         "dir",
		"piece length": 16384,
		"files": []any{
			map[string]any{"length": 100, "path": []any{"a", "b.txt"}},
			map[string]any{"length": 16284, "path": []any{".pad", "16284"}, "attr": "p"},
			map[string]any{"length": 10, "path": []any{"_____padding_file_0"}},
			map[string]any{"attr": "l", "path": []any{"link"}, "symlink path": []any{"a"}},
			map[string]any{"length": 5, "path.utf-8": []any{"ü.txt"}, "path": []any{"u.txt"}},
		},
		"pieces": pieces(2),
	}
	tor, err := Parse(torrentWith(t, info, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(tor.Files) != 5 || !tor.Files[1].Pad || !tor.Files[2].Pad || tor.Files[0].Pad || tor.Files[3].Length != 0 {
		t.Errorf("files %+v", tor.Files)
	}
	if tor.TotalLength != 105 || tor.Pieces != 2 {
		t.Errorf("total %d pieces %d", tor.TotalLength, tor.Pieces)
	}
	if got := tor.Files[0].PathString(); got != "a/b.txt" {
		t.Errorf("path %q", got)
	}
	if got := tor.Files[4].PathString(); got != "ü.txt" {
		t.Errorf("utf-8 path %q", got)
	}
}

// v2Info is a valid v2 info dictionary: two files, 1 + 3 pieces of 16 KiB.
func v2Info() map[string]any {
	root := strings.Repeat("r", 32)
	return map[string]any{
		"name":         "d",
		"meta version": 2,
		"piece length": 16384,
		"file tree": map[string]any{
			"b.bin": map[string]any{"": map[string]any{"length": 100, "pieces root": root}},
			"sub": map[string]any{
				"a.bin":  map[string]any{"": map[string]any{"length": 40000, "pieces root": root}},
				"empty":  map[string]any{"": map[string]any{"length": 0}},
				"nested": map[string]any{"x": map[string]any{"": map[string]any{"length": 1, "pieces root": root}}},
			},
		},
	}
}

func TestParseV2(t *testing.T) {
	tor, err := Parse(torrentWith(t, v2Info(), map[string]any{"piece layers": map[string]any{strings.Repeat("r", 32): strings.Repeat("h", 96)}}))
	if err != nil {
		t.Fatal(err)
	}
	info := enc(t, v2Info())
	if tor.Kind != KindV2 || tor.InfoHashV2 != HashV2(sha256.Sum256(info)) || !tor.InfoHashV1.IsZero() {
		t.Fatalf("kind %s v1 %s v2 %s", tor.Kind, tor.InfoHashV1, tor.InfoHashV2)
	}
	if tor.InfoSHA1 != Hash(sha1.Sum(info)) {
		t.Error("InfoSHA1 not the SHA-1 of the info bytes")
	}
	// Each file counts its own pieces: 1 + 3 + 0 + 1.
	if tor.Pieces != 5 || tor.TotalLength != 40101 {
		t.Errorf("pieces %d total %d", tor.Pieces, tor.TotalLength)
	}
	var paths []string
	for _, f := range tor.Files {
		paths = append(paths, f.PathString())
	}
	if got := strings.Join(paths, ","); got != "b.bin,sub/a.bin,sub/empty,sub/nested/x" {
		t.Errorf("file order %s", got)
	}
	if tor.Hash() != tor.InfoHashV2.Truncate() || tor.Label() != tor.InfoHashV2.String() || len(tor.Hashes()) != 1 {
		t.Errorf("hash %s label %s", tor.Hash(), tor.Label())
	}
	if m := tor.Magnet().String(); !strings.HasPrefix(m, "magnet:?xt=urn:btmh:1220"+tor.HexV2()+"&dn=d") {
		t.Errorf("magnet %s", m)
	}
}

// hybridInfo is a valid hybrid: one 40000-byte file padded to 3 pieces, then a 100-byte file.
func hybridInfo() map[string]any {
	info := v2Info()
	info["file tree"] = map[string]any{
		"a.bin": map[string]any{"": map[string]any{"length": 40000, "pieces root": strings.Repeat("r", 32)}},
		"b.bin": map[string]any{"": map[string]any{"length": 100, "pieces root": strings.Repeat("s", 32)}},
	}
	info["files"] = []any{
		map[string]any{"length": 40000, "path": []any{"a.bin"}},
		map[string]any{"length": 3*16384 - 40000, "path": []any{".pad", "9152"}, "attr": "p"},
		map[string]any{"length": 100, "path": []any{"b.bin"}},
	}
	info["pieces"] = pieces(4)
	return info
}

func TestParseHybrid(t *testing.T) {
	tor, err := Parse(torrentWith(t, hybridInfo(), nil))
	if err != nil {
		t.Fatal(err)
	}
	info := enc(t, hybridInfo())
	if tor.Kind != KindHybrid || tor.InfoHashV1 != Hash(sha1.Sum(info)) || tor.InfoHashV2 != HashV2(sha256.Sum256(info)) {
		t.Fatalf("kind %s", tor.Kind)
	}
	hs := tor.Hashes()
	if len(hs) != 2 || hs[0] != tor.InfoHashV1 || hs[1] != tor.InfoHashV2.Truncate() {
		t.Errorf("hashes %v", hs)
	}
	if tor.Pieces != 4 || tor.TotalLength != 40100 {
		t.Errorf("pieces %d total %d", tor.Pieces, tor.TotalLength)
	}
	m := tor.Magnet()
	if m.InfoHashV1 != tor.InfoHashV1 || m.InfoHashV2 != tor.InfoHashV2 {
		t.Error("magnet lacks a hash")
	}
}

// TestParseErrors: each broken torrent fails with an error naming the field at fault.
func TestParseErrors(t *testing.T) {
	mod := func(base func() map[string]any, f func(map[string]any)) map[string]any {
		m := base()
		f(m)
		return m
	}
	cases := []struct {
		name string
		info map[string]any
		want string
	}{
		{"negative piece length", mod(v1Info, func(m map[string]any) { m["piece length"] = -16384 }), "info.piece length: must be > 0, got -16384"},
		{"huge piece length", mod(v1Info, func(m map[string]any) { m["piece length"] = 1 << 30 }), "info.piece length: must be at most"},
		{"piece length string", mod(v1Info, func(m map[string]any) { m["piece length"] = "16384" }), "info.piece length: want an integer, got a string"},
		{"no piece length", mod(v1Info, func(m map[string]any) { delete(m, "piece length") }), "info.piece length: missing"},
		{"pieces not multiple of 20", mod(v1Info, func(m map[string]any) { m["pieces"] = pieces(3)[:59] }), "info.pieces: length 59 is not a multiple of 20"},
		{"too few pieces", mod(v1Info, func(m map[string]any) { m["pieces"] = pieces(2) }), "info.pieces: 2 pieces, but total length 40000 at piece length 16384 needs 3"},
		{"too many pieces", mod(v1Info, func(m map[string]any) { m["pieces"] = pieces(4) }), "needs 3"},
		{"negative length", mod(v1Info, func(m map[string]any) { m["length"] = -1 }), "info.length: must be >= 0, got -1"},
		{"no length", mod(v1Info, func(m map[string]any) { delete(m, "length") }), "info: neither length nor files"},
		{"zero length", mod(v1Info, func(m map[string]any) { m["length"] = 0; m["pieces"] = "" }), "total length 0"},
		{"huge length", mod(v1Info, func(m map[string]any) { m["length"] = int64(1) << 50 }), "info.length: must be at most"},
		{"no pieces, no v2", mod(v1Info, func(m map[string]any) { delete(m, "pieces") }), "info: neither v1 pieces nor meta version 2"},
		{"name a list", mod(v1Info, func(m map[string]any) { m["name"] = []any{"x"} }), "info.name: want a string, got a list"},
		{"files not a list", mod(v1Info, func(m map[string]any) { m["files"] = "x" }), "info.files: want a list, got a string"},
		{"files empty", mod(v1Info, func(m map[string]any) { m["files"] = []any{} }), "info.files: empty list"},
		{"file not a dict", mod(v1Info, func(m map[string]any) { m["files"] = []any{1} }), "info.files[0]: want a dictionary, got an integer"},
		{"file negative", mod(v1Info, func(m map[string]any) {
			m["files"] = []any{map[string]any{"length": -5, "path": []any{"a"}}}
		}), "info.files[0].length: must be >= 0, got -5"},
		{"file no path", mod(v1Info, func(m map[string]any) { m["files"] = []any{map[string]any{"length": 5}} }), "info.files[0].path: missing"},
		{"file path int", mod(v1Info, func(m map[string]any) {
			m["files"] = []any{map[string]any{"length": 5, "path": []any{"a", 3}}}
		}), "info.files[0].path[1]: want a string, got an integer"},
		{"meta version 3", mod(v2Info, func(m map[string]any) { m["meta version"] = 3 }), "info.meta version: unsupported version 3"},
		{"v2 no file tree", mod(v2Info, func(m map[string]any) { delete(m, "file tree") }), "info.file tree: missing"},
		{"v2 piece length not power of two", mod(v2Info, func(m map[string]any) { m["piece length"] = 3 * 16384 }), "power of two of at least 16384, got 49152"},
		{"v2 piece length too small", mod(v2Info, func(m map[string]any) { m["piece length"] = 8192 }), "got 8192"},
		{"v2 empty tree", mod(v2Info, func(m map[string]any) { m["file tree"] = map[string]any{} }), "info.file tree: holds no files"},
		{"v2 file negative", mod(v2Info, func(m map[string]any) {
			m["file tree"] = map[string]any{"a": map[string]any{"": map[string]any{"length": -1}}}
		}), "info.file tree/a.length: must be >= 0, got -1"},
		{"v2 short root", mod(v2Info, func(m map[string]any) {
			m["file tree"] = map[string]any{"a": map[string]any{"": map[string]any{"length": 1, "pieces root": "short"}}}
		}), "info.file tree/a.pieces root: want 32 bytes, got 5"},
		{"v2 missing root", mod(v2Info, func(m map[string]any) {
			m["file tree"] = map[string]any{"a": map[string]any{"": map[string]any{"length": 1}}}
		}), "info.file tree/a.pieces root: missing"},
		{"v2 node not dict", mod(v2Info, func(m map[string]any) { m["file tree"] = map[string]any{"a": 1} }), "info.file tree/a: want a dictionary, got an integer"},
		{"v2 file and dir", mod(v2Info, func(m map[string]any) {
			m["file tree"] = map[string]any{"a": map[string]any{"": map[string]any{"length": 0}, "b": map[string]any{}}}
		}), "info.file tree/a: is both a file and a directory"},
		{"hybrid mismatch length", mod(hybridInfo, func(m map[string]any) {
			m["files"].([]any)[2] = map[string]any{"length": 101, "path": []any{"b.bin"}}
		}), "does not match v2 file"},
		{"hybrid unaligned", mod(hybridInfo, func(m map[string]any) {
			m["files"] = []any{m["files"].([]any)[0], m["files"].([]any)[2]}
			m["pieces"] = pieces(3)
		}), "not on a piece boundary"},
		{"hybrid extra v1 file", mod(hybridInfo, func(m map[string]any) {
			m["files"] = append(m["files"].([]any), map[string]any{"length": 0, "path": []any{"c"}})
		}), "more files than the v2 file tree"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(torrentWith(t, c.info, nil))
			if err == nil {
				t.Fatalf("parsed, want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestTreeDepthLimit(t *testing.T) {
	leaf := map[string]any{"": map[string]any{"length": 1, "pieces root": strings.Repeat("r", 32)}}
	node := leaf
	for range MaxTreeDepth + 1 {
		node = map[string]any{"d": node}
	}
	info := v2Info()
	info["file tree"] = node
	_, err := Parse(torrentWith(t, info, nil))
	if err == nil || !strings.Contains(err.Error(), "deeper than 64 levels") {
		t.Fatalf("err = %v", err)
	}
}

// TestInfoBytesAsTheyStand: the hash is over the info bytes in the file, never re-encoded,
// and the span is found by structure, not by searching for "4:info".
func TestInfoBytesAsTheyStand(t *testing.T) {
	// Unsorted keys inside info, a decoy "4:info" inside a string before the real key, and
	// trailing garbage after the document.
	info := "d4:name8:file.bin6:lengthi40000e12:piece lengthi16384e6:pieces60:" + pieces(3) + "e"
	data := "d7:comment17:4:infod4:xxxxi1ee4:info" + info + "e\n"
	tor, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if tor.InfoHashV1 != Hash(sha1.Sum([]byte(info))) {
		t.Error("v1 hash is not over the info bytes as they stand")
	}
	if string(tor.Info) != info {
		t.Errorf("info bytes %q", tor.Info)
	}
	canonical := enc(t, v1Info())
	if string(canonical) == info {
		t.Fatal("test needs unsorted keys")
	}
	if len(tor.Warnings) != 1 || !strings.Contains(tor.Warnings[0], "trailing") {
		t.Errorf("warnings %q", tor.Warnings)
	}
}

func TestBencodeStrictness(t *testing.T) {
	info := "d6:lengthi40000e4:name8:file.bin12:piece lengthi16384e6:pieces60:" + pieces(3) + "e"
	cases := []struct{ name, data, want string }{
		{"empty", "", "empty input"},
		{"not a dict", "li1ee", "top level is not a dictionary"},
		{"no info", "d3:fooi1ee", "info: missing"},
		{"info a list", "d4:infoli1eee", "info: want a dictionary"},
		{"duplicate info", "d4:info" + info + "4:info" + info + "e", `duplicate dictionary key "info"`},
		{"duplicate after unsorted", "d4:infod1:bi1e1:ai1e1:bi2eee", `duplicate dictionary key "b"`},
		{"duplicate in nested info dict", "d4:infod1:ad1:xi1e1:xi2eeee", `duplicate dictionary key "x"`},
		{"leading zero", "d4:infod1:ai01eee", "non-canonical integer"},
		{"minus zero", "d4:infod1:ai-0eee", "non-canonical integer"},
		{"plus sign", "d4:infod1:ai+1eee", "invalid integer"},
		{"empty int", "d4:infod1:aieee", "empty integer"},
		{"int overflow", "d4:infod1:ai9223372036854775808eee", "does not fit"},
		{"long int", "d4:infod1:ai12345678901234567890eee", "does not fit"},
		{"string past end", "d4:infod1:a99:xee", "runs past the end"},
		{"string length leading zero", "d4:infod02:abi1eee", "leading zero"},
		{"unterminated", "d4:infod1:ai1e", "unterminated"},
		{"key not string", "di1ei2ee", "key is not a string"},
		{"bad byte", "d4:infoxe", "unexpected byte"},
		{"deep nesting", "d4:info" + strings.Repeat("l", 200) + strings.Repeat("e", 200) + "e", "nesting deeper than 100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// TestDuplicateKeysOutsideInfo: outside the info dictionary a repeated key is tolerated
// (the last value wins, as in most decoders) and reported as a warning.
func TestDuplicateKeysOutsideInfo(t *testing.T) {
	info := string(enc(t, v1Info()))
	data := "d7:comment1:a7:comment1:b4:info" + info + "e"
	tor, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if tor.Comment != "b" || len(tor.Warnings) != 1 || !strings.Contains(tor.Warnings[0], "1 repeated dictionary keys") {
		t.Errorf("comment %q warnings %q", tor.Comment, tor.Warnings)
	}
	// The same repetition inside the info dictionary of BEP 9 metadata is refused.
	dup := []byte("d1:ai1e1:ai1ee")
	if _, err := FromInfo(dup, &Magnet{InfoHashV1: sha1.Sum(dup)}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.torrent")
	if err := os.WriteFile(bad, []byte("d4:infod12:piece lengthi-16384eee"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if err == nil || err.Error() != bad+": info.piece length: must be > 0, got -16384" {
		t.Errorf("err = %v", err)
	}
	_, err = Load(filepath.Join(dir, "missing.torrent"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.torrent") {
		t.Errorf("err = %v", err)
	}
	big := filepath.Join(dir, "big.torrent")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxTorrentFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Errorf("err = %v", err)
	}
}

func TestFromInfo(t *testing.T) {
	info := enc(t, hybridInfo())
	v1 := Hash(sha1.Sum(info))
	v2 := HashV2(sha256.Sum256(info))
	cases := []struct {
		name string
		m    *Magnet
		want string // "" = success
	}{
		{"btih", &Magnet{InfoHashV1: v1, Name: "n", Trackers: []string{"udp://a", "udp://a", "udp://b"}}, ""},
		{"btmh", &Magnet{InfoHashV2: v2}, ""},
		{"both", &Magnet{InfoHashV1: v1, InfoHashV2: v2}, ""},
		{"wrong btih", &Magnet{InfoHashV1: Hash{1}}, "does not match the magnet's btih"},
		{"wrong btmh", &Magnet{InfoHashV1: v1, InfoHashV2: HashV2{1}}, "does not match the magnet's btmh"},
		{"no hash", &Magnet{}, "no magnet hash"},
		{"nil", nil, "no magnet hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tor, err := FromInfo(info, c.m)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tor.InfoHashV1 != v1 || tor.InfoHashV2 != v2 || tor.Kind != KindHybrid {
				t.Errorf("hashes %s %s", tor.InfoHashV1, tor.InfoHashV2)
			}
			if c.name == "btih" && (!equalTiers(tor.Trackers, [][]string{{"udp://a", "udp://b"}}) || tor.Name != "d") {
				t.Errorf("trackers %q name %q", tor.Trackers, tor.Name)
			}
		})
	}
	// A btih naming a v2-only info dictionary is not a hash peers use.
	v2only := enc(t, v2Info())
	if _, err := FromInfo(v2only, &Magnet{InfoHashV1: sha1.Sum(v2only)}); err == nil || !strings.Contains(err.Error(), "v2-only") {
		t.Errorf("err = %v", err)
	}
	// Trailing bytes change the hash; refuse them.
	trailing := append(bytes.Clone(info), 'x')
	if _, err := FromInfo(trailing, &Magnet{InfoHashV1: sha1.Sum(trailing)}); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("err = %v", err)
	}
}

func benchmarkParse(b *testing.B, name string) {
	data, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseV1(b *testing.B)     { benchmarkParse(b, "real/continuum.torrent") }
func BenchmarkParseHybrid(b *testing.B) { benchmarkParse(b, "libtorrent/v2_hybrid.torrent") }

func BenchmarkParseMagnet(b *testing.B) {
	s := magnV1 + "&xt=urn:btmh:1220" + hexV2 + "&dn=name&tr=udp%3A%2F%2F127.0.0.1%3A6969&x.pe=127.0.0.1:6881"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMagnet(s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestItemLimit: a document of millions of tiny values is refused by the strict scan
// before the decoder builds them.
func TestItemLimit(t *testing.T) {
	data := "d4:infol" + strings.Repeat("le", MaxItems) + "ee"
	_, err := Parse([]byte(data))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
}
