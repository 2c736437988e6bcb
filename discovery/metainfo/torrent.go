package metainfo

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/btda/btda/internal/inputfile"
	"strings"
	"time"

	"github.com/btda/btda/internal/bencode"
)

// Hard limits against hostile or broken input. A torrent beyond them is rejected with an
// error naming the limit; none of them is reached by real-world torrents.
const (
	// MaxTorrentFileSize is the largest .torrent file read (a 64 MiB file holds 3.3 M v1
	// piece hashes).
	MaxTorrentFileSize = 64 << 20
	// MaxInfoSize is the largest info dictionary accepted, from a file or from peers (BEP 9).
	MaxInfoSize = MaxTorrentFileSize
	// MaxFiles is the most files one torrent may list (pad files included). Decoding costs
	// about 8 µs and 1 KiB per file, so this bounds a hostile file to a few seconds.
	MaxFiles = 1 << 18
	// MaxTreeDepth is the deepest v2 file tree (directories plus the file name).
	MaxTreeDepth = 64
	// MaxPieceLength is the largest piece length (512 MiB; libtorrent's limit too).
	MaxPieceLength = 512 << 20
	// MinPieceLengthV2 is BEP 52's smallest piece length (one 16 KiB block).
	MinPieceLengthV2 = 16 << 10
	// MaxPieces bounds the piece count: btda keeps a bitfield per peer, and 16 M pieces is
	// already a 2 MiB bitfield.
	MaxPieces = 1 << 24
	// MaxFileLength is the largest single file (libtorrent: fewer than 2^30-1 blocks of
	// 16 KiB).
	MaxFileLength = 1<<44 - 2*(16<<10)
	// MaxTrackers is the most tracker URLs kept; further ones are dropped with a warning.
	MaxTrackers = 256
	// MaxURLList is the most web seeds (url-list) kept.
	MaxURLList = 256
	// MaxNodes is the most DHT nodes kept from a torrent's "nodes" list.
	MaxNodes = 256
	// maxTotalLength keeps sums of file lengths far from int64 overflow.
	maxTotalLength = int64(MaxPieces) * MaxPieceLength

	// MaxNesting is the deepest list/dict nesting accepted (libtorrent's bdecode uses 100).
	MaxNesting = bencode.DefaultMaxDepth
	// MaxItems is the most bencode values one document may hold.
	MaxItems = bencode.DefaultMaxItems
)

// The bencode rules, checked by internal/bencode before any value is decoded: the bytes
// that are hashed must have one spelling, so integers and string lengths are canonical, and
// a repeated key (which decoders resolve differently) is refused inside the info dictionary
// and for the "info" key itself; outside it a repeat is only counted.
var (
	limits = bencode.Limits{MaxDepth: MaxNesting, MaxItems: MaxItems}
	// torrentOptions: trailing bytes after a .torrent (often a newline) are ignored, as
	// libtorrent does: the info bytes, and so the hashes, are unaffected.
	torrentOptions = bencode.Options{Limits: limits, Canonical: true, Key: "info", Trailing: bencode.TrailingAny}
	// infoOptions: an info dictionary on its own (BEP 9 metadata) is exactly the hashed
	// bytes, so nothing may follow it.
	infoOptions = bencode.Options{Limits: limits, Canonical: true, NoDuplicates: true}
)

// Kind says which BitTorrent metainfo versions a torrent carries.
//
//go:generate go tool stringer -type=Kind -linecomment
type Kind uint8

// The torrent kinds. Zero is deliberately invalid.
const (
	// KindV1: BEP 3 only
	KindV1 Kind = iota + 1 // v1
	// KindV2: BEP 52 only
	KindV2 // v2
	// KindHybrid: both: reachable by the v1 hash and the truncated v2 hash
	KindHybrid // hybrid
)

// File is one file of a torrent. Path is relative to the torrent's Name directory for
// multi-file torrents, and is just the file name for single-file ones.
type File struct {
	Path   []string
	Length int64
	// Pad marks a BEP 47 padding file (attr "p", or the old "_____padding_file_" names);
	// pad files take piece space but hold no content.
	Pad bool
	// Attr is the BEP 47 attribute string ("x", "h", "l", "p"), as given.
	Attr string
}

