package discovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/btda/btda/discovery/metainfo"
)

// State is where a watched torrent stands. Its String form is a metric label value.
//
//go:generate go tool stringer -type=State -linecomment
type State uint8

// The torrent states. Zero is deliberately invalid.
const (
	// StatePendingMetadata: a magnet whose info dictionary is not known yet
	StatePendingMetadata State = iota + 1 // pending_metadata
	// StateActive: metadata known: piece count and length usable
	StateActive // active
)

// States lists every State, for pre-creating metric series.
var States = []State{StatePendingMetadata, StateActive}

// Kind says what a watched torrent is. Its String form is a metric label value.
//
//go:generate go tool stringer -type=Kind -linecomment
type Kind uint8

// The torrent kinds. A magnet that got its metadata takes the kind of its info dictionary.
const (
	KindV1 Kind = iota + 1 // v1
	// KindV2: v2 only
	KindV2 // v2
	// KindHybrid: v1 and v2
	KindHybrid // hybrid
	// KindMagnet: a magnet still pending metadata
	KindMagnet // magnet
)

// Kinds lists every Kind, for pre-creating metric series.
var Kinds = []Kind{KindV1, KindV2, KindHybrid, KindMagnet}

// Entry is one watched torrent. Entries are immutable snapshots: when a torrent changes
// (metadata arrives, a reload) the registry publishes a new Entry with the same ID, so an
// Entry may be read without locks.
type Entry struct {
	// ID is the wire hash the torrent was first registered under; it stays the same across
	// reloads and metadata arrival, so callers can key their work by it.
	ID metainfo.Hash
	// Torrent is the parsed metainfo; nil while the state is pending_metadata.
	Torrent *metainfo.Torrent
	// Magnet is the magnet the torrent came from, when it came from one (its x.pe peers
	// and trackers); nil for a torrent known only from a file.
	Magnet *metainfo.Magnet
	// Origin says where it was loaded from: a file path, "magnets.txt:12", or
	// "argument 3".
	Origin string
}

// NewFileEntry is the entry of a torrent given as a .torrent file; NewMagnetEntry that of a
// magnet whose metadata is not known yet. The registry makes its entries with these, and
// one-shot commands use them to get the same views (TrackerInfo) of a single torrent.
func NewFileEntry(origin string, t *metainfo.Torrent) *Entry {
	return &Entry{ID: t.Hash(), Torrent: t, Origin: origin}
}

// NewMagnetEntry is the entry of a magnet; see NewFileEntry.
func NewMagnetEntry(origin string, m *metainfo.Magnet) *Entry {
	return &Entry{ID: m.Hash(), Magnet: m, Origin: origin}
}

// Pending reports whether the torrent still waits for its metadata (a magnet). The
// metainfo being known is the one representation of a torrent's state.
func (e *Entry) Pending() bool { return e.Torrent == nil }

// State is the entry's state: pending_metadata until its metainfo is known.
func (e *Entry) State() State {
	if e.Pending() {
		return StatePendingMetadata
	}
	return StateActive
}

// TorrentInfo is what a discovery source needs to know to announce a watched torrent.
type TorrentInfo struct {
	Hash   metainfo.Hash // wire info hash
	Label  string        // the `infohash` metric label value: Hash in hex
	Length int64         // total length in bytes, sent as `left`; <= 0 (size unknown) sends a non-zero left
	Tiers  [][]string    // announce-list tiers (BEP 12); a single `announce` is one tier of one URL
	// Hashes are every wire hash the torrent is announced and looked up under: a hybrid's
	// v1 hash and truncated v2 hash (BEP 52: v2-capable clients announce under both, and a
	// v2-only client is found under the v2 one only). Empty means Hash alone.
	Hashes []metainfo.Hash
}

