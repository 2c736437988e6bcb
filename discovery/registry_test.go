package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

const corpus = "../testdata/torrents"

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestRegistry(t testing.TB) (*Registry, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	return NewRegistry(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))), buf
}

func loadCorpus(t testing.TB, name string) *metainfo.Torrent {
	t.Helper()
	tor, err := metainfo.Load(filepath.Join(corpus, name))
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

// copyFile copies a corpus torrent to dst, creating directories.
func copyFile(t testing.TB, name, dst string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func origins(fs []LoadFailure) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Origin)
	}
	return out
}

func TestRegistryLoad(t *testing.T) {
	dir := t.TempDir()
	tdir := filepath.Join(dir, "torrents")
	copyFile(t, "real/sintel.torrent", filepath.Join(tdir, "sintel.torrent"))
	copyFile(t, "libtorrent/v2_hybrid.torrent", filepath.Join(tdir, "sub", "deeper", "hybrid.TORRENT"))
	copyFile(t, "libtorrent/v2_only.torrent", filepath.Join(tdir, "sub", "v2.torrent"))
	copyFile(t, "libtorrent/base.torrent", filepath.Join(tdir, "notes.txt")) // not *.torrent: ignored
	bad := writeFile(t, filepath.Join(tdir, "bad.torrent"), "d4:infod12:piece lengthi-1eee")

	debian := loadCorpus(t, "real/debian-10.8.0-amd64-netinst.iso.torrent")
	magnets := writeFile(t, filepath.Join(dir, "magnets.txt"), strings.Join([]string{
		"# watched magnets",
		"magnet:?xt=urn:btih:" + strings.Repeat("ab", 20) + "&dn=pending&tr=udp%3A%2F%2F127.0.0.1%3A6969&x.pe=127.0.0.1:6881",
		"",
		"magnet:?xt=urn:btih:nothex",
		debian.Magnet().String(), // the same torrent as an argument file below: file wins
	}, "\n"))
	debPath := filepath.Join(corpus, "real/debian-10.8.0-amd64-netinst.iso.torrent")
	missing := filepath.Join(dir, "missing.torrent")
	args := []string{
		debPath,
		"magnet:?xt=urn:btmh:1220" + strings.Repeat("cd", 32),
		missing,
		"magnet:?xt=urn:btih:zz",
	}

	r, logs := newTestRegistry(t)
	diff, rep, err := r.Reload(context.Background(), WatchSources{TorrentDir: tdir, MagnetFile: magnets, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	// sintel, hybrid, v2, debian, two pending magnets.
	if rep.Loaded != 6 || r.Len() != 6 || len(diff.Added) != 6 || len(diff.Removed) != 0 {
		t.Fatalf("loaded %d len %d added %d removed %d; failed %v", rep.Loaded, r.Len(), len(diff.Added), len(diff.Removed), rep.Failed)
	}
	wantFailed := []string{bad, "argument 3", "argument 4", magnets + ":4"}
	got := origins(rep.Failed)
	if strings.Join(got, "|") != strings.Join([]string{bad, missing, "argument 4", magnets + ":4"}, "|") {
		t.Errorf("failed origins %q, want like %q", got, wantFailed)
	}
	for _, f := range rep.Failed {
		if f.Err == nil || !strings.Contains(logs.String(), f.Origin) {
			t.Errorf("failure %q not logged with its origin", f.Origin)
		}
	}
	if !strings.Contains(rep.Failed[0].Err.Error(), "info.piece length: must be > 0") {
		t.Errorf("bad file error %v", rep.Failed[0].Err)
	}
	if len(rep.Duplicates) != 1 || rep.Duplicates[0] != magnets+":5" {
		t.Errorf("duplicates %q", rep.Duplicates)
	}
	if !strings.Contains(logs.String(), "component=registry") {
		t.Error("logs lack the component attribute")
	}

	// A hybrid is one torrent reachable by both wire hashes.
	hybrid := loadCorpus(t, "libtorrent/v2_hybrid.torrent")
	e1, ok1 := r.Lookup(hybrid.InfoHashV1)
	e2, ok2 := r.Lookup(hybrid.InfoHashV2.Truncate())
	if !ok1 || !ok2 || e1 != e2 || e1.Kind() != KindHybrid || e1.State() != StateActive || e1.ID != hybrid.InfoHashV1 {
		t.Fatalf("hybrid lookup: %v %v %p %p", ok1, ok2, e1, e2)
	}
	// The debian file superseded its magnet, and keeps the magnet for its peers.
	deb, ok := r.Lookup(debian.InfoHashV1)
	if !ok || deb.Torrent == nil || deb.Magnet == nil || deb.Origin != debPath || deb.State() != StateActive {
		t.Fatalf("debian entry %+v", deb)
	}
	pending, ok := r.Lookup(mustHash(t, strings.Repeat("ab", 20)))
	if !ok || pending.State() != StatePendingMetadata || pending.Kind() != KindMagnet || pending.Name() != "pending" ||
		pending.Origin != magnets+":2" || len(pending.Magnet.Peers) != 1 {
		t.Fatalf("pending entry %+v", pending)
	}
	if tr := pending.Trackers(); len(tr) != 1 || tr[0][0] != "udp://127.0.0.1:6969" {
		t.Errorf("magnet trackers %q", tr)
	}
	sg := pending.MagnetSightings()
	if len(sg) != 1 || sg[0].Torrent != pending.ID || sg[0].Addr.String() != "127.0.0.1:6881" || sg[0].Source != SourceMagnet {
		t.Errorf("magnet sightings %+v", sg)
	}
	if e1.MagnetSightings() != nil {
		t.Error("sightings from an entry without magnet peers")
	}

	c := r.Counts()
	wantState := map[State]int{StateActive: 4, StatePendingMetadata: 2}
	wantKind := map[Kind]int{KindV1: 2, KindV2: 1, KindHybrid: 1, KindMagnet: 2}
	for _, s := range States {
		if c.ByState[s] != wantState[s] {
			t.Errorf("state %s: %d, want %d", s, c.ByState[s], wantState[s])
		}
	}
	for _, k := range Kinds {
		if c.ByKind[k] != wantKind[k] {
			t.Errorf("kind %s: %d, want %d", k, c.ByKind[k], wantKind[k])
		}
	}
	es := r.Entries()
	for i := 1; i < len(es); i++ {
		if es[i-1].Label() >= es[i].Label() {
			t.Errorf("entries not sorted by label")
		}
	}
}

func mustHash(t testing.TB, s string) metainfo.Hash {
	t.Helper()
	h, err := metainfo.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRegistryDuplicates(t *testing.T) {
	dir := t.TempDir()
	a := copyFile(t, "real/sintel.torrent", filepath.Join(dir, "a.torrent"))
	b := copyFile(t, "real/sintel.torrent", filepath.Join(dir, "b.torrent"))
	sintel := loadCorpus(t, "real/sintel.torrent")
	hybrid := loadCorpus(t, "libtorrent/v2_hybrid.torrent")
	// A btmh-only magnet for the hybrid, given before its file: still one torrent, the file's.
	hm := &metainfo.Magnet{InfoHashV2: hybrid.InfoHashV2}
	hpath := copyFile(t, "libtorrent/v2_hybrid.torrent", filepath.Join(t.TempDir(), "h.torrent"))

	r, logs := newTestRegistry(t)
	_, rep, err := r.Reload(context.Background(), WatchSources{
		TorrentDir: dir,
		Args:       []string{sintel.Magnet().String(), hm.String(), hpath, hm.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Loaded != 2 || len(rep.Failed) != 0 {
		t.Fatalf("loaded %d failed %v", rep.Loaded, rep.Failed)
	}
	if strings.Join(rep.Duplicates, " ") != b+" argument 1 argument 2 argument 4" {
		t.Errorf("duplicates %q", rep.Duplicates)
	}
	e, _ := r.Lookup(sintel.InfoHashV1)
	if e.Origin != a || e.State() != StateActive || e.Magnet == nil {
		t.Errorf("sintel entry %+v", e)
	}
	h, _ := r.Lookup(hybrid.InfoHashV1)
	if h.Origin != hpath || h.Kind() != KindHybrid {
		t.Errorf("hybrid entry %+v", h)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n < 4 {
		t.Errorf("%d warnings logged, want a warning per duplicate:\n%s", n, logs)
	}
}

func TestRegistryReloadDiff(t *testing.T) {
	dir := t.TempDir()
	sintelPath := copyFile(t, "real/sintel.torrent", filepath.Join(dir, "sintel.torrent"))
	copyFile(t, "real/continuum.torrent", filepath.Join(dir, "continuum.torrent"))
	magnetV1 := "magnet:?xt=urn:btih:" + strings.Repeat("12", 20)
	arch := loadCorpus(t, "real/archlinux-2011.08.19-netinstall-i686.iso.torrent")

	r, _ := newTestRegistry(t)
	ctx := context.Background()
	d, _, err := r.Reload(ctx, WatchSources{TorrentDir: dir, Args: []string{magnetV1, arch.Magnet().String()}})
	if err != nil || len(d.Added) != 4 {
		t.Fatalf("first load: %v %d", err, len(d.Added))
	}
	archBefore, _ := r.Lookup(arch.InfoHashV1)

	// Unchanged reload: nothing added, removed or changed.
	d, _, _ = r.Reload(ctx, WatchSources{TorrentDir: dir, Args: []string{magnetV1, arch.Magnet().String()}})
	if len(d.Added)+len(d.Removed)+len(d.Changed) != 0 {
		t.Errorf("no-op reload diff %+v", d)
	}

	// Remove sintel, drop one magnet, add a new one, give arch as a file now.
	if err := os.Remove(sintelPath); err != nil {
		t.Fatal(err)
	}
	archPath := copyFile(t, "real/archlinux-2011.08.19-netinstall-i686.iso.torrent", filepath.Join(dir, "arch.torrent"))
	newMagnet := "magnet:?xt=urn:btih:" + strings.Repeat("34", 20)
	d, rep, err := r.Reload(ctx, WatchSources{TorrentDir: dir, Args: []string{newMagnet, arch.Magnet().String()}})
	if err != nil {
		t.Fatal(err)
	}
	labels := func(es []*Entry) string {
		var s []string
		for _, e := range es {
			s = append(s, e.Label())
		}
		return strings.Join(s, ",")
	}
	sintel := loadCorpus(t, "real/sintel.torrent")
	if got := labels(d.Added); got != strings.Repeat("34", 20) {
		t.Errorf("added %s", got)
	}
	if got := labels(d.Removed); !strings.Contains(got, sintel.Label()) || !strings.Contains(got, strings.Repeat("12", 20)) || len(d.Removed) != 2 {
		t.Errorf("removed %s", got)
	}
	if len(d.Changed) != 1 || d.Changed[0].Label() != arch.Label() || d.Changed[0].State() != StateActive || d.Changed[0].Origin != archPath {
		t.Errorf("changed %+v", d.Changed)
	}
	if d.Changed[0].ID != archBefore.ID || len(rep.Duplicates) != 1 {
		t.Errorf("ID not stable or duplicate not reported: %v", rep.Duplicates)
	}
	if _, ok := r.Lookup(sintel.InfoHashV1); ok {
		t.Error("removed torrent still found")
	}
}

func TestRegistrySetMetadata(t *testing.T) {
	hybrid := loadCorpus(t, "libtorrent/v2_hybrid.torrent")
	v1 := loadCorpus(t, "libtorrent/base.torrent")
	// A btih-only magnet of a hybrid: after metadata it is reachable by the v2 hash too.
	hm := &metainfo.Magnet{InfoHashV1: hybrid.InfoHashV1, Name: "from magnet", Trackers: []string{"udp://127.0.0.1:1"}}
	args := []string{hm.String(), v1.Magnet().String()}

	r, _ := newTestRegistry(t)
	ctx := context.Background()
	if _, _, err := r.Reload(ctx, WatchSources{Args: args}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup(hybrid.InfoHashV2.Truncate()); ok {
		t.Fatal("v2 hash known before metadata")
	}
	if _, err := r.SetMetadata(metainfo.Hash{9}, hybrid.Info); !errors.Is(err, ErrUnknownTorrent) {
		t.Errorf("unknown hash: %v", err)
	}
	if _, err := r.SetMetadata(hybrid.InfoHashV1, v1.Info); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("wrong metadata: %v", err)
	}
	before, _ := r.Lookup(hybrid.InfoHashV1)
	e, err := r.SetMetadata(hybrid.InfoHashV1, hybrid.Info)
	if err != nil {
		t.Fatal(err)
	}
	if e.State() != StateActive || e.Kind() != KindHybrid || e.Torrent.Pieces != hybrid.Pieces || e.ID != before.ID || before.State() != StatePendingMetadata {
		t.Fatalf("entry after metadata %+v (before %+v)", e, before)
	}
	if byV2, ok := r.Lookup(hybrid.InfoHashV2.Truncate()); !ok || byV2 != e {
		t.Error("hybrid not reachable by its v2 hash after metadata")
	}
	if again, err := r.SetMetadata(hybrid.InfoHashV2.Truncate(), hybrid.Info); err != nil || again != e {
		t.Errorf("second SetMetadata: %v", err)
	}
	if c := r.Counts(); c.ByState[StateActive] != 1 || c.ByKind[KindHybrid] != 1 || c.ByKind[KindMagnet] != 1 {
		t.Errorf("counts %+v", c)
	}

	// Metadata survives a reload while the magnet stays listed.
	d, _, err := r.Reload(ctx, WatchSources{Args: args})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added)+len(d.Removed)+len(d.Changed) != 0 {
		t.Errorf("reload diff %+v", d)
	}
	if e, _ := r.Lookup(hybrid.InfoHashV2.Truncate()); e == nil || e.State() != StateActive {
		t.Error("metadata lost on reload")
	}
	// The same hybrid named by its btmh now: the learned metadata applies. A btmh that
	// shares only the 20-byte prefix does not get it.
	byV2 := (&metainfo.Magnet{InfoHashV2: hybrid.InfoHashV2}).String()
	if _, _, err := r.Reload(ctx, WatchSources{Args: []string{byV2}}); err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Lookup(hybrid.InfoHashV1); e == nil || e.State() != StateActive || e.Kind() != KindHybrid {
		t.Errorf("btmh magnet did not get the learned metadata: %+v", e)
	}
	forged := hybrid.InfoHashV2
	forged[31] ^= 1
	if _, _, err := r.Reload(ctx, WatchSources{Args: []string{(&metainfo.Magnet{InfoHashV2: forged}).String()}}); err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Lookup(hybrid.InfoHashV2.Truncate()); e == nil || e.State() != StatePendingMetadata {
		t.Errorf("metadata applied to a different full v2 hash: %+v", e)
	}
	if _, _, err := r.Reload(ctx, WatchSources{Args: args}); err != nil {
		t.Fatal(err)
	}
	// Dropped and re-added, the magnet starts over.
	if _, _, err := r.Reload(ctx, WatchSources{Args: args[1:]}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Reload(ctx, WatchSources{Args: args}); err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Lookup(hybrid.InfoHashV1); e == nil || e.State() != StatePendingMetadata {
		t.Errorf("re-added magnet kept stale metadata: %+v", e)
	}
}

// TestRegistryKeep: the shard filter sees each input's primary hash, and shards that
// split the same inputs together watch each torrent exactly once.
func TestRegistryKeep(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"real/sintel.torrent", "real/continuum.torrent", "libtorrent/v2_only.torrent", "libtorrent/v2_hybrid.torrent"} {
		copyFile(t, name, filepath.Join(dir, filepath.Base(name)))
	}
	var args []string
	for i := range 20 {
		args = append(args, fmt.Sprintf("magnet:?xt=urn:btih:%040x", i+1))
	}
	total := 0
	seen := make(map[string]bool)
	for k := range 3 {
		r, _ := newTestRegistry(t)
		keep := func(h metainfo.Hash) bool { return int(h[19])%3 == k }
		_, rep, err := r.Reload(context.Background(), WatchSources{TorrentDir: dir, Args: args, Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Loaded+rep.Filtered != 24 {
			t.Errorf("shard %d: loaded %d + filtered %d != 24", k, rep.Loaded, rep.Filtered)
		}
		for _, e := range r.Entries() {
			if !keep(e.ID) || seen[e.Label()] {
				t.Errorf("shard %d: %s kept wrongly or twice", k, e.Label())
			}
			seen[e.Label()] = true
		}
		total += rep.Loaded
	}
	if total != 24 {
		t.Errorf("shards watch %d torrents together, want 24", total)
	}
}

func TestRegistryReloadCancelled(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "real/sintel.torrent", filepath.Join(dir, "sintel.torrent"))
	r, _ := newTestRegistry(t)
	if _, _, err := r.Reload(context.Background(), WatchSources{TorrentDir: dir}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.Reload(ctx, WatchSources{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if r.Len() != 1 {
		t.Error("cancelled reload changed the list")
	}
}

func TestRegistryMissingSources(t *testing.T) {
	r, _ := newTestRegistry(t)
	dir := t.TempDir()
	_, rep, err := r.Reload(context.Background(), WatchSources{
		TorrentDir: filepath.Join(dir, "nope"),
		MagnetFile: filepath.Join(dir, "nope.txt"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 2 || rep.Loaded != 0 {
		t.Errorf("report %+v", rep)
	}
}

// TestRegistryConcurrent runs lookups and counts against reloads and metadata arrival;
// -race checks the snapshot publication. It also checks no goroutine is left behind.
func TestRegistryConcurrent(t *testing.T) {
	before := runtime.NumGoroutine()
	hybrid := loadCorpus(t, "libtorrent/v2_hybrid.torrent")
	sintel := loadCorpus(t, "real/sintel.torrent")
	args := []string{hybrid.Magnet().String(), sintel.Magnet().String()}
	r, _ := newTestRegistry(t)
	ctx := context.Background()
	if _, _, err := r.Reload(ctx, WatchSources{Args: args}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if e, ok := r.Lookup(hybrid.InfoHashV1); ok {
					_ = e.Kind().String() + e.State().String() + e.Label()
				}
				_ = r.Counts()
				_ = r.Entries()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if _, _, err := r.Reload(ctx, WatchSources{Args: args[:1+i%2]}); err != nil {
				t.Error(err)
				return
			}
			if _, err := r.SetMetadata(hybrid.InfoHashV1, hybrid.Info); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	// Goroutines of earlier tests may still be winding down: wait, bounded, for the count.
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > before && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	if n > before {
		t.Errorf("%d goroutines after, %d before", n, before)
	}
}

func BenchmarkRegistryLookup(b *testing.B) {
	r := NewRegistry(slog.New(slog.DiscardHandler))
	var args []string
	for i := range 10000 {
		args = append(args, fmt.Sprintf("magnet:?xt=urn:btih:%040x", i+1))
	}
	if _, _, err := r.Reload(context.Background(), WatchSources{Args: args}); err != nil {
		b.Fatal(err)
	}
	h := mustHash(b, fmt.Sprintf("%040x", 5000))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := r.Lookup(h); !ok {
				b.Fatal("not found")
			}
		}
	})
}

// TestTrackerInfoHashes: trackers and the DHT get both of a hybrid's wire hashes (the ID
// first); a v1 torrent, a v2-only torrent and a one-hash magnet get their one hash.
func TestTrackerInfoHashes(t *testing.T) {
	hybrid := loadCorpus(t, "libtorrent/v2_hybrid.torrent")
	v2trunc := hybrid.InfoHashV2.Truncate()
	e := NewFileEntry("h", hybrid)
	if got := e.TrackerInfo().AnnounceHashes(); !slices.Equal(got, []metainfo.Hash{hybrid.InfoHashV1, v2trunc}) {
		t.Errorf("hybrid file: %v", got)
	}
	// Registered first under its v2 hash (a btmh-only magnet), the ID leads.
	m := &metainfo.Magnet{InfoHashV2: hybrid.InfoHashV2}
	me := &Entry{ID: v2trunc, Magnet: m, Torrent: hybrid}
	if got := me.AnnounceHashes(); !slices.Equal(got, []metainfo.Hash{v2trunc, hybrid.InfoHashV1}) {
		t.Errorf("hybrid by v2 magnet: %v", got)
	}
	pending := NewMagnetEntry("m", m)
	if got := pending.TrackerInfo().AnnounceHashes(); !slices.Equal(got, []metainfo.Hash{v2trunc}) {
		t.Errorf("pending v2 magnet: %v", got)
	}
	if got := (TorrentInfo{Hash: v2trunc}).AnnounceHashes(); !slices.Equal(got, []metainfo.Hash{v2trunc}) {
		t.Errorf("no Hashes: %v", got)
	}
}
