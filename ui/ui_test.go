package ui

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/status"
)

var (
	t1  = metainfo.Hash{0xaa, 1}
	now = time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
)

// fakeDaemon serves fixed views over a real store.
type fakeDaemon struct{ st *store.Store }

func (f fakeDaemon) Torrents() []status.Torrent {
	return []status.Torrent{{InfoHash: t1.String(), Name: "one <b>&</b>", Kind: "v1", State: "active", Pieces: 100,
		PieceLength: 16384, Peers: 5, Seeds: 1, Confirmed: 4, Sightings: map[string]uint64{"tracker": 9},
		Scrapes: []status.Scrape{{Tracker: "tracker.test", Seeders: 1, Leechers: 2, Downloaded: 17}}}}
}

func (f fakeDaemon) Torrent(_ context.Context, h metainfo.Hash) (status.TorrentDetail, bool, error) {
	if h != t1 {
		return status.TorrentDetail{}, false, nil
	}
	return status.TorrentDetail{Torrent: f.Torrents()[0], Progress: [11]uint64{5: 2, 10: 3},
		Trackers: []status.Tracker{{Host: "tracker.test", IntervalSeconds: 1800, Announces: 3, Failures: map[string]uint64{"timeout": 2}}}}, true, nil
}

func (f fakeDaemon) Sources() status.Sources {
	return status.Sources{Trackers: []status.Tracker{{Host: "tracker.test", LastSuccess: now.Add(-time.Minute),
		IntervalSeconds: 1800, Announces: 31, Scrapes: 7, PeersReceived: 120, Failures: map[string]uint64{"refused": 4}}},
		DHT: &status.DHT{Nodes: 42, GoodNodes: 40, Lookups: 13, PeersReceived: 77, Watched: 1, Failures: map[string]uint64{}}}
}

func (f fakeDaemon) RecentProbes() []status.Probe {
	return []status.Probe{{At: now, Torrent: t1.String(), Direction: "outgoing", Source: "tracker", Outcome: "ok",
		Seconds: 1.25, Address: "127.1.0.0/24", Client: "qBittorrent", Pieces: 50, Of: 100, Messages: 12},
		{At: now.Add(-time.Second), Direction: "incoming", Outcome: "refused", Error: "<connection refused>", Address: "127.1.0.0/24"}}
}
func (f fakeDaemon) Store() *store.Store { return f.st }

// newServer fills a store with 4 confirmed downloads of t1 (DE ×3 over two hours, FR) and
// their peers.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "btda.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := now.Add(-2 * time.Hour)
	if err := st.Update(func(tx *store.Tx) error {
		for i := range 5 {
			var k store.PeerKey
			binary.BigEndian.PutUint32(k[12:], uint32(i))
			country, cont := "DE", "EU"
			if i == 3 {
				country, cont = "FR", "EU"
			}
			p := store.Peer{Flags: store.FlagHasPoint, Sources: 1 << 1, Contacts: 2, FirstSeen: at, NumPieces: 100,
				First: store.Point{Pieces: uint32(10 * i), At: at}, Last: store.Point{Pieces: 100, At: at.Add(time.Minute)},
				MaxSpeed: 50e3 * float64(i+1), Country: country, Continent: cont,
				Network: netip.MustParsePrefix("127.1.0.0/24"), Torrent: t1}
			if err := tx.PutPeer(k, &p); err != nil {
				return err
			}
			if i == 4 {
				continue
			}
			d := store.Download{At: at.Add(time.Duration(i) * 40 * time.Minute), Peer: k, Torrent: t1, Country: country, Continent: cont, Speed: 1000}
			if err := tx.LogDownload(&d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	Register(mux, Config{Daemon: fakeDaemon{st}, Now: func() time.Time { return now }})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPages loads every page and checks its status and key numbers.
func TestPages(t *testing.T) {
	srv := newServer(t)
	cases := []struct {
		path    string
		code    int
		want    []string
		notWant []string
	}{
		{"/status/", 200, []string{`id="confirmed-all">4<`, `id="confirmed-` + t1.String() + `">4<`, `id="peers-` + t1.String() + `">5<`,
			`id="seeds-` + t1.String() + `">1<`, "one &lt;b&gt;&amp;&lt;/b&gt;", `href="/status/torrent/` + t1.String(),
			"4 confirmed downloads in the last 48 hours", "<svg"}, []string{"<b>", "<script"}},
		{"/status/torrent/" + t1.String(), 200, []string{`id="confirmed">4<`, `id="scrape">17<`, `id="country-DE">3<`,
			`id="country-FR">1<`, "75.0%", "tracker.test", "timeout 2", "Confirmed downloads per hour", "3 hour(s) from 2026-12-01 10:00:00 UTC",
			"<td>EU</td><td class=\"n\">5</td><td class=\"n\">0</td><td class=\"n\">1</td><td class=\"n\">4</td>"}, nil},
		{"/status/torrent/" + strings.ToUpper(t1.String()), 200, []string{`id="confirmed">4<`}, nil},
		{"/status/torrent/" + strings.Repeat("0", 40), 404, []string{"is not watched"}, nil},
		{"/status/torrent/..%2f..%2fetc", 400, []string{"want 40 or 64 hex digits"}, nil},
		{"/status/sources", 200, []string{"tracker.test", ">31<", ">120<", "refused 4", "2026-12-01 12:29:00 UTC", "42 (40)", ">77<"}, nil},
		{"/status/probes", 200, []string{"qBittorrent", "50/100", "1.250", "&lt;connection refused&gt;", "127.1.0.0/24"}, []string{"<connection"}},
		{"/status/nothing", 404, []string{"no status page /status/nothing"}, nil},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			code, body := get(t, srv.URL+c.path)
			if code != c.code {
				t.Fatalf("status %d, want %d\n%s", code, c.code, body)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("missing %q", w)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(body, w) {
					t.Errorf("unexpected %q", w)
				}
			}
			if strings.Contains(strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, ""), "http") {
				t.Errorf("page refers to an external address")
			}
		})
	}
	if code, _ := get(t, srv.URL+"/status"); code != 200 { // redirected to /status/
		t.Errorf("/status: %d", code)
	}
}