// AnnounceHashes returns the wire hashes to announce under: Hash first, then the other
// Hashes, each once.
func (t TorrentInfo) AnnounceHashes() []metainfo.Hash {
	out := []metainfo.Hash{t.Hash}
	for _, h := range t.Hashes {
		if !h.IsZero() && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// TrackerInfo is the tracker view of the torrent: its ID, the size once known (a magnet's
// xl before the metadata), and its announce tiers.
func (e *Entry) TrackerInfo() TorrentInfo {
	info := TorrentInfo{Hash: e.ID, Label: e.ID.String(), Tiers: e.Trackers(), Hashes: e.AnnounceHashes()}
	switch {
	case e.Torrent != nil:
		info.Length = e.Torrent.TotalLength
	case e.Magnet != nil:
		info.Length = e.Magnet.Length
	}
	return info
}

// Hashes returns every wire hash of the torrent (both for a hybrid).
func (e *Entry) Hashes() []metainfo.Hash {
	if e.Torrent != nil {
		return e.Torrent.Hashes()
	}
	return e.Magnet.Hashes()
}

// AnnounceHashes returns the wire hashes trackers and the DHT know the torrent by, its ID
// first: both of a hybrid's (once its metadata or its magnet names both), else the ID.
func (e *Entry) AnnounceHashes() []metainfo.Hash {
	return TorrentInfo{Hash: e.ID, Hashes: e.Hashes()}.AnnounceHashes()
}

// Label is the canonical name: the v1 hash in hex, else the v2 hash in hex.
func (e *Entry) Label() string {
	if e.Torrent != nil {
		return e.Torrent.Label()
	}
	return e.Magnet.Label()
}

// Name is the torrent's name, from the metainfo or the magnet's dn.
func (e *Entry) Name() string {
	if e.Torrent != nil && e.Torrent.Name != "" {
		return e.Torrent.Name
	}
	if e.Magnet != nil {
		return e.Magnet.Name
	}
	return ""
}

// Kind returns the entry's kind.
func (e *Entry) Kind() Kind {
	if e.Torrent == nil {
		return KindMagnet
	}
	switch e.Torrent.Kind {
	case metainfo.KindV2:
		return KindV2
	case metainfo.KindHybrid:
		return KindHybrid
	}
	return KindV1
}

// Trackers returns the announce tiers: the metainfo's when known, else the magnet's tr
// list as one tier.
func (e *Entry) Trackers() [][]string {
	if e.Torrent != nil && len(e.Torrent.Trackers) > 0 {
		return e.Torrent.Trackers
	}
	if e.Magnet != nil && len(e.Magnet.Trackers) > 0 {
		return [][]string{e.Magnet.Trackers}
	}
	return nil
}

// MagnetSightings turns the magnet's x.pe peers given as IP literals into sightings of
// source magnet, keyed by the entry's ID. Peers given by host name (Magnet.PeerHosts) are
// left to the caller to resolve.
func (e *Entry) MagnetSightings() []Sighting {
	if e.Magnet == nil || len(e.Magnet.Peers) == 0 {
		return nil
	}
	out := make([]Sighting, 0, len(e.Magnet.Peers))
	for _, p := range e.Magnet.Peers {
		out = append(out, Sighting{Torrent: e.ID, Addr: p, Source: SourceMagnet})
	}
	return out
}

// WatchSources says where the watch list comes from. Empty fields are skipped.
type WatchSources struct {
	TorrentDir string   // walked recursively for *.torrent files
	MagnetFile string   // one magnet URI a line, '#' comments
	Args       []string // each a .torrent path or a magnet URI
	// APIDir holds the torrents added through the HTTP API: *.torrent files, and magnets
	// in APIMagnetFileName, both read like TorrentDir and MagnetFile. Absent is empty.
	APIDir string
	// Keep, when set, selects the torrents to watch (--shard k/n) by the primary hash of
	// each input: a file's Torrent.Hash(), a magnet's Magnet.Hash(). Inputs it refuses are
	// counted in LoadReport.Filtered. Every shard reads the same inputs, so each torrent
	// lands in exactly one shard (a hybrid listed once by btih and once by btmh-only
	// magnet could land in two).
	Keep func(metainfo.Hash) bool
}

// APIMagnetFileName is the magnet list in WatchSources.APIDir.
const APIMagnetFileName = "api-magnets.txt"

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// LoadFailure is one input that could not be loaded.
type LoadFailure struct {
	Origin string // path, "file:line" or "argument N"
	Err    error
}

// LoadReport summarises one load of the watch list.
type LoadReport struct {
	Loaded     int // torrents in the new watch list
	Failed     []LoadFailure
	Duplicates []string // origins skipped because the same torrent was already listed
	Filtered   int      // inputs left out by WatchSources.Keep
}

// Diff is what a reload changed, for the caller to start and stop work.
type Diff struct {
	Added   []*Entry // new torrents
	Removed []*Entry // torrents no longer listed (the entries as they were)
	// Changed are torrents still listed whose state or trackers changed, e.g. a magnet
	// that is now also given as a .torrent file.
	Changed []*Entry
}

// Counts are the numbers of watched torrents by state and by kind; every State and Kind
// is present, zero or not.
type Counts struct {
	ByState map[State]int
	ByKind  map[Kind]int
}

// snapshot is an immutable view of the watch list: readers load it atomically.
type snapshot struct {
	byHash  map[metainfo.Hash]*Entry
	entries []*Entry // sorted by Label
	counts  Counts
}

// Registry is the set of watched torrents, keyed by every wire hash peers may use (a
// hybrid is reachable by its v1 hash and its truncated v2 hash, and is one torrent). It is
// safe for concurrent use; Lookup never blocks.
type Registry struct {
	log  *slog.Logger
	snap atomic.Pointer[snapshot]

	mu sync.Mutex // serialises writers (Reload, SetMetadata)
	// metadata learned for magnets (SetMetadata), by every wire hash; kept across reloads.
	metadata map[metainfo.Hash]*metainfo.Torrent
}

// NewRegistry returns an empty registry.
func NewRegistry(logger *slog.Logger) *Registry {
	r := &Registry{
		log:      logger.With("component", "registry"),
		metadata: make(map[metainfo.Hash]*metainfo.Torrent),
	}
	r.snap.Store(newSnapshot(nil, nil))
	return r
}

func newSnapshot(byHash map[metainfo.Hash]*Entry, entries []*Entry) *snapshot {
	if byHash == nil {
		byHash = make(map[metainfo.Hash]*Entry)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Label() < entries[j].Label() })
	c := Counts{ByState: make(map[State]int), ByKind: make(map[Kind]int)}
	for _, s := range States {
		c.ByState[s] = 0
	}
	for _, k := range Kinds {
		c.ByKind[k] = 0
	}
	for _, e := range entries {
		c.ByState[e.State()]++
		c.ByKind[e.Kind()]++
	}
	return &snapshot{byHash: byHash, entries: entries, counts: c}
}

// Lookup finds a watched torrent by a wire hash (v1, or truncated v2). It takes no lock:
// the incoming-connection router calls it for every handshake.
func (r *Registry) Lookup(h metainfo.Hash) (*Entry, bool) {
	e, ok := r.snap.Load().byHash[h]
	return e, ok
}

// Entries returns the watched torrents sorted by label. The slice is the caller's.
func (r *Registry) Entries() []*Entry {
	return slices.Clone(r.snap.Load().entries)
}

// Len is the number of watched torrents.
func (r *Registry) Len() int { return len(r.snap.Load().entries) }

// Counts returns the numbers of watched torrents by state and kind, for metrics.
func (r *Registry) Counts() Counts {
	c := r.snap.Load().counts
	out := Counts{ByState: make(map[State]int, len(c.ByState)), ByKind: make(map[Kind]int, len(c.ByKind))}
	for k, v := range c.ByState {
		out.ByState[k] = v
	}
	for k, v := range c.ByKind {
		out.ByKind[k] = v
	}
	return out
}

// ErrUnknownTorrent is returned by SetMetadata for a hash nobody watches.
var ErrUnknownTorrent = errors.New("registry: unknown torrent")

// SetMetadata gives a pending magnet its info dictionary (fetched over BEP 9). The bytes
// must hash to the magnet's info hash(es). The returned entry is active; a torrent that is
// already active is returned unchanged. The metadata survives reloads for as long as the
// magnet stays listed.
func (r *Registry) SetMetadata(h metainfo.Hash, info []byte) (*Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load()
	e, ok := old.byHash[h]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownTorrent, h)
	}
	if !e.Pending() {
		return e, nil
	}
	t, err := metainfo.FromInfo(info, e.Magnet)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", e.Label(), err)
	}
	ne := &Entry{ID: e.ID, Torrent: t, Magnet: e.Magnet, Origin: e.Origin}

	byHash := make(map[metainfo.Hash]*Entry, len(old.byHash)+1)
	for k, v := range old.byHash {
		if v == e {
			v = ne
		}
		byHash[k] = v
	}
	r.indexExtra(byHash, ne)
	entries := make([]*Entry, 0, len(old.entries))
	for _, x := range old.entries {
		if x == e {
			x = ne
		}
		entries = append(entries, x)
	}
	for _, th := range t.Hashes() {
		r.metadata[th] = t
	}
	r.snap.Store(newSnapshot(byHash, entries))
	r.log.Info("metadata received", "infohash", ne.Label(), "name", t.Name, "pieces", t.Pieces, "kind", ne.Kind().String())
	return ne, nil
}