// PathString joins the path with "/" for display (invalid UTF-8 replaced).
func (f File) PathString() string {
	return strings.ToValidUTF8(strings.Join(f.Path, "/"), "\uFFFD")
}

// Torrent is a parsed metainfo: what btda needs to watch a swarm and what `btda inspect`
// prints. Build one with Parse, Load or FromInfo; treat it as read-only afterwards.
type Torrent struct {
	// InfoHashV1 is the SHA-1 of the info dictionary, set only when the torrent has v1
	// pieces (v1 or hybrid): only then do peers use it.
	InfoHashV1 Hash
	// InfoHashV2 is the SHA-256 of the info dictionary, set for v2 and hybrid torrents.
	InfoHashV2 HashV2
	// InfoSHA1 is the SHA-1 of the info bytes whatever the version. For a v2-only torrent
	// no peer uses it, but other tools print it as the "v1 hash".
	InfoSHA1 Hash

	Kind        Kind
	Name        string
	Pieces      int   // piece count; for a hybrid, the v1 count (it equals the v2 count)
	PieceLength int64 // bytes
	TotalLength int64 // bytes of content, pad files excluded
	Files       []File
	Private     bool

	Trackers     [][]string // announce tiers (BEP 12), trimmed and de-duplicated
	URLList      []string   // web seeds (BEP 19)
	Nodes        []string   // DHT bootstrap nodes, host:port (BEP 5)
	CreationDate time.Time  // zero when absent
	Comment      string
	CreatedBy    string

	// Info is the info dictionary exactly as it stood in the file: the bytes both hashes
	// are computed over, and what BEP 9 serves to peers.
	Info []byte

	// Warnings lists what was wrong but harmless (malformed announce-list, dropped
	// trackers, …), for the loader to log.
	Warnings []string
}

// Hash returns the torrent's primary wire hash: the v1 hash when there is one, else the
// truncated v2 hash.
func (t *Torrent) Hash() Hash {
	if !t.InfoHashV1.IsZero() {
		return t.InfoHashV1
	}
	return t.InfoHashV2.Truncate()
}

// Hashes returns every 20-byte hash peers may use for this torrent in the BEP 3
// handshake: the v1 hash and/or the truncated v2 hash (a hybrid has both).
func (t *Torrent) Hashes() []Hash {
	return wireHashes(t.InfoHashV1, t.InfoHashV2)
}

func wireHashes(v1 Hash, v2 HashV2) []Hash {
	hs := make([]Hash, 0, 2)
	if !v1.IsZero() {
		hs = append(hs, v1)
	}
	if !v2.IsZero() {
		hs = append(hs, v2.Truncate())
	}
	return hs
}

// Label is the canonical name of the torrent in logs and the `infohash` metric label: the
// v1 hash in hex when there is one, else the full v2 hash in hex.
func (t *Torrent) Label() string { return label(t.InfoHashV1, t.InfoHashV2) }

func label(v1 Hash, v2 HashV2) string {
	if !v1.IsZero() {
		return v1.String()
	}
	return v2.String()
}

// HexV1 is the v1 hash in hex, "" when absent.
func (t *Torrent) HexV1() string { return hexOrEmpty(t.InfoHashV1[:]) }

// HexV2 is the v2 hash in hex, "" when absent.
func (t *Torrent) HexV2() string { return hexOrEmpty(t.InfoHashV2[:]) }

