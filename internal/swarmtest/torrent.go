package swarmtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"

	"github.com/zeebo/bencode"
)

// Version is a torrent's metainfo version.
type Version string

// Metainfo versions.
const (
	V1     Version = "v1"
	V2     Version = "v2"
	Hybrid Version = "hybrid"
)

const blockSize = 16 << 10

// Torrent is one generated torrent.
type Torrent struct {
	Index       int
	Name        string
	Version     Version
	PieceLength int64
	Pieces      int
	Length      int64 // total payload bytes (without BEP 47 padding)
	Files       int
	// InfoHashV1 is the SHA-1 of the info dict (v1 and hybrid), InfoHashV2
	// the SHA-256 (v2 and hybrid). WireHash is the 20-byte hash peers put in
	// handshakes: v1 hash, or the truncated v2 hash for v2-only torrents.
	InfoHashV1 [20]byte
	InfoHashV2 [32]byte
	WireHash   [20]byte
	// Info is the raw bencoded info dictionary, served over ut_metadata.
	Info []byte
	// File is the bencoded .torrent file.
	File []byte
}

// HasV1 reports whether the torrent has a v1 info hash.
func (t *Torrent) HasV1() bool { return t.Version != V2 }

// HasV2 reports whether the torrent has a v2 info hash.
func (t *Torrent) HasV2() bool { return t.Version != V1 }

// WireHex is the hex wire hash, the torrent's key in the truth file.
func (t *Torrent) WireHex() string { return hex.EncodeToString(t.WireHash[:]) }

// Magnet returns a magnet URI with btih and/or btmh, the name and trackers.
func (t *Torrent) Magnet(trackers []string) string {
	var parts []string
	if t.HasV1() {
		parts = append(parts, "xt=urn:btih:"+hex.EncodeToString(t.InfoHashV1[:]))
	}
	if t.HasV2() {
		parts = append(parts, "xt=urn:btmh:1220"+hex.EncodeToString(t.InfoHashV2[:]))
	}
	parts = append(parts, "dn="+url.QueryEscape(t.Name))
	for _, tr := range trackers {
		parts = append(parts, "tr="+url.QueryEscape(tr))
	}
	return "magnet:?" + strings.Join(parts, "&")
}

// matches reports whether a handshake info hash names this torrent (BEP 52:
// a hybrid torrent is reachable by its v1 hash and its truncated v2 hash).
func (t *Torrent) matches(h [20]byte) bool {
	if t.HasV1() && h == t.InfoHashV1 {
		return true
	}
	return t.HasV2() && [20]byte(t.InfoHashV2[:20]) == h
}

// lookupHashes are the 20-byte hashes trackers and the DHT know the torrent
// by: the v1 hash and/or the truncated v2 hash (BEP 52).
func (t *Torrent) lookupHashes() [][20]byte {
	var out [][20]byte
	if t.HasV1() {
		out = append(out, t.InfoHashV1)
	}
	if t.HasV2() {
		out = append(out, [20]byte(t.InfoHashV2[:20]))
	}
	return out
}

// shape draws a realistic piece count (log-uniform 50..20,000) and piece
// length (power of two, 16 KiB..16 MiB, larger for larger torrents).
func shape(r *rand.Rand) (pieces int, pieceLen int64) {
	lo, hi := 50.0, 20000.0
	pieces = int(lo * math.Pow(hi/lo, r.Float64()))
	exp := 14 + r.IntN(11) // 2^14 .. 2^24
	return pieces, int64(1) << exp
}

type fileSpec struct {
	path   []string
	length int64
}

// splitFiles cuts the payload into 1..4 files. For v2 and hybrid every file
// starts on a piece boundary (hybrid adds BEP 47 pad files in the v1 list),
// so each file is a whole number of pieces except the last.
func splitFiles(r *rand.Rand, name string, pieces int, pieceLen int64) (files []fileSpec, length int64) {
	nf := 1
	if pieces >= 8 && r.IntN(2) == 0 {
		nf = 2 + r.IntN(3)
	}
	left := pieces
	for i := 0; i < nf; i++ {
		np := left / (nf - i)
		if i == nf-1 {
			np = left
		}
		left -= np
		l := int64(np) * pieceLen
		if i == nf-1 || r.IntN(3) == 0 {
			// A short tail, but never shorter than one byte of the last piece.
			l -= r.Int64N(pieceLen)
		}
		path := []string{fmt.Sprintf("%s-part%d.bin", name, i)}
		if nf == 1 {
			// A single-file torrent's file is named by "name" in both the
			// v1 and the v2 view.
			path = []string{name}
		}
		files = append(files, fileSpec{path: path, length: l})
		length += l
	}
	return files, length
}

// piecesFor returns how many pieces a file of length l covers.
func piecesFor(l, pieceLen int64) int { return int((l + pieceLen - 1) / pieceLen) }

