package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/internal/swarmtest"
	"github.com/btda/btda/status"
)

// apiList GETs every page of a list endpoint (limit per page) and decodes the items into T.
func apiList[T any](t *testing.T, base, path string, q url.Values) []T {
	t.Helper()
	var out []T
	for pages := 0; ; pages++ {
		var env struct {
			Data   []T    `json:"data"`
			Next   string `json:"next_cursor"`
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		code := apiGet(t, base+path+"?"+q.Encode(), &env)
		if code != 200 || env.Status != "success" {
			t.Fatalf("GET %s: %d %s %s", path, code, env.Status, env.Error)
		}
		out = append(out, env.Data...)
		if env.Next == "" {
			return out
		}
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		q.Set("cursor", env.Next)
	}
}

func apiGet(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", u, err, b)
		}
	}
	return resp.StatusCode
}

func apiDo(t *testing.T, method, u, ctype string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// swarmDataCrossAt spreads the leechers' crossings over 3–7 s after btda first reaches them
// (Anchored) or of the run.
func swarmDataCrossAt(p *swarmtest.Peer) time.Duration {
	return 3*time.Second + time.Duration(p.Index%5)*time.Second
}

// TestDataOutSwarm runs btda against the test swarm and checks that what comes out of it
// agrees with /metrics: the API's torrents and download log (read in small pages), and
// `btda export` of the stopped store (one downloads row per confirmed download per torrent
// and country, one peers row per stored identity). It also checks the admin endpoints and
// hostile inputs against the running daemon.
func TestDataOutSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Anchored: each leecher crosses 3–7 s after btda first reaches it, however slow the
	// machine (a busy one once left three leechers crossed before btda's first visit).
	r := startE2E(ctx, t, e2eScenario{RunFor: 11 * time.Second, CrossAt: swarmDataCrossAt, Anchored: true})
	d := startDaemonOn(t, r.cfgPath, "--web.enable-admin-api")
	exposition, truth, wantTruth := r.waitConfirmed(t, d, nil)
	want := confirmedDownloads(exposition)
	checkConfirmed(t, want, wantTruth, truth)

	// The API agrees with /metrics.
	torrents := apiList[status.Torrent](t, d.url, "/api/v1/torrents", url.Values{})
	if len(torrents) != r.sc.Torrents {
		t.Fatalf("%d torrents in the API, want %d", len(torrents), r.sc.Torrents)
	}
	byTorrent := map[string]int{}
	for k, v := range want {
		byTorrent[strings.Split(k, "/")[0]] += v
	}
	for _, tr := range torrents {
		label := tr.InfoHash
		if int(tr.Confirmed) != byTorrent[label] {
			t.Errorf("torrent %s: API confirmed %d, /metrics %d", label, tr.Confirmed, byTorrent[label])
		}
		if tr.Sightings["tracker"] == 0 {
			t.Errorf("torrent %s: no tracker sightings counted", label)
		}
	}
	dls := apiList[status.Download](t, d.url, "/api/v1/downloads", url.Values{"limit": {"2"}})
	gotDL := map[string]int{}
	for _, dl := range dls {
		gotDL[dl.Torrent+"/"+dl.Country]++
	}
	checkConfirmed(t, gotDL, want, truth)
	peers := apiList[status.Peer](t, d.url, "/api/v1/peers", url.Values{"limit": {"7"}})
	if len(peers) == 0 {
		t.Fatal("no peers in the API")
	}
	one := apiList[status.Peer](t, d.url, "/api/v1/peers", url.Values{"torrent": {torrents[0].InfoHash}})
	for _, p := range one {
		if p.Torrent != torrents[0].InfoHash || p.Address != "" {
			t.Fatalf("peer filter: %+v", p)
		}
	}
	var det struct{ Data status.TorrentDetail }
	if code := apiGet(t, d.url+"/api/v1/torrents/"+torrents[0].InfoHash, &det); code != 200 {
		t.Fatalf("torrent detail: %d", code)
	}
	var sum uint64
	for _, n := range det.Data.Progress {
		sum += n
	}
	if sum == 0 || len(det.Data.Trackers) == 0 {
		t.Errorf("torrent detail: progress %v, trackers %+v", det.Data.Progress, det.Data.Trackers)
	}
	var src struct{ Data status.Sources }
	apiGet(t, d.url+"/api/v1/sources", &src)
	if len(src.Data.Trackers) == 0 || src.Data.Trackers[0].Announces == 0 || src.Data.DHT == nil {
		t.Errorf("sources: %+v", src.Data)
	}
	probes := apiList[status.Probe](t, d.url, "/api/v1/probes/recent", url.Values{})
	if len(probes) == 0 || strings.Count(probes[0].Address, ".") != 3 || !strings.HasSuffix(probes[0].Address, "/24") {
		t.Errorf("recent probes: %d, first %+v", len(probes), probes)
	}

	checkHostile(t, d.url)
	checkAdmin(t, d.url, r.dir, torrents[0].InfoHash)

	// While btda runs, its store is locked: export says so and names --url.
	_, stderr, code := runBTDA(t, "export", "downloads", "--store", r.dbPath)
	if code != 1 || !strings.Contains(stderr, "locked") || !strings.Contains(stderr, "--url") {
		t.Errorf("export of a held store: code %d, %s", code, stderr)
	}
	viaURL, stderr, code := runBTDA(t, "export", "downloads", "--url", d.url)
	if code != 0 {
		t.Fatalf("export --url: %d %s", code, stderr)
	}
	d.stop(t, syscall.SIGTERM, 5*time.Second)

	out, stderr, code := runBTDA(t, "export", "downloads", "--store", r.dbPath, "--format", "csv")
	if code != 0 {
		t.Fatalf("export downloads: %d %s", code, stderr)
	}
	rows := readCSV(t, out, status.DownloadColumns)
	gotCSV := map[string]int{}
	for _, row := range rows {
		gotCSV[row["torrent"]+"/"+row["country"]]++
	}
	checkConfirmed(t, gotCSV, want, truth)
	if out != viaURL {
		t.Errorf("export from the store and through --url differ:\n%s\n---\n%s", out, viaURL)
	}

	outFile := filepath.Join(r.dir, "peers.jsonl")
	if _, stderr, code := runBTDA(t, "export", "peers", "--store", r.dbPath, "--format", "jsonl", "-o", outFile); code != 0 {
		t.Fatalf("export peers: %d %s", code, stderr)
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(b, []byte("\n"))
	st, err := store.OpenReadOnly(r.dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := st.CountPeers()
	st.Close()
	if lines != stored {
		t.Errorf("peers export has %d rows, the store %d identities", lines, stored)
	}
	out, _, _ = runBTDA(t, "export", "torrents", "--store", r.dbPath)
	if rows := readCSV(t, out, status.TorrentColumns); len(rows) != r.sc.Torrents {
		t.Errorf("torrents export: %d rows", len(rows))
	}
	t.Logf("%d downloads, %d peers, %d probes in the history", len(dls), stored, len(probes))
}

func readCSV(t *testing.T, s string, cols []string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(cols, ",") {
		t.Fatalf("CSV header %v, want %v", recs[0], cols)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, c := range cols {
			m[c] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// checkHostile sends bad inputs: each gets a 4xx with a message and changes nothing.
func checkHostile(t *testing.T, base string) {
	t.Helper()
	before := apiList[status.Torrent](t, base, "/api/v1/torrents", url.Values{})
	cases := []struct {
		method, path, ctype string
		body                io.Reader
		code                int
		msg                 string
	}{
		{"GET", "/api/v1/torrents/..%2f..%2fetc%2fpasswd", "", nil, 400, "want 40 or 64 hex digits"},
		{"GET", "/api/v1/torrents/" + strings.Repeat("g", 40), "", nil, 400, "invalid byte"},
		{"GET", "/api/v1/torrents/" + strings.Repeat("ab", 20), "", nil, 404, "not watched"},
		{"DELETE", "/api/v1/torrents/..%2fbtda.db", "", nil, 400, "hex digits"},
		{"GET", "/api/v1/peers?limit=0", "", nil, 400, "parameter limit"},
		{"GET", "/api/v1/peers?cursor=%%%", "", nil, 400, "query string"},
		{"GET", "/api/v1/downloads?cursor=cA", "", nil, 400, "not a cursor of this list"},
		{"GET", "/api/v1/downloads?since=yesterday", "", nil, 400, "parameter since"},
		{"POST", "/api/v1/torrents", "application/json", strings.NewReader(`{"magnet":"magnet:?xt=urn:btih:zz"}`), 400, "magnet"},
		{"POST", "/api/v1/torrents", "application/x-bittorrent", strings.NewReader("d4:infoi1ee"), 400, "not a valid .torrent file"},
		{"POST", "/api/v1/torrents", "application/x-bittorrent", io.LimitReader(zeros{}, 65<<20), 413, "byte limit"},
		{"PUT", "/api/v1/torrents", "", nil, 405, "not allowed"},
		{"GET", "/api/v1/nothing", "", nil, 404, "no API endpoint"},
	}
	for _, c := range cases {
		code, body := apiDo(t, c.method, base+c.path, c.ctype, c.body)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.path, code, clipBody(body), c.code, c.msg)
		}
	}
	after := apiList[status.Torrent](t, base, "/api/v1/torrents", url.Values{})
	if len(after) != len(before) {
		t.Errorf("hostile inputs changed the watch list: %d → %d torrents", len(before), len(after))
	}
}

func clipBody(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// checkAdmin adds a magnet through the API, finds it in the watch list and in the API
// folder next to the store, removes it, and refuses to remove a configured torrent.
func checkAdmin(t *testing.T, base, dir, configured string) {
	t.Helper()
	const h = "0123456789abcdef0123456789abcdef01234567"
	code, body := apiDo(t, "POST", base+"/api/v1/torrents", "application/json", strings.NewReader(fmt.Sprintf(`{"magnet":"magnet:?xt=urn:btih:%s&dn=api"}`, h)))
	if code != 201 || !strings.Contains(body, h) {
		t.Fatalf("add magnet: %d %s", code, body)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "api-torrents", "api-magnets.txt")); err != nil || !strings.Contains(string(b), h) {
		t.Fatalf("magnet not persisted: %v %q", err, b)
	}
	var det struct{ Data status.TorrentDetail }
	if code := apiGet(t, base+"/api/v1/torrents/"+h, &det); code != 200 || det.Data.State != "pending_metadata" {
		t.Fatalf("added magnet: %d %+v", code, det.Data.Torrent)
	}
	if code, body := apiDo(t, "POST", base+"/api/v1/torrents", "text/plain", strings.NewReader("magnet:?xt=urn:btih:"+h)); code != 409 {
		t.Errorf("adding it again: %d %s", code, body)
	}
	if code, body := apiDo(t, "DELETE", base+"/api/v1/torrents/"+configured, "", nil); code != 409 || !strings.Contains(body, "not from the API") {
		t.Errorf("removing a configured torrent: %d %s", code, body)
	}
	if code, body := apiDo(t, "DELETE", base+"/api/v1/torrents/"+h, "", nil); code != 200 {
		t.Fatalf("remove: %d %s", code, body)
	}
	if code := apiGet(t, base+"/api/v1/torrents/"+h, nil); code != 404 {
		t.Errorf("removed torrent still there: %d", code)
	}
}
