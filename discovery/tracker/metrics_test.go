package tracker

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/btda/btda/discovery"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// TestMetricsExposition: names lint clean, failure series are pre-created for every
// reason, and no label carries the URL or its passkey.
func TestMetricsExposition(t *testing.T) {
	checkGoroutines(t)
	f := newFakeHTTP(t, "127.0.0.1", nil)
	log, _ := testLogger()
	secretURL := strings.Replace(f.URL, "/announce", "/0123456789abcdefSECRET/announce?passkey=SECRET", 1)
	r := startAnnouncer(t, fastConfig(log), testTorrent(secretURL))
	waitFor(t, "a scrape", func() bool { return testutil.CollectAndCount(r.a.c.m.seeders) == 1 })
	problems, err := testutil.GatherAndLint(r.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(buf.String(), "SECRET") || strings.Contains(buf.String(), "passkey") || strings.Contains(buf.String(), "://") {
		t.Errorf("exposition carries the URL:\n%s", buf.String())
	}
	for _, want := range []string{
		"btda_tracker_requests_total", "btda_tracker_request_failures_total", "btda_tracker_request_duration_seconds",
		"btda_tracker_peers_received_total", "btda_tracker_last_success_timestamp_seconds", "btda_tracker_interval_seconds",
		"btda_tracker_scrape_seeders", "btda_tracker_scrape_leechers", "btda_tracker_scrape_downloaded",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s missing (have %v)", want, names)
		}
	}
	if n := testutil.CollectAndCount(r.a.c.m.failures); n != 2*len(Reasons) {
		t.Errorf("%d failure series, want %d pre-created", n, 2*len(Reasons))
	}
	if !strings.Contains(buf.String(), `btda_tracker_scrape_seeders{infohash="t1",tracker="127.0.0.1"} 3`) {
		t.Errorf("scrape gauge missing:\n%s", buf.String())
	}
	// A second announcer on the same registry is refused, not a panic.
	if _, err := NewAnnouncer(Config{}, r.reg, make(chan discovery.Sighting)); err == nil {
		t.Error("double registration accepted")
	}
}

// TestUDPIPv6: an IPv6 tracker socket reads 18-byte peers.
func TestUDPIPv6(t *testing.T) {
	checkGoroutines(t)
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback here (%v); IPv6 UDP NOT tested", err)
	} else {
		c.Close()
	}
	f := newFakeUDP(t, "[::1]", nil)
	res := AnnounceOnce(context.Background(), fastConfig(nil), testTorrent(f.URL), true)
	if len(res) != 1 || res[0].AnnounceErr != nil || !slices.Equal(res[0].Announce.Peers, testPeers6) {
		t.Fatalf("result %+v", res)
	}
	if res[0].Scrape == nil || *res[0].Scrape != (ScrapeResponse{3, 4, 5}) {
		t.Errorf("scrape %+v %v", res[0].Scrape, res[0].ScrapeErr)
	}
}