// zeroPieceHash is the merkle root of one all-zero-leaf piece: BEP 52 pads
// the piece layer with it up to a power of two.
func zeroPieceHash(pieceLen int64) [32]byte {
	var h [32]byte // a zero leaf hash
	for n := pieceLen / blockSize; n > 1; n /= 2 {
		h = sha256.Sum256(append(h[:], h[:]...))
	}
	return h
}

// merkleRoot computes the pieces root from the piece layer (BEP 52).
func merkleRoot(layer [][32]byte, pad [32]byte) [32]byte {
	n := 1
	for n < len(layer) {
		n *= 2
	}
	cur := make([][32]byte, n)
	copy(cur, layer)
	for i := len(layer); i < n; i++ {
		cur[i] = pad
	}
	for len(cur) > 1 {
		next := make([][32]byte, len(cur)/2)
		for i := range next {
			next[i] = sha256.Sum256(append(cur[2*i][:], cur[2*i+1][:]...))
		}
		cur = next
	}
	return cur[0]
}

// GenerateTorrent builds torrent number idx of the given version from r.
// Hashes are random (no data is exchanged), but the structure is valid per
// BEP 3/47/52, including the v2 piece layers and pieces roots.
func GenerateTorrent(r *rand.Rand, idx int, v Version, announce []string) (*Torrent, error) {
	pieces, pieceLen := shape(r)
	name := fmt.Sprintf("swarm-%03d-%s", idx, v)
	files, length := splitFiles(r, name, pieces, pieceLen)
	info := map[string]any{
		"name":         name,
		"piece length": pieceLen,
	}
	layers := map[string]any{}
	totalPieces := 0
	for _, f := range files {
		totalPieces += piecesFor(f.length, pieceLen)
	}
	if v == V1 {
		// Plain v1 pieces run across file boundaries.
		totalPieces = piecesFor(length, pieceLen)
	}
	if v != V2 {
		ph := make([]byte, 20*totalPieces)
		for i := range ph {
			ph[i] = byte(r.UintN(256))
		}
		info["pieces"] = string(ph)
		if len(files) == 1 {
			info["length"] = files[0].length
		} else {
			var list []any
			for i, f := range files {
				list = append(list, map[string]any{"length": f.length, "path": f.path})
				if v == Hybrid && i < len(files)-1 {
					if pad := int64(piecesFor(f.length, pieceLen))*pieceLen - f.length; pad > 0 {
						list = append(list, map[string]any{"attr": "p", "length": pad,
							"path": []string{".pad", fmt.Sprint(pad)}})
					}
				}
			}
			info["files"] = list
		}
	}
	if v != V1 {
		info["meta version"] = 2
		tree := map[string]any{}
		pad := zeroPieceHash(pieceLen)
		for _, f := range files {
			np := piecesFor(f.length, pieceLen)
			var root [32]byte
			if f.length <= pieceLen {
				// Single-piece files have no layer; the root is the hash of
				// the (unknown) data, so any value is structurally valid.
				for i := range root {
					root[i] = byte(r.UintN(256))
				}
			} else {
				layer := make([][32]byte, np)
				buf := make([]byte, 0, 32*np)
				for i := range layer {
					for j := range layer[i] {
						layer[i][j] = byte(r.UintN(256))
					}
					buf = append(buf, layer[i][:]...)
				}
				root = merkleRoot(layer, pad)
				layers[string(root[:])] = string(buf)
			}
			leaf := map[string]any{"": map[string]any{"length": f.length, "pieces root": string(root[:])}}
			tree[f.path[0]] = leaf
		}
		info["file tree"] = tree
	}
	raw, err := bencode.EncodeBytes(info)
	if err != nil {
		return nil, fmt.Errorf("torrent %d: encode info: %w", idx, err)
	}
	t := &Torrent{Index: idx, Name: name, Version: v, PieceLength: pieceLen, Pieces: totalPieces,
		Length: length, Files: len(files), Info: raw}
	if v != V2 {
		t.InfoHashV1 = sha1.Sum(raw)
		t.WireHash = t.InfoHashV1
	}
	if v != V1 {
		t.InfoHashV2 = sha256.Sum256(raw)
		if v == V2 {
			t.WireHash = [20]byte(t.InfoHashV2[:20])
		}
	}
	meta := map[string]any{
		"info":          bencode.RawMessage(raw),
		"created by":    "btswarm",
		"creation date": int64(1700000000 + idx),
	}
	if len(announce) > 0 {
		meta["announce"] = announce[0]
		var tiers []any
		for _, a := range announce {
			tiers = append(tiers, []string{a})
		}
		meta["announce-list"] = tiers
	}
	if len(layers) > 0 {
		meta["piece layers"] = layers
	}
	file, err := bencode.EncodeBytes(meta)
	if err != nil {
		return nil, fmt.Errorf("torrent %d: encode metainfo: %w", idx, err)
	}
	t.File = file
	return t, nil
}
