package tracker

import (
	"bytes"
	"context"
	"fmt"
	"github.com/btda/btda/discovery"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startOpentracker runs Debian's opentracker on 127.0.0.1 (HTTP and UDP on one port) with
// the given whitelist, or skips the test saying why it cannot.
func startOpentracker(t *testing.T, hashes ...metainfo.Hash) (port int) {
	t.Helper()
	bin, err := exec.LookPath("opentracker")
	if err != nil {
		t.Skip("opentracker not installed (apt-get install -y opentracker); interop with it NOT tested")
	}
	if os.Geteuid() != 0 {
		t.Skip("opentracker must start as root to chroot and drop to nobody; interop with it NOT tested")
	}
	// The chroot must be readable by nobody, so not t.TempDir (0700 parents).
	dir, err := os.MkdirTemp("", "btda-opentracker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var wl bytes.Buffer
	for _, h := range hashes {
		fmt.Fprintln(&wl, h.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist.txt"), wl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A free port for both TCP and UDP (the small race with other processes is harmless
	// inside the test's network namespace).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := strconv.Itoa(port)
	var out bytes.Buffer
	cmd := exec.Command(bin, "-i", "127.0.0.1", "-p", p, "-P", p, "-d", dir, "-u", "nobody", "-w", "/whitelist.txt")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Skipf("opentracker did not start (%v); interop with it NOT tested", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+p)
		if err == nil {
			c.Close()
			return port
		}
		select {
		case <-exited:
			t.Skipf("opentracker exited at start: %s; interop with it NOT tested", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("opentracker not listening after 10 s: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawAnnounce announces a fake peer from source address ip (a distinct 127.x address:
// opentracker records the connection's source IP), encoding with the standard library,
// not with the code under test: every byte as %XX (url.QueryEscape would turn the hash's
// space into '+', which opentracker, rightly, does not read as a space).
func rawAnnounce(t *testing.T, port int, ip string, h metainfo.Hash, peerPort int, left int, event string) {
	t.Helper()
	// opentracker loads its whitelist in a thread after it starts listening: until then it
	// refuses every hash, so the first announce is retried for a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := tryRawAnnounce(port, ip, h, peerPort, left, event)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tryRawAnnounce(port int, ip string, h metainfo.Hash, peerPort int, left int, event string) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil}}
	defer c.CloseIdleConnections()
	q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&compact=1&event=%s",
		escapeAll(h[:]), escapeAll([]byte(fmt.Sprintf("-XX0001-%012d", peerPort))), peerPort, left, event)
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/announce?%s", port, q))
	if err != nil {
		return fmt.Errorf("raw announce from %s: %v", ip, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || bytes.Contains(body, []byte("failure reason")) {
		return fmt.Errorf("raw announce from %s: %s %q", ip, resp.Status, body)
	}
	return nil
}

func escapeAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

func TestOpentrackerInterop(t *testing.T) {
	checkGoroutines(t)
	h := metainfo.Hash{0xb7, 0xda, 0x00, 0x01, ' ', '%', '&', '+', 0xff}
	unlisted := metainfo.Hash{0x01, 0x02}
	port := startOpentracker(t, h)

	// Two seeds (one sends completed) and three leechers, each from its own address.
	var fake []netip.AddrPort
	for i, left := range []int{0, 0, 100, 100, 100} {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		ev := "started"
		if i == 0 {
			ev = "completed"
		}
		rawAnnounce(t, port, ip, h, 7000+i, left, ev)
		fake = append(fake, netip.MustParseAddrPort(fmt.Sprintf("%s:%d", ip, 7000+i)))
	}

	cfg := fastConfig(nil)
	cfg.Port = 6000
	cfg.UDPBase, cfg.UDPMaxWait = 200*time.Millisecond, 400*time.Millisecond
	self := netip.MustParseAddrPort("127.0.0.1:6000")
	httpURL := fmt.Sprintf("http://127.0.0.1:%d/announce", port)
	udpURL := fmt.Sprintf("udp://127.0.0.1:%d/announce", port)
	for _, u := range []string{httpURL, udpURL} {
		t.Run(scheme(u), func(t *testing.T) {
			res := AnnounceOnce(context.Background(), cfg, discovery.TorrentInfo{Hash: h, Length: 1000, Tiers: [][]string{{u}}}, true)
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			r := res[0]
			if r.AnnounceErr != nil || r.ScrapeErr != nil {
				t.Fatalf("announce: %v; scrape: %v", r.AnnounceErr, r.ScrapeErr)
			}
			for _, p := range fake {
				if !slices.Contains(r.Announce.Peers, p) {
					t.Errorf("peer %v missing from %v", p, r.Announce.Peers)
				}
			}
			for _, p := range r.Announce.Peers {
				if !slices.Contains(fake, p) && p != self {
					t.Errorf("unexpected peer %v", p)
				}
			}
			if r.Announce.Interval < 10*time.Minute || r.Announce.Interval > time.Hour {
				t.Errorf("interval %v, want opentracker's ~30 min", r.Announce.Interval)
			}
			if u == httpURL && (r.Announce.MinInterval <= 0 || r.Announce.MinInterval > r.Announce.Interval) {
				t.Errorf("min interval %v", r.Announce.MinInterval)
			}
			// We were a leecher while the scrape ran: 2 seeds, 3+1 leechers, 1 completed.
			if want := (ScrapeResponse{Seeders: 2, Leechers: 4, Downloaded: 1}); *r.Scrape != want {
				t.Errorf("scrape %+v, want %+v", *r.Scrape, want)
			}
			// Our stopped took us out of the swarm again.
			m, _ := newMetrics(nil)
			c := newCore(cfg, m)
			defer c.close()
			s, err := c.scrape(context.Background(), u, h)
			if err != nil || s.Leechers != 3 {
				t.Errorf("scrape after stopped: %+v, %v; want 3 leechers", s, err)
			}
			// A hash outside the whitelist is refused: over HTTP with a failure reason, over
			// UDP with an 8-byte announce reply, which is no valid answer.
			_, err = c.announce(context.Background(), u, AnnounceRequest{Hash: unlisted, Port: 6000, Left: 1, Event: EventStarted})
			want := map[bool]Reason{true: ReasonFailure, false: ReasonBadResponse}[u == httpURL]
			if ReasonOf(err) != want {
				t.Errorf("unlisted hash: %v (reason %q), want %s", err, ReasonOf(err), want)
			}
			t.Logf("unlisted hash: %v", err)
		})
	}
}

// TestOpentrackerAnnouncer: the Announcer against opentracker over HTTP and UDP at once:
// the fake peers arrive as sightings, opentracker's min interval (~15 min) holds the
// announcer to one announce per tracker, and shutdown's stopped takes us out of the swarm.
func TestOpentrackerAnnouncer(t *testing.T) {
	checkGoroutines(t)
	h := metainfo.Hash{0xb7, 0xda, 0x00, 0x02}
	port := startOpentracker(t, h)
	var fake []netip.AddrPort
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 20+i)
		rawAnnounce(t, port, ip, h, 7100+i, 100, "started")
		fake = append(fake, netip.MustParseAddrPort(fmt.Sprintf("%s:%d", ip, 7100+i)))
	}
	log, _ := testLogger()
	cfg := fastConfig(log)
	cfg.Port = 6001
	cfg.UDPBase, cfg.UDPMaxWait = 200*time.Millisecond, 400*time.Millisecond
	httpURL := fmt.Sprintf("http://127.0.0.1:%d/announce", port)
	udpURL := fmt.Sprintf("udp://127.0.0.1:%d/announce", port)
	r := startAnnouncer(t, cfg, discovery.TorrentInfo{Hash: h, Label: "ot", Length: 1, Tiers: [][]string{{httpURL}, {udpURL}}})
	reqs := r.a.c.m.requests
	waitFor(t, "an announce and a scrape on both protocols", func() bool {
		return testutil.ToFloat64(reqs.WithLabelValues("127.0.0.1", KindScrape)) >= 2 && r.nSightings() >= 6
	})
	r.mu.Lock()
	got := map[netip.AddrPort]int{}
	for _, s := range r.sightings {
		got[s.Addr]++
	}
	r.mu.Unlock()
	for _, p := range fake {
		if got[p] != 2 {
			t.Errorf("peer %v seen %d times, want once per protocol (sightings %v)", p, got[p], got)
		}
	}
	if v := testutil.ToFloat64(r.a.c.m.interval.WithLabelValues("127.0.0.1")); v < 600 {
		t.Errorf("interval in force %v s; opentracker's min interval is ~15 min", v)
	}
	if n := testutil.ToFloat64(reqs.WithLabelValues("127.0.0.1", KindAnnounce)); n != 2 {
		t.Errorf("%v announces before shutdown, want 2 (min interval honoured)", n)
	}
	r.stop()
	if n := testutil.ToFloat64(reqs.WithLabelValues("127.0.0.1", KindAnnounce)); n != 4 {
		t.Errorf("%v announces after shutdown, want 4 (a stopped per tracker)", n)
	}
	m, _ := newMetrics(nil)
	c := newCore(cfg, m)
	defer c.close()
	s, err := c.scrape(context.Background(), httpURL, h)
	if err != nil || s.Leechers != 3 {
		t.Errorf("scrape after shutdown %+v, %v: want the 3 fake leechers only", s, err)
	}
}
