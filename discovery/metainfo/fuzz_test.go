package metainfo

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseTorrent: no input panics, and whatever parses keeps the invariants the rest of
// btda relies on. Seeded with every corpus torrent.
func FuzzParseTorrent(f *testing.F) {
	err := filepath.WalkDir(corpusDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".torrent") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("d4:infod4:name1:a12:piece lengthi16384e6:lengthi1e6:pieces20:01234567890123456789ee"))
	f.Add([]byte("d4:infod12:meta versioni2e12:piece lengthi16384e9:file treed1:ad0:d6:lengthi1e11:pieces root32:0123456789012345678901234567890100eeeeee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tor, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if tor.Pieces <= 0 || tor.Pieces > MaxPieces || tor.PieceLength <= 0 || tor.PieceLength > MaxPieceLength || tor.TotalLength <= 0 {
			t.Fatalf("pieces %d piece length %d total %d", tor.Pieces, tor.PieceLength, tor.TotalLength)
		}
		if len(tor.Hashes()) == 0 || tor.Hash().IsZero() {
			t.Fatal("no wire hash")
		}
		if _, err := FromInfo(tor.Info, tor.Magnet()); err != nil {
			t.Fatalf("FromInfo of own info: %v", err)
		}
		if _, err := ParseMagnet(tor.Magnet().String()); err != nil {
			t.Fatalf("own magnet: %v", err)
		}
	})
}

// FuzzParseMagnet: no input panics, and a parsed magnet survives String and re-parse.
func FuzzParseMagnet(f *testing.F) {
	for _, s := range []string{
		magnV1,
		magnV2,
		magnV1 + "&xt=urn:btmh:1220" + hexV2 + "&dn=x&tr=udp%3A%2F%2F127.0.0.1%3A1&x.pe=127.0.0.1:1&x.pe=[::1]:2&x.pe=host:3&xl=5",
		"magnet:?xt=urn:btih:" + b32V1,
		"magnet:?xt=urn:btih:abc",
		"magnet:?xt=urn:btmh:1320" + hexV2,
		"magnet:?dn=%zz",
		"magnet:?x.pe=:::&xt=urn:btih:" + hexV1,
		"magnet:?",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMagnet(s)
		if err != nil {
			return
		}
		if m.Hash().IsZero() {
			t.Fatal("parsed magnet without a hash")
		}
		again, err := ParseMagnet(m.String())
		if err != nil {
			t.Fatalf("reparse %q: %v", m.String(), err)
		}
		if again.InfoHashV1 != m.InfoHashV1 || again.InfoHashV2 != m.InfoHashV2 || len(again.Peers) != len(m.Peers) {
			t.Fatalf("round trip changed %q into %q", m.String(), again.String())
		}
	})
}
