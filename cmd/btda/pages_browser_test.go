package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/status"
)

// chromiumTimeout bounds one headless chromium run.
const chromiumTimeout = 90 * time.Second

// chromium runs headless chromium with args and the URL and returns its stdout. Every
// network feature that would reach beyond the page is off; the test runs in a
// loopback-only namespace anyway (scripts/test).
func chromium(t *testing.T, bin string, target string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), target)...)
	// Chromium starts helper processes: kill the whole group when the time is up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", target, err, clipBody(stderr.String()))
	}
	return string(out)
}

// domNumber reads the number in the element with the given id from a rendered DOM.
func domNumber(t *testing.T, dom, id string) int {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>(?:<[^>]+>)*\s*(\d+)`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no number with id %q in the rendered page", id)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// screenshotDir is where BTDA_SCREENSHOTS asks the screenshots to go; a relative path is
// taken from the repository root.
func screenshotDir() string {
	d := os.Getenv("BTDA_SCREENSHOTS")
	if d == "" || filepath.IsAbs(d) {
		return d
	}
	return filepath.Join("..", "..", d)
}

// TestPagesInBrowser runs btda against the test swarm and loads every status page and a
// report (from the API and from the stopped store) in headless chromium. The numbers in the
// rendered DOM must equal the API's and /metrics'. With BTDA_SCREENSHOTS=dir it saves
// dir/status.png and dir/report.png (the README's images).
func TestPagesInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with a browser takes ~1 min")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium; .ci/run does): the pages are not checked in a browser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := startE2E(ctx, t, e2eScenario{RunFor: 11 * time.Second, CrossAt: swarmDataCrossAt, Anchored: true})
	d := startDaemonOn(t, r.cfgPath)
	exposition, _, _ := r.waitConfirmed(t, d, nil)
	metrics := confirmedDownloads(exposition)
	byTorrent := map[string]int{}
	total := 0
	for k, v := range metrics {
		byTorrent[strings.Split(k, "/")[0]] += v
		total += v
	}
	if total == 0 {
		t.Fatal("no confirmed downloads in /metrics")
	}
	torrents := apiList[status.Torrent](t, d.url, "/api/v1/torrents", url.Values{})
	if len(torrents) != r.sc.Torrents {
		t.Fatalf("%d torrents in the API, want %d", len(torrents), r.sc.Torrents)
	}
	shots := screenshotDir()

	// Overview: every torrent's row and the total.
	dom := chromium(t, bin, d.url+"/status/", "--dump-dom")
	after := map[string]uint64{}
	for _, tr := range apiList[status.Torrent](t, d.url, "/api/v1/torrents", url.Values{}) {
		after[tr.InfoHash] = uint64(tr.Peers)
	}
	if got := domNumber(t, dom, "confirmed-all"); got != total {
		t.Errorf("overview: %d confirmed downloads in all, /metrics %d", got, total)
	}
	for _, tr := range torrents {
		got := domNumber(t, dom, "confirmed-"+tr.InfoHash)
		if got != int(tr.Confirmed) || got != byTorrent[tr.InfoHash] {
			t.Errorf("overview, torrent %s: page %d, API %d, /metrics %d", tr.InfoHash, got, tr.Confirmed, byTorrent[tr.InfoHash])
		}
		// btda may still meet a new peer (a sighting, a peer dialling in) between the API
		// read and the page: the page's count lies between the API's before and after it.
		if got := domNumber(t, dom, "peers-"+tr.InfoHash); got < int(tr.Peers) || got > int(after[tr.InfoHash]) {
			t.Errorf("overview, torrent %s: page %d peers, API %d before and %d after", tr.InfoHash, got, tr.Peers, after[tr.InfoHash])
		}
	}
	if n := strings.Count(dom, "<svg"); n < len(torrents)+1 {
		t.Errorf("overview: %d charts, want a sparkline per torrent and one in all", n)
	}

	// Torrent pages: the total and the by-country table against /metrics.
	for _, tr := range torrents {
		page := d.url + "/status/torrent/" + tr.InfoHash
		dom := chromium(t, bin, page, "--dump-dom")
		if got := domNumber(t, dom, "confirmed"); got != int(tr.Confirmed) {
			t.Errorf("torrent page %s: %d confirmed, API %d", tr.InfoHash, got, tr.Confirmed)
		}
		for k, want := range metrics {
			h, country, _ := strings.Cut(k, "/")
			if h == tr.InfoHash {
				if got := domNumber(t, dom, "country-"+country); got != want {
					t.Errorf("torrent page %s, %s: %d, /metrics %d", h, country, got, want)
				}
			}
		}
		if !strings.Contains(dom, "Confirmed downloads per hour") || !strings.Contains(dom, "Peers by max download speed") {
			t.Errorf("torrent page %s lacks its charts", tr.InfoHash)
		}
		if shots != "" && tr.InfoHash == torrents[0].InfoHash {
			chromium(t, bin, page, "--screenshot="+mustAbs(t, filepath.Join(shots, "status.png")), "--window-size=1280,1600", "--hide-scrollbars")
		}
	}

	// Sources and recent probes.
	var src struct{ Data status.Sources }
	apiGet(t, d.url+"/api/v1/sources", &src)
	dom = chromium(t, bin, d.url+"/status/sources", "--dump-dom")
	for _, tr := range src.Data.Trackers {
		if !strings.Contains(dom, ">"+tr.Host+"<") {
			t.Errorf("sources page lacks tracker %s", tr.Host)
		}
	}
	if src.Data.DHT != nil && !strings.Contains(dom, `id="dht"`) {
		t.Error("sources page lacks the DHT table")
	}
	dom = chromium(t, bin, d.url+"/status/probes", "--dump-dom")
	if n := strings.Count(dom, `class="probe"`); n == 0 {
		t.Error("recent probes page has no sessions")
	}

	// A report from the running btda (with the trackers' scrape figures).
	live := filepath.Join(r.dir, "report-live.html")
	out, stderr, code := runBTDA(t, "report", "--url", d.url, "-o", live)
	if code != 0 {
		t.Fatalf("btda report --url: %d %s", code, stderr)
	}
	if !strings.Contains(out, fmt.Sprintf("confirmed downloads: %d (download log: %d)", total, total)) {
		t.Errorf("report summary disagrees with /metrics' %d:\n%s", total, out)
	}
	dom = chromium(t, bin, "file://"+live, "--dump-dom")
	if got := domNumber(t, dom, "confirmed-all"); got != total {
		t.Errorf("report: %d confirmed, /metrics %d", got, total)
	}
	for _, tr := range torrents {
		if got := domNumber(t, dom, "confirmed-"+tr.InfoHash); got != int(tr.Confirmed) {
			t.Errorf("report, torrent %s: %d confirmed, API %d", tr.InfoHash, got, tr.Confirmed)
		}
		if n, ok := tr.ScrapeDownloaded(); ok {
			if got := domNumber(t, dom, "scrape-"+tr.InfoHash); got != int(n) {
				t.Errorf("report, torrent %s: scrape %d, API %d", tr.InfoHash, got, n)
			}
		}
	}
	if shots != "" {
		chromium(t, bin, "file://"+live, "--screenshot="+mustAbs(t, filepath.Join(shots, "report.png")), "--window-size=1280,1600", "--hide-scrollbars")
	}

	// And from the stopped store: the same totals, scrape figures not stored.
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	stored := filepath.Join(r.dir, "report-store.html")
	if _, stderr, code := runBTDA(t, "report", "--store", r.dbPath, "-o", stored); code != 0 {
		t.Fatalf("btda report --store: %d %s", code, stderr)
	}
	dom = chromium(t, bin, "file://"+stored, "--dump-dom")
	if got := domNumber(t, dom, "confirmed-all"); got != total {
		t.Errorf("report from the store: %d confirmed, /metrics %d", got, total)
	}
	if !strings.Contains(dom, `id="scrape-all">not stored<`) {
		t.Error("report from the store does not say that scrape figures are not stored")
	}
	if shots != "" {
		for _, f := range []string{"status.png", "report.png"} {
			if fi, err := os.Stat(filepath.Join(shots, f)); err != nil || fi.Size() == 0 {
				t.Errorf("screenshot %s: %v", f, err)
			}
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(a), 0o755); err != nil {
		t.Fatal(err)
	}
	return a
}