func hexOrEmpty(b []byte) string {
	for _, c := range b {
		if c != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// Magnet returns a magnet link for the torrent: both hashes where present, the name and
// every tracker.
func (t *Torrent) Magnet() *Magnet {
	m := &Magnet{InfoHashV1: t.InfoHashV1, InfoHashV2: t.InfoHashV2, Name: t.Name}
	if t.TotalLength > 0 {
		m.Length = t.TotalLength
	}
	for _, tier := range t.Trackers {
		m.Trackers = append(m.Trackers, tier...)
	}
	return m
}

// ReadFile reads at most limit bytes of path, failing when the file is larger or is not a
// regular file (a FIFO never blocks it). The error carries the path.
func ReadFile(path string, limit int64) ([]byte, error) {
	return inputfile.Read(path, limit)
}

// Load reads and parses a .torrent file. Errors start with the path.
func Load(path string) (*Torrent, error) {
	data, err := ReadFile(path, MaxTorrentFileSize)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse parses the bytes of a .torrent file (BEP 3, BEP 52 v2 and hybrid).
func Parse(data []byte) (*Torrent, error) {
	if len(data) > MaxTorrentFileSize {
		return nil, fmt.Errorf("torrent: %d bytes, more than the %d byte limit", len(data), MaxTorrentFileSize)
	}
	if len(data) > 0 && data[0] != 'd' {
		return nil, errors.New("torrent: top level is not a dictionary")
	}
	top, doc, err := bencode.DecodeDict(data, torrentOptions)
	if err != nil {
		return nil, err
	}
	if doc.KeyStart < 0 {
		return nil, errField("info", "missing")
	}
	// The hash is over the info bytes as they stand. A copy, so that the Torrent does not
	// pin the whole file (piece layers can be large).
	t, err := parseInfo(bytes.Clone(data[doc.KeyStart:doc.KeyEnd]))
	if err != nil {
		return nil, err
	}
	rest := make(dict, len(top))
	for k, raw := range top {
		if k == "info" {
			continue
		}
		v, err := bencode.Decode(raw, bencode.Options{Limits: limits})
		if err != nil {
			return nil, errField(k, "%v", err)
		}
		rest[k] = v
	}
	if err := t.parseExtras(rest); err != nil {
		return nil, err
	}
	if trailing := len(data) - doc.Len; trailing > 0 {
		t.Warnings = append(t.Warnings, fmt.Sprintf("%d bytes of trailing data after the torrent (ignored)", trailing))
	}
	if doc.Duplicates > 0 {
		t.Warnings = append(t.Warnings, fmt.Sprintf("%d repeated dictionary keys outside the info dictionary (the last value is used)", doc.Duplicates))
	}
	return t, nil
}

// FromInfo builds a Torrent from an info dictionary fetched from peers (BEP 9) and checks
// it against the magnet it was fetched for: every hash the magnet names must match. The
// magnet's name and trackers fill what an info dictionary lacks.
func FromInfo(info []byte, m *Magnet) (*Torrent, error) {
	if m == nil || (m.InfoHashV1.IsZero() && m.InfoHashV2.IsZero()) {
		return nil, errors.New("metadata: no magnet hash to verify against")
	}
	if len(info) > MaxInfoSize {
		return nil, fmt.Errorf("metadata: %d bytes, more than the %d byte limit", len(info), MaxInfoSize)
	}
	// Hashes first: bytes from a peer that do not match are refused before any parsing.
	if !m.InfoHashV1.IsZero() && Hash(sha1.Sum(info)) != m.InfoHashV1 {
		return nil, fmt.Errorf("metadata: SHA-1 %x does not match the magnet's btih %s", sha1.Sum(info), m.InfoHashV1)
	}
	if !m.InfoHashV2.IsZero() && HashV2(sha256.Sum256(info)) != m.InfoHashV2 {
		return nil, fmt.Errorf("metadata: SHA-256 %x does not match the magnet's btmh %s", sha256.Sum256(info), m.InfoHashV2)
	}
	t, err := parseInfo(bytes.Clone(info))
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	// A btih-only magnet must not name a v2-only torrent, nor a btmh-only magnet a v1 one:
	// the hash checked above would then not be one peers use for it.
	if !m.InfoHashV1.IsZero() && t.InfoHashV1.IsZero() {
		return nil, errors.New("metadata: the magnet's btih names a v2-only info dictionary")
	}
	if !m.InfoHashV2.IsZero() && t.InfoHashV2.IsZero() {
		return nil, errors.New("metadata: the magnet's btmh names a v1-only info dictionary")
	}
	if t.Name == "" {
		t.Name = m.Name
	}
	// A magnet's tr parameters form one tier: any of them may be used.
	if tier := uniqueURLs(m.Trackers, nil); len(tier) > 0 {
		t.Trackers = [][]string{tier}
	}
	return t, nil
}

// parseInfo parses an info dictionary's raw bytes, checked against infoOptions first.
func parseInfo(info []byte) (*Torrent, error) {
	v, err := bencode.Decode(info, infoOptions)
	if err != nil {
		return nil, err
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, errField("info", "want a dictionary")
	}
	d := dict(raw)
	t := &Torrent{
		Info:     info,
		InfoSHA1: sha1.Sum(info),
	}

	pl, ok, err := d.intField("info", "piece length")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errField("info.piece length", "missing")
	case pl <= 0:
		return nil, errField("info.piece length", "must be > 0, got %d", pl)
	case pl > MaxPieceLength:
		return nil, errField("info.piece length", "must be at most %d, got %d", MaxPieceLength, pl)
	}
	t.PieceLength = pl

	// rawName is the single file's path as peers and the v2 file tree see it; Name is for
	// display (name.utf-8 when given, never invalid UTF-8).
	rawName, _, err := d.strField("info", "name")
	if err != nil {
		return nil, err
	}
	t.Name = rawName
	if utf8Name, ok, _ := d.strField("info", "name.utf-8"); ok && utf8Name != "" {
		t.Name = utf8Name
	}
	t.Name = strings.ToValidUTF8(t.Name, "\uFFFD")
	if priv, ok, err := d.intField("info", "private"); err != nil {
		t.Warnings = append(t.Warnings, err.Error()+" (ignored)")
	} else if ok {
		t.Private = priv == 1
	}

	version, hasVersion, err := d.intField("info", "meta version")
	if err != nil {
		return nil, err
	}
	if hasVersion && version != 1 && version != 2 {
		return nil, errField("info.meta version", "unsupported version %d", version)
	}
	_, hasPieces := d["pieces"]
	isV2 := version == 2
	if !hasPieces && !isV2 {
		return nil, errField("info", "neither v1 pieces nor meta version 2")
	}

	var v1Files, v2Files []File
	var v1Pieces, v2Pieces int
	if hasPieces {
		if v1Files, v1Pieces, err = parseV1(d, rawName, pl); err != nil {
			return nil, err
		}
		t.InfoHashV1 = t.InfoSHA1
		t.Kind = KindV1
	}
	if isV2 {
		if pl < MinPieceLengthV2 || pl&(pl-1) != 0 {
			return nil, errField("info.piece length", "a v2 piece length must be a power of two of at least %d, got %d", MinPieceLengthV2, pl)
		}
		if v2Files, v2Pieces, err = parseFileTree(d, pl); err != nil {
			return nil, err
		}
		t.InfoHashV2 = sha256.Sum256(info)
		t.Kind = KindV2
	}
	switch {
	case hasPieces && isV2:
		t.Kind = KindHybrid
		if err := checkHybrid(v1Files, v2Files, v1Pieces, v2Pieces, pl); err != nil {
			return nil, err
		}
		t.Files, t.Pieces = v1Files, v1Pieces
	case hasPieces:
		t.Files, t.Pieces = v1Files, v1Pieces
	default:
		t.Files, t.Pieces = v2Files, v2Pieces
	}
	for _, f := range t.Files {
		if !f.Pad {
			t.TotalLength += f.Length
		}
	}
	if t.Pieces == 0 || t.TotalLength == 0 {
		return nil, errField("info", "torrent holds no data (total length 0)")
	}
	return t, nil
}

// isPadFile recognises BEP 47 pad files and the older BitComet naming.
func isPadFile(attr string, path []string) bool {
	if strings.ContainsRune(attr, 'p') {
		return true
	}
	return len(path) > 0 && strings.HasPrefix(path[len(path)-1], "_____padding_file_")
}

// parseV1 reads the BEP 3 file list and pieces; it returns the files (pad files included)
// and the piece count, checked against the total length.
func parseV1(d dict, name string, pl int64) ([]File, int, error) {
	pieces, _, err := d.strField("info", "pieces")
	if err != nil {
		return nil, 0, err
	}
	if len(pieces)%20 != 0 {
		return nil, 0, errField("info.pieces", "length %d is not a multiple of 20", len(pieces))
	}
	n := len(pieces) / 20
	if n > MaxPieces {
		return nil, 0, errField("info.pieces", "%d pieces, more than the limit of %d", n, MaxPieces)
	}

	var files []File
	list, isMulti, err := d.listField("info", "files")
	if err != nil {
		return nil, 0, err
	}
	if isMulti {
		if len(list) == 0 {
			return nil, 0, errField("info.files", "empty list")
		}
		if len(list) > MaxFiles {
			return nil, 0, errField("info.files", "%d files, more than the limit of %d", len(list), MaxFiles)
		}
		files = make([]File, 0, len(list))
		for i, item := range list {
			f, err := parseV1File(item, fmt.Sprintf("info.files[%d]", i))
			if err != nil {
				return nil, 0, err
			}
			files = append(files, f)
		}
	} else {
		length, ok, err := d.intField("info", "length")
		switch {
		case err != nil:
			return nil, 0, err
		case !ok:
			return nil, 0, errField("info", "neither length nor files")
		case length < 0:
			return nil, 0, errField("info.length", "must be >= 0, got %d", length)
		case length > MaxFileLength:
			return nil, 0, errField("info.length", "must be at most %d, got %d", int64(MaxFileLength), length)
		}
		files = []File{{Path: []string{name}, Length: length}}
	}

	var total int64
	for _, f := range files {
		total += f.Length // each ≤ MaxFileLength and at most MaxFiles: no overflow
	}
	if total > maxTotalLength {
		return nil, 0, errField("info", "total length %d is more than the limit of %d", total, maxTotalLength)
	}
	if want := (total + pl - 1) / pl; want != int64(n) {
		return nil, 0, errField("info.pieces", "%d pieces, but total length %d at piece length %d needs %d", n, total, pl, want)
	}
	return files, n, nil
}

func parseV1File(item any, field string) (File, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return File{}, errField(field, "want a dictionary, got %s", typeName(item))
	}
	d := dict(m)
	var f File
	attr, _, err := d.strField(field, "attr")
	if err != nil {
		return File{}, err
	}
	f.Attr = attr
	length, ok, err := d.intField(field, "length")
	switch {
	case err != nil:
		return File{}, err
	case !ok && !strings.ContainsRune(attr, 'l'): // a BEP 47 symlink needs no length
		return File{}, errField(field+".length", "missing")
	case length < 0:
		return File{}, errField(field+".length", "must be >= 0, got %d", length)
	case length > MaxFileLength:
		return File{}, errField(field+".length", "must be at most %d, got %d", int64(MaxFileLength), length)
	}
	f.Length = length

	key := "path"
	if _, ok := d["path.utf-8"]; ok {
		key = "path.utf-8"
	}
	list, ok, err := d.listField(field, key)
	if err != nil {
		return File{}, err
	}
	if !ok && !isPadFile(attr, nil) { // a pad file's path does not matter
		return File{}, errField(field+".path", "missing")
	}
	if len(list) > MaxTreeDepth {
		return File{}, errField(field+".path", "%d components, more than the limit of %d", len(list), MaxTreeDepth)
	}
	f.Path = make([]string, 0, len(list))
	for j, c := range list {
		s, ok := c.(string)
		if !ok {
			return File{}, errField(fmt.Sprintf("%s.%s[%d]", field, key, j), "want a string, got %s", typeName(c))
		}
		f.Path = append(f.Path, s)
	}
	f.Pad = isPadFile(attr, f.Path)
	return f, nil
}

// parseFileTree walks the BEP 52 file tree in canonical key order. The piece count is
// counted per file: v2 files never share a piece.
func parseFileTree(d dict, pl int64) ([]File, int, error) {
	tree, ok, err := d.dictField("info", "file tree")
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, errField("info.file tree", "missing in a meta version 2 torrent")
	}
	w := &treeWalker{pl: pl}
	if err := w.walk(tree, nil); err != nil {
		return nil, 0, err
	}
	if len(w.files) == 0 {
		return nil, 0, errField("info.file tree", "holds no files")
	}
	return w.files, int(w.pieces), nil
}

