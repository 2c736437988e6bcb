package tracker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/srcaddr"
)

// dualHost is a tracker host name that resolves to both loopback addresses.
const dualHost = "dual.tracker.test"

func dualLookup(_ context.Context, host string) ([]netip.Addr, error) {
	if host != dualHost {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1")}, nil
}

// need6 skips a test where the namespace has no ::1.
func need6(t *testing.T) {
	t.Helper()
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback (%v); dual-family announces NOT tested", err)
	}
	c.Close()
}

// freeDualPort returns a port free for network on both 127.0.0.1 and ::1.
func freeDualPort(t *testing.T, network string) int {
	t.Helper()
	for range 50 {
		var port int
		if network == "udp" {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
			if c6, err := net.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
				c6.Close()
				return port
			}
		} else {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			if ln6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
				ln6.Close()
				return port
			}
		}
	}
	t.Fatal("no port free on both loopback addresses")
	return 0
}

// TestUDPBothFamilies: a UDP tracker whose host has an IPv4 and an IPv6 address is
// announced to on both; the IPv6 announce returns 18-byte peers (BEP 15) and the merged
// reply carries both families' peers. The request counts once.
func TestUDPBothFamilies(t *testing.T) {
	checkGoroutines(t)
	need6(t)
	port := freeDualPort(t, "udp")
	f4 := newFakeUDP(t, fmt.Sprintf("127.0.0.1:%d", port), nil)
	f6 := newFakeUDP(t, fmt.Sprintf("[::1]:%d", port), nil)
	cfg := fastConfig(nil)
	cfg.lookup = dualLookup
	u := fmt.Sprintf("udp://%s:%d/announce", dualHost, port)
	res := AnnounceOnce(context.Background(), cfg, discovery.TorrentInfo{Hash: testHash, Length: 10, Tiers: [][]string{{u}}}, true)
	if len(res) != 1 || res[0].AnnounceErr != nil || res[0].ScrapeErr != nil {
		t.Fatalf("results %+v", res)
	}
	want := append(slices.Clone(testPeers), testPeers6...)
	if got := res[0].Announce.Peers; !sameSet(got, want) {
		t.Errorf("peers %v, want %v", got, want)
	}
	if a4, a6 := len(f4.announceReqs()), len(f6.announceReqs()); a4 != 2 || a6 != 2 {
		t.Errorf("announces (started, stopped): %d over IPv4, %d over IPv6; want 2 each", a4, a6)
	}

	// In the Announcer: one request counted per round, not one per family.
	r := startAnnouncer(t, cfg, testTorrent(u))
	waitFor(t, "both families' peers", func() bool { return r.nSightings() >= len(want) })
	r.stop()
	lbl := TrackerLabel(u)
	if lbl != dualHost {
		t.Fatalf("label %q", lbl)
	}
	req := testutil.ToFloat64(r.a.c.m.requests.WithLabelValues(lbl, KindAnnounce))
	if n4 := len(f4.announceReqs()) - 2; req != float64(n4) {
		t.Errorf("requests_total %v for %d rounds", req, n4)
	}
}

// TestHTTPBothFamilies: the same for HTTP (BEP 7): one request per family, dialled to
// each resolved address; one family down costs nothing but its peers.
func TestHTTPBothFamilies(t *testing.T) {
	checkGoroutines(t)
	need6(t)
	byFamily := func(w http.ResponseWriter, r *http.Request) {
		if netip.MustParseAddrPort(r.RemoteAddr).Addr().Is6() {
			w.Write(mustBenc(map[string]any{"interval": 0, "peers6": compact6(testPeers6)}))
			return
		}
		w.Write(mustBenc(map[string]any{"interval": 0, "peers": compact4(testPeers)}))
	}
	port := freeDualPort(t, "tcp")
	f4 := newFakeHTTP(t, fmt.Sprintf("127.0.0.1:%d", port), byFamily)
	f6 := newFakeHTTP(t, fmt.Sprintf("[::1]:%d", port), byFamily)
	cfg := fastConfig(nil)
	cfg.lookup = dualLookup
	u := fmt.Sprintf("http://%s:%d/announce", dualHost, port)
	ti := discovery.TorrentInfo{Hash: testHash, Length: 10, Tiers: [][]string{{u}}}
	res := AnnounceOnce(context.Background(), cfg, ti, false)
	if len(res) != 1 || res[0].AnnounceErr != nil {
		t.Fatalf("results %+v", res)
	}
	want := append(slices.Clone(testPeers), testPeers6...)
	if got := res[0].Announce.Peers; !sameSet(got, want) {
		t.Errorf("peers %v, want %v", got, want)
	}
	if f4.count() != 2 || f6.count() != 2 {
		t.Errorf("announces: %d over IPv4, %d over IPv6; want 2 each", f4.count(), f6.count())
	}

	// The IPv6 tracker goes away: the announce still succeeds with the IPv4 peers.
	f6.srv.Close()
	res = AnnounceOnce(context.Background(), cfg, ti, false)
	if len(res) != 1 || res[0].AnnounceErr != nil || !sameSet(res[0].Announce.Peers, testPeers) {
		t.Fatalf("with IPv6 down: %+v", res)
	}
	// Both gone: the failure is the IPv4 one, a connection failure.
	f4.srv.Close()
	res = AnnounceOnce(context.Background(), cfg, ti, false)
	if len(res) != 1 || ReasonOf(res[0].AnnounceErr) != ReasonConnection {
		t.Fatalf("with both down: %+v", res)
	}
}