// indexExtra indexes the hashes an entry's metadata adds (the second hash of a hybrid
// known from a one-hash magnet). A hash that already names another torrent stays with it.
func (r *Registry) indexExtra(byHash map[metainfo.Hash]*Entry, e *Entry) {
	for _, h := range e.Hashes() {
		switch other, ok := byHash[h]; {
		case !ok:
			byHash[h] = e
		case other != e:
			r.log.Warn("torrent hash already listed under another entry; not indexed again",
				"infohash", e.Label(), "hash", h.String(), "other", other.Label(), "other_origin", other.Origin)
		}
	}
}

// builder collects a new watch list.
type builder struct {
	r       *Registry
	keep    func(metainfo.Hash) bool
	byHash  map[metainfo.Hash]*Entry
	entries []*Entry
	report  LoadReport
}

func (b *builder) fail(origin string, err error) {
	b.report.Failed = append(b.report.Failed, LoadFailure{Origin: origin, Err: err})
	b.r.log.Warn("torrent not loaded", "origin", origin, "err", err)
}

// find returns the entry already holding one of hs.
func (b *builder) find(hs []metainfo.Hash) *Entry {
	for _, h := range hs {
		if e, ok := b.byHash[h]; ok {
			return e
		}
	}
	return nil
}

func (b *builder) add(e *Entry) {
	b.entries = append(b.entries, e)
	for _, h := range e.Hashes() {
		b.byHash[h] = e
	}
}