type treeWalker struct {
	pl     int64
	files  []File
	pieces int64
	total  int64
}

func (w *treeWalker) walk(node dict, path []string) error {
	field := "info.file tree"
	if len(path) > 0 {
		field += "/" + truncate(strings.Join(path, "/"), 200)
	}
	if len(path) > MaxTreeDepth {
		return errField(field, "deeper than %d levels", MaxTreeDepth)
	}
	if leaf, ok := node[""]; ok {
		if len(path) == 0 {
			return errField(field, "entry with an empty name")
		}
		if len(node) != 1 {
			return errField(field, "is both a file and a directory")
		}
		return w.file(leaf, path, field)
	}
	for _, k := range sortedKeys(node) {
		child, ok := node[k].(map[string]any)
		if !ok {
			return errField(field+"/"+truncate(k, 100), "want a dictionary, got %s", typeName(node[k]))
		}
		if err := w.walk(child, append(path[:len(path):len(path)], k)); err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWalker) file(leaf any, path []string, field string) error {
	m, ok := leaf.(map[string]any)
	if !ok {
		return errField(field, "file entry: want a dictionary, got %s", typeName(leaf))
	}
	if len(w.files) >= MaxFiles {
		return errField("info.file tree", "more than %d files", MaxFiles)
	}
	d := dict(m)
	length, ok, err := d.intField(field, "length")
	switch {
	case err != nil:
		return err
	case !ok:
		return errField(field+".length", "missing")
	case length < 0:
		return errField(field+".length", "must be >= 0, got %d", length)
	case length > MaxFileLength:
		return errField(field+".length", "must be at most %d, got %d", int64(MaxFileLength), length)
	}
	root, hasRoot, err := d.strField(field, "pieces root")
	if err != nil {
		return err
	}
	if hasRoot && len(root) != 32 {
		return errField(field+".pieces root", "want 32 bytes, got %d", len(root))
	}
	attr, _, err := d.strField(field, "attr")
	if err != nil {
		return err
	}
	if length > 0 && !hasRoot {
		return errField(field+".pieces root", "missing for a non-empty file")
	}
	w.total += length
	if w.total > maxTotalLength {
		return errField("info.file tree", "total length is more than the limit of %d", maxTotalLength)
	}
	w.pieces += (length + w.pl - 1) / w.pl
	if w.pieces > MaxPieces {
		return errField("info.file tree", "more than %d pieces", MaxPieces)
	}
	w.files = append(w.files, File{Path: path, Length: length, Attr: attr})
	return nil
}

// checkHybrid demands that the v1 and v2 views of a hybrid describe the same files: BEP 52
// hybrids pad every v1 file to a piece boundary so that both piece sets cover the same
// bytes. Peers would otherwise disagree on what a piece index means.
func checkHybrid(v1, v2 []File, v1Pieces, v2Pieces int, pl int64) error {
	var offset int64
	i := 0
	for _, f := range v1 {
		if f.Pad {
			offset += f.Length
			continue
		}
		if i >= len(v2) {
			return errField("info", "hybrid v1 files list has more files than the v2 file tree (%d)", len(v2))
		}
		g := v2[i]
		if !equalPath(f.Path, g.Path) || f.Length != g.Length {
			return errField("info", "hybrid v1 file %q (%d bytes) does not match v2 file %q (%d bytes)",
				truncate(f.PathString(), 100), f.Length, truncate(g.PathString(), 100), g.Length)
		}
		if f.Length > 0 && offset%pl != 0 {
			return errField("info", "hybrid v1 file %q starts at offset %d, not on a piece boundary", truncate(f.PathString(), 100), offset)
		}
		offset += f.Length
		i++
	}
	if i != len(v2) {
		return errField("info", "hybrid v1 files list has %d files, the v2 file tree %d", i, len(v2))
	}
	if v1Pieces != v2Pieces {
		return errField("info", "hybrid v1 has %d pieces, v2 %d", v1Pieces, v2Pieces)
	}
	return nil
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
