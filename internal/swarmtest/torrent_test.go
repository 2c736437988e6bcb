package swarmtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
)

// TestGenerateTorrent checks generated metainfo with anacrolix/torrent, a
// parser nobody here wrote, including the v2 piece-layer merkle roots.
func TestGenerateTorrent(t *testing.T) {
	for _, v := range []Version{V1, V2, Hybrid} {
		for seed := uint64(0); seed < 12; seed++ {
			tor, err := GenerateTorrent(rand.New(rand.NewPCG(seed, 9)), int(seed), v, []string{"http://127.0.0.1:1/announce"})
			if err != nil {
				t.Fatal(err)
			}
			mi, err := metainfo.Load(bytes.NewReader(tor.File))
			if err != nil {
				t.Fatalf("%s seed %d: load: %v", v, seed, err)
			}
			info, err := mi.UnmarshalInfo()
			if err != nil {
				t.Fatalf("%s seed %d: info: %v", v, seed, err)
			}
			if !bytes.Equal(mi.InfoBytes, tor.Info) {
				t.Fatalf("%s seed %d: info bytes differ from Torrent.Info", v, seed)
			}
			if tor.Pieces < 50 || tor.Pieces > 20000+4 {
				t.Errorf("%s seed %d: %d pieces outside 50..20000", v, seed, tor.Pieces)
			}
			if tor.PieceLength < 16<<10 || tor.PieceLength > 16<<20 || tor.PieceLength&(tor.PieceLength-1) != 0 {
				t.Errorf("%s seed %d: piece length %d", v, seed, tor.PieceLength)
			}
			if info.NumPieces() != tor.Pieces {
				t.Errorf("%s seed %d: anacrolix sees %d pieces, we say %d", v, seed, info.NumPieces(), tor.Pieces)
			}
			if info.HasV1() != tor.HasV1() || info.HasV2() != tor.HasV2() {
				t.Errorf("%s seed %d: v1 %v v2 %v", v, seed, info.HasV1(), info.HasV2())
			}
			if tor.HasV1() {
				if sha1.Sum(tor.Info) != tor.InfoHashV1 || tor.WireHash != tor.InfoHashV1 {
					t.Errorf("%s: v1 hash mismatch", v)
				}
				if len(info.Pieces) != 20*tor.Pieces {
					t.Errorf("%s: %d bytes of pieces for %d pieces", v, len(info.Pieces), tor.Pieces)
				}
			}
			if tor.HasV2() {
				if sha256.Sum256(tor.Info) != tor.InfoHashV2 {
					t.Errorf("%s: v2 hash mismatch", v)
				}
				if err := metainfo.ValidatePieceLayers(mi.PieceLayers, &info.FileTree, info.PieceLength); err != nil {
					t.Errorf("%s seed %d: piece layers: %v", v, seed, err)
				}
			}
			if v == Hybrid && info.TotalLength() < tor.Length {
				t.Errorf("hybrid total length %d < payload %d", info.TotalLength(), tor.Length)
			}
			if v == V1 && info.TotalLength() != tor.Length {
				t.Errorf("v1 total length %d != %d", info.TotalLength(), tor.Length)
			}
			// Magnets parse with anacrolix too and name the same hashes.
			m, err := metainfo.ParseMagnetV2Uri(tor.Magnet([]string{"udp://127.0.0.1:1"}))
			if err != nil {
				t.Fatalf("magnet: %v", err)
			}
			if tor.HasV1() && (!m.InfoHash.Ok || m.InfoHash.Value != tor.InfoHashV1) {
				t.Errorf("%s: magnet v1 hash %v", v, m.InfoHash)
			}
			if tor.HasV2() && (!m.V2InfoHash.Ok || m.V2InfoHash.Value != tor.InfoHashV2) {
				t.Errorf("%s: magnet v2 hash %v", v, m.V2InfoHash)
			}
		}
	}
}

func TestTorrentMatches(t *testing.T) {
	h, err := GenerateTorrent(rand.New(rand.NewPCG(1, 1)), 0, Hybrid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.matches(h.InfoHashV1) || !h.matches([20]byte(h.InfoHashV2[:20])) || h.matches([20]byte{}) {
		t.Error("hybrid torrent must match its v1 hash and truncated v2 hash only")
	}
	v2, _ := GenerateTorrent(rand.New(rand.NewPCG(1, 2)), 0, V2, nil)
	if !v2.matches(v2.WireHash) || v2.matches([20]byte{}) {
		t.Error("v2 torrent must match its truncated hash")
	}
}
