package metainfo

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const corpusDir = "../../testdata/torrents"

type manifestRow struct {
	file, expect, v1, v2 string
	pieces, pieceLength  int64
}

func readManifest(t testing.TB) []manifestRow {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []manifestRow
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, "\t")
		if len(cols) != 6 {
			t.Fatalf("MANIFEST.tsv:%d: %d columns, want 6", line, len(cols))
		}
		r := manifestRow{file: cols[0], expect: cols[1], v1: cols[2], v2: cols[3]}
		if cols[4] != "-" {
			r.pieces, _ = strconv.ParseInt(cols[4], 10, 64)
			r.pieceLength, _ = strconv.ParseInt(cols[5], 10, 64)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 100 {
		t.Fatalf("MANIFEST.tsv: only %d rows", len(rows))
	}
	return rows
}

// TestManifest checks every corpus torrent against MANIFEST.tsv: load rows load with exactly
// the listed hashes, piece count and piece length; reject rows fail with an error naming
// the file; either rows never panic, and when they load their figures match too.
func TestManifest(t *testing.T) {
	for _, r := range readManifest(t) {
		t.Run(r.file, func(t *testing.T) {
			path := filepath.Join(corpusDir, r.file)
			tor, err := Load(path)
			switch r.expect {
			case "reject":
				if err == nil {
					t.Fatalf("loaded (v1 %s, %d pieces), want an error", tor.HexV1(), tor.Pieces)
				}
				if !strings.HasPrefix(err.Error(), path+": ") {
					t.Errorf("error %q does not start with the path", err)
				}
				t.Logf("rejected: %v", err)
				return
			case "load":
				if err != nil {
					t.Fatalf("want load, got %v", err)
				}
			case "either":
				if err != nil {
					t.Logf("rejected (allowed): %v", err)
					return
				}
			default:
				t.Fatalf("unknown expectation %q", r.expect)
			}
			// The MANIFEST's v1 column is SHA-1 over the info bytes, a wire hash only when the
			// torrent has v1 pieces.
			if got := tor.InfoSHA1.String(); got != r.v1 {
				t.Errorf("SHA-1 of info = %s, want %s", got, r.v1)
			}
			if tor.Kind == KindV2 {
				if tor.HexV1() != "" {
					t.Errorf("v2-only torrent has a v1 wire hash %s", tor.HexV1())
				}
			} else if tor.HexV1() != r.v1 {
				t.Errorf("v1 = %q, want %s", tor.HexV1(), r.v1)
			}
			wantV2 := r.v2
			if wantV2 == "-" {
				wantV2 = ""
			}
			if got := tor.HexV2(); got != wantV2 {
				t.Errorf("v2 = %q, want %q", got, wantV2)
			}
			if int64(tor.Pieces) != r.pieces {
				t.Errorf("pieces = %d, want %d", tor.Pieces, r.pieces)
			}
			if tor.PieceLength != r.pieceLength {
				t.Errorf("piece length = %d, want %d", tor.PieceLength, r.pieceLength)
			}
			checkInvariants(t, tor)
		})
	}
}

// checkInvariants holds for every torrent that loads.
func checkInvariants(t *testing.T, tor *Torrent) {
	t.Helper()
	if tor.Pieces <= 0 || tor.PieceLength <= 0 || tor.TotalLength <= 0 {
		t.Errorf("pieces %d, piece length %d, total %d: want all > 0", tor.Pieces, tor.PieceLength, tor.TotalLength)
	}
	if len(tor.Files) == 0 {
		t.Error("no files")
	}
	hs := tor.Hashes()
	if len(hs) == 0 || hs[0] != tor.Hash() {
		t.Errorf("Hashes() = %v, Hash() = %v", hs, tor.Hash())
	}
	wantHashes := map[Kind]int{KindV1: 1, KindV2: 1, KindHybrid: 2}[tor.Kind]
	if len(hs) != wantHashes {
		t.Errorf("%s torrent has %d wire hashes, want %d", tor.Kind, len(hs), wantHashes)
	}
	// The generated magnet parses back to the same hashes.
	m, err := ParseMagnet(tor.Magnet().String())
	if err != nil {
		t.Fatalf("own magnet %q: %v", tor.Magnet(), err)
	}
	if m.InfoHashV1 != tor.InfoHashV1 || m.InfoHashV2 != tor.InfoHashV2 {
		t.Errorf("magnet round trip: %s/%s, want %s/%s", m.InfoHashV1, m.InfoHashV2, tor.InfoHashV1, tor.InfoHashV2)
	}
	// The info bytes alone rebuild the same torrent when checked against the magnet.
	again, err := FromInfo(tor.Info, m)
	if err != nil {
		t.Fatalf("FromInfo: %v", err)
	}
	if again.Hash() != tor.Hash() || again.Pieces != tor.Pieces || again.TotalLength != tor.TotalLength {
		t.Errorf("FromInfo differs: %s %d %d", again.Hash(), again.Pieces, again.TotalLength)
	}
}
