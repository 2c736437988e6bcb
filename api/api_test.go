package api

import (
	"context"
	"encoding/binary"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/status"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fakeDaemon serves fixed snapshots over a real store.
type fakeDaemon struct{ st *store.Store }

var t1 = metainfo.Hash{0xaa, 1}

func (f fakeDaemon) Torrents() []status.Torrent {
	return []status.Torrent{{InfoHash: t1.String(), Name: "one", Kind: "v1", State: "active", Pieces: 100,
		PieceLength: 16384, Peers: 3, Confirmed: 2, Sightings: map[string]uint64{"tracker": 5},
		Scrapes: []status.Scrape{{Tracker: "tracker.test", Seeders: 1, Leechers: 2, Downloaded: 7}}}}
}

func (f fakeDaemon) Torrent(_ context.Context, h metainfo.Hash) (status.TorrentDetail, bool, error) {
	if h != t1 {
		return status.TorrentDetail{}, false, nil
	}
	return status.TorrentDetail{Torrent: f.Torrents()[0], Trackers: []status.Tracker{}}, true, nil
}
func (f fakeDaemon) Sources() status.Sources      { return status.Sources{Trackers: []status.Tracker{}} }
func (f fakeDaemon) RecentProbes() []status.Probe { return []status.Probe{} }
func (f fakeDaemon) Store() *store.Store          { return f.st }

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "btda.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := st.Update(func(tx *store.Tx) error {
		for i := range 5 {
			var k store.PeerKey
			binary.BigEndian.PutUint32(k[12:], uint32(i))
			h := t1
			if i == 4 {
				h = metainfo.Hash{0xbb}
			}
			p := store.Peer{Flags: store.FlagHasPoint | store.FlagConfirmed, Sources: 1 << 1, Contacts: 2,
				FirstSeen: at, NumPieces: 100, Last: store.Point{Pieces: uint32(50 + 10*i), At: at.Add(time.Minute)},
				Country: "DE", Continent: "EU", Network: netip.MustParsePrefix("127.1.0.0/24"), Torrent: h}
			if err := tx.PutPeer(k, &p); err != nil {
				return err
			}
			d := store.Download{At: at.Add(time.Duration(i) * time.Minute), Peer: k, Torrent: h, Country: "DE", Continent: "EU", Speed: 1000}
			if err := tx.LogDownload(&d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	Register(mux, Config{Daemon: fakeDaemon{st}})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestGolden compares whole responses with testdata/*.json (go test -update rewrites them).
func TestGolden(t *testing.T) {
	srv := newServer(t)
	cases := map[string]string{
		"torrents":        "/api/v1/torrents",
		"torrent":         "/api/v1/torrents/" + t1.String(),
		"peers_page1":     "/api/v1/peers?limit=2&torrent=" + t1.String(),
		"downloads_since": "/api/v1/downloads?since=2026-12-01T10:02:00Z&limit=2",
		"sources":         "/api/v1/sources",
		"not_watched":     "/api/v1/torrents/" + strings.Repeat("0", 40),
		"bad_hash":        "/api/v1/torrents/..%2F..%2Fetc",
		"admin_disabled":  "POST /api/v1/torrents",
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			method := "GET"
			if m, p, ok := strings.Cut(path, " "); ok {
				method, path = m, p
			}
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := resp.Status + "\n" + string(b)
			file := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("GET %s:\n got %s\nwant %s", path, got, want)
			}
		})
	}
}

// TestPaging reads the peers and the download log one item per page: every item once, in order.
func TestPaging(t *testing.T) {
	srv := newServer(t)
	for _, path := range []string{"/api/v1/peers", "/api/v1/downloads"} {
		seen := 0
		cursor := ""
		for range 10 {
			u := srv.URL + path + "?limit=1"
			if cursor != "" {
				u += "&cursor=" + cursor
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s := string(b)
			seen += strings.Count(s, `"country":"DE"`)
			_, after, ok := strings.Cut(s, `"next_cursor":"`)
			if !ok {
				break
			}
			cursor, _, _ = strings.Cut(after, `"`)
		}
		if seen != 5 {
			t.Errorf("%s: %d items over the pages, want 5", path, seen)
		}
	}
}