// TestTrackerSourceAddress reads the source address of real tracker requests: with a
// source address set, HTTP and UDP announces leave from it, and a family without one is
// not used.
func TestTrackerSourceAddress(t *testing.T) {
	checkGoroutines(t)
	need6(t)
	src := netip.MustParseAddr("127.0.0.5")
	uport := freeDualPort(t, "udp")
	u4 := newFakeUDP(t, fmt.Sprintf("127.0.0.1:%d", uport), nil)
	u6 := newFakeUDP(t, fmt.Sprintf("[::1]:%d", uport), nil)
	hport := freeDualPort(t, "tcp")
	h4 := newFakeHTTP(t, fmt.Sprintf("127.0.0.1:%d", hport), nil)
	h6 := newFakeHTTP(t, fmt.Sprintf("[::1]:%d", hport), nil)
	cfg := fastConfig(nil)
	cfg.lookup = dualLookup
	cfg.Source = srcaddr.Addrs{V4: src}
	ti := discovery.TorrentInfo{Hash: testHash, Length: 10, Tiers: [][]string{{
		fmt.Sprintf("udp://%s:%d/announce", dualHost, uport), fmt.Sprintf("http://%s:%d/announce", dualHost, hport)}}}
	for _, r := range AnnounceOnce(context.Background(), cfg, ti, true) {
		if r.AnnounceErr != nil || r.ScrapeErr != nil {
			t.Errorf("%s: %v %v", r.URL, r.AnnounceErr, r.ScrapeErr)
		}
	}
	u4.mu.Lock()
	froms := slices.Clone(u4.froms)
	u4.mu.Unlock()
	h4.mu.Lock()
	remotes := slices.Clone(h4.remotes)
	h4.mu.Unlock()
	if len(froms) != 2 || len(remotes) != 2 {
		t.Fatalf("UDP announces from %v, HTTP from %v; want 2 each", froms, remotes)
	}
	for _, f := range froms {
		if f.Addr() != src {
			t.Errorf("UDP announce from %v, want from %v", f, src)
		}
	}
	for _, r := range remotes {
		if a := netip.MustParseAddrPort(r).Addr(); a != src {
			t.Errorf("HTTP announce from %v, want from %v", r, src)
		}
	}
	if n6 := len(u6.announceReqs()) + h6.count(); n6 != 0 {
		t.Errorf("%d announces over IPv6 without an IPv6 source address", n6)
	}
	// An IPv6-only tracker with only an IPv4 source: refused without a packet sent.
	res := AnnounceOnce(context.Background(), cfg, discovery.TorrentInfo{Hash: testHash, Length: 10,
		Tiers: [][]string{{fmt.Sprintf("udp://[::1]:%d/announce", uport)}}}, false)
	if len(res) != 1 || ReasonOf(res[0].AnnounceErr) != ReasonConnection || len(u6.announceReqs()) != 0 || u6.connectCount() != 0 {
		t.Errorf("IPv6 tracker without an IPv6 source: %+v, %d packets", res, u6.connectCount())
	}
}

func TestMergeAnnounces(t *testing.T) {
	a := &AnnounceResponse{Interval: 1800e9, MinInterval: 60e9, TrackerID: "x", Seeders: 3, Leechers: -1,
		Peers: testPeers}
	b := &AnnounceResponse{Interval: 900e9, MinInterval: 120e9, Warning: "w", Seeders: 1, Leechers: 4,
		Peers: append(slices.Clone(testPeers6), testPeers[0])}
	m := mergeAnnounces([]*AnnounceResponse{a, b})
	want := &AnnounceResponse{Interval: 1800e9, MinInterval: 120e9, TrackerID: "x", Warning: "w", Seeders: 3, Leechers: 4,
		Peers: append(slices.Clone(testPeers), testPeers6...)}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", m, want)
	}
}

func sameSet(a, b []netip.AddrPort) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.AddrPort.Compare)
	slices.SortFunc(b, netip.AddrPort.Compare)
	return slices.Equal(a, b)
}