// addFile adds a parsed .torrent file. A second file for the same torrent is a duplicate.
func (b *builder) addFile(origin string, t *metainfo.Torrent) {
	if b.keep != nil && !b.keep(t.Hash()) {
		b.report.Filtered++
		return
	}
	for _, w := range t.Warnings {
		b.r.log.Warn("torrent file warning", "origin", origin, "warning", w)
	}
	if other := b.find(t.Hashes()); other != nil {
		b.report.Duplicates = append(b.report.Duplicates, origin)
		b.r.log.Warn("same torrent listed twice; keeping the first", "infohash", t.Label(), "origin", origin, "first", other.Origin)
		return
	}
	b.add(NewFileEntry(origin, t))
}

// addMagnet adds a magnet. Files are added first, so a magnet for a torrent given as a
// file only lends that entry its magnet (x.pe peers).
func (b *builder) addMagnet(origin string, m *metainfo.Magnet) {
	if b.keep != nil && !b.keep(m.Hash()) {
		b.report.Filtered++
		return
	}
	if other := b.find(m.Hashes()); other != nil {
		b.report.Duplicates = append(b.report.Duplicates, origin)
		if other.Torrent != nil && other.Magnet == nil {
			other.Magnet = m // still private to the builder: not yet published
			b.r.log.Warn("magnet duplicates a torrent file; using the file's metadata", "infohash", m.Label(), "origin", origin, "file", other.Origin)
			return
		}
		b.r.log.Warn("same torrent listed twice; keeping the first", "infohash", m.Label(), "origin", origin, "first", other.Origin)
		return
	}
	e := NewMagnetEntry(origin, m)
	for _, h := range m.Hashes() {
		// Metadata learned earlier, when it matches every hash this magnet names in full
		// (the index is by the 20-byte wire hash only).
		if t, ok := b.r.metadata[h]; ok && matches(m, t) {
			e.Torrent = t
			break
		}
	}
	b.entries = append(b.entries, e)
	for _, h := range m.Hashes() {
		b.byHash[h] = e
	}
	if e.Torrent != nil {
		b.r.indexExtra(b.byHash, e)
	}
}

func matches(m *metainfo.Magnet, t *metainfo.Torrent) bool {
	return (m.InfoHashV1.IsZero() || m.InfoHashV1 == t.InfoHashV1) &&
		(m.InfoHashV2.IsZero() || m.InfoHashV2 == t.InfoHashV2)
}

