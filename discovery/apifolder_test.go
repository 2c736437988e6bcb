package discovery

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/btda/btda/discovery/metainfo"
)

func TestAPIFolder(t *testing.T) {
	sintel := loadCorpus(t, "real/sintel.torrent")
	hybrid := loadCorpus(t, "libtorrent/v2_hybrid.torrent")
	data, err := os.ReadFile(filepath.Join(corpus, "real", "sintel.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "api")
	f := APIFolder{Dir: dir}
	if err := f.AddTorrent(sintel, data); err != nil {
		t.Fatal(err)
	}
	if err := f.AddMagnet(hybrid.Magnet().String()); err != nil {
		t.Fatal(err)
	}
	if err := f.AddMagnet("magnet:?xt=urn:btih:x\nmagnet:?xt=urn:btih:y"); err == nil {
		t.Error("a magnet with a line break was kept")
	}
	r, _ := newTestRegistry(t)
	src := WatchSources{APIDir: dir}
	if _, rep, err := r.Reload(context.Background(), src); err != nil || rep.Loaded != 2 || len(rep.Failed) != 0 {
		t.Fatalf("reload of the API folder: %+v %v", rep, err)
	}
	other := &Entry{ID: sintel.Hash(), Origin: "/etc/btda/torrents/sintel.torrent"}
	if ok, err := f.Remove(other); ok || err != nil {
		t.Fatalf("an entry from elsewhere was removed: %v %v", ok, err)
	}
	for _, h := range []*Entry{mustLookup(t, r, sintel), mustLookup(t, r, hybrid)} {
		if ok, err := f.Remove(h); !ok || err != nil {
			t.Fatalf("remove %s: %v %v", h.Origin, ok, err)
		}
	}
	if _, rep, err := r.Reload(context.Background(), src); err != nil || rep.Loaded != 0 {
		t.Fatalf("after removing both: %+v %v", rep, err)
	}
}

func mustLookup(t *testing.T, r *Registry, tor *metainfo.Torrent) *Entry {
	t.Helper()
	e, ok := r.Lookup(tor.Hashes()[0])
	if !ok {
		t.Fatal("not watched")
	}
	return e
}