// Reload reads the watch list from src and replaces the current one. Inputs that cannot be
// read or parsed are logged, reported and skipped; the others load. It returns what changed
// relative to the previous list. On ctx cancellation the list is left unchanged.
func (r *Registry) Reload(ctx context.Context, src WatchSources) (Diff, LoadReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := &builder{r: r, keep: src.Keep, byHash: make(map[metainfo.Hash]*Entry)}

	// Files first, so that a file supersedes a magnet for the same torrent whatever the
	// order of the inputs.
	var magnets []func()
	for _, dir := range []string{src.TorrentDir, src.APIDir} {
		if dir == "" || dir == src.APIDir && !fileExists(dir) {
			continue
		}
		if err := r.walkDir(ctx, dir, b); err != nil {
			return Diff{}, LoadReport{}, err
		}
	}
	for i, arg := range src.Args {
		if err := ctx.Err(); err != nil {
			return Diff{}, LoadReport{}, err
		}
		origin := fmt.Sprintf("argument %d", i+1)
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(arg)), "magnet:") {
			m, err := metainfo.ParseMagnet(strings.TrimSpace(arg))
			if err != nil {
				b.fail(origin, err)
				continue
			}
			magnets = append(magnets, func() { b.addMagnet(origin, m) })
			continue
		}
		t, err := metainfo.Load(arg)
		if err != nil {
			b.fail(arg, err)
			continue
		}
		b.addFile(arg, t)
	}
	for _, add := range magnets {
		add()
	}
	magnetFiles := []string{src.MagnetFile}
	if src.APIDir != "" {
		if p := filepath.Join(src.APIDir, APIMagnetFileName); fileExists(p) {
			magnetFiles = append(magnetFiles, p)
		}
	}
	for _, mf := range magnetFiles {
		if mf == "" {
			continue
		}
		lines, lineErrs, err := metainfo.LoadMagnets(mf)
		if err != nil {
			b.fail(mf, err)
		}
		for _, le := range lineErrs {
			origin := mf
			var lineErr *metainfo.LineError
			if errors.As(le, &lineErr) {
				origin = fmt.Sprintf("%s:%d", lineErr.Name, lineErr.Line)
			}
			b.fail(origin, le)
		}
		for _, l := range lines {
			b.addMagnet(fmt.Sprintf("%s:%d", mf, l.Line), l.Magnet)
		}
	}
	if err := ctx.Err(); err != nil {
		return Diff{}, LoadReport{}, err
	}

	old := r.snap.Load()
	diff := r.diff(old, b)
	// Forget metadata of magnets no longer listed.
	for _, e := range diff.Removed {
		for _, h := range e.Hashes() {
			delete(r.metadata, h)
		}
	}
	b.report.Loaded = len(b.entries)
	r.snap.Store(newSnapshot(b.byHash, b.entries))
	r.log.Info("watch list loaded", "torrents", len(b.entries), "failed", len(b.report.Failed),
		"duplicates", len(b.report.Duplicates), "filtered", b.report.Filtered, "added", len(diff.Added), "removed", len(diff.Removed), "changed", len(diff.Changed))
	return diff, b.report, nil
}

// diff matches the new entries to the old by any shared wire hash, carries the old IDs
// over, and sorts the rest into added and removed.
func (r *Registry) diff(old *snapshot, b *builder) Diff {
	var d Diff
	matched := make(map[*Entry]bool)
	for _, e := range b.entries {
		var prev *Entry
		for _, h := range e.Hashes() {
			if p, ok := old.byHash[h]; ok && !matched[p] {
				prev = p
				break
			}
		}
		if prev == nil {
			d.Added = append(d.Added, e)
			continue
		}
		matched[prev] = true
		e.ID = prev.ID
		if prev.Pending() != e.Pending() || !equalTiers(prev.Trackers(), e.Trackers()) {
			d.Changed = append(d.Changed, e)
		}
	}
	for _, p := range old.entries {
		if !matched[p] {
			d.Removed = append(d.Removed, p)
		}
	}
	return d
}

func equalTiers(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// walkDir loads every *.torrent below dir. An unreadable directory or file is reported
// and skipped.
func (r *Registry) walkDir(ctx context.Context, dir string, b *builder) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			b.fail(path, err)
			if d != nil && d.IsDir() && path != dir {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.EqualFold(filepath.Ext(path), ".torrent") {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Follow a symlinked file, never a symlinked directory (loops).
			st, err := os.Stat(path)
			if err != nil {
				b.fail(path, err)
				return nil
			}
			if !st.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		t, err := metainfo.Load(path)
		if err != nil {
			b.fail(path, err)
			return nil
		}
		b.addFile(path, t)
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}
