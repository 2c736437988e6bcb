package swarmtracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/bencode"
)

var (
	ihA = [20]byte{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 0x20}
	ihB = [20]byte{0xbb, '+', '&', '=', '%', ' ', 0, 0xff}
	pid = [20]byte{'-', 'B', 'T', '0', '0', '0', '1', '-', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'}
)

// checkGoroutines fails the test if goroutines started during it outlive it (after cleanups).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func start(t *testing.T, cfg Config) *Tracker {
	t.Helper()
	checkGoroutines(t)
	tr, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func addrs(t *testing.T, ss ...string) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

func v4Peers(n int) []netip.AddrPort {
	var out []netip.AddrPort
	for i := range n {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i / 256), byte(i%256 + 1)}), uint16(6000+i)))
	}
	return out
}

// query builds an announce query by hand, binary fields percent-encoded byte by byte.
func query(ih [20]byte, extra string) string {
	q := "info_hash=" + pct(ih[:]) + "&peer_id=" + pct(pid[:]) + "&port=6881&uploaded=1&downloaded=2&left=3"
	if extra != "" {
		q += "&" + extra
	}
	return q
}

func pct(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := noKeepAlive.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func decodeDict(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var d map[string]any
	if err := bencode.DecodeBytes(body, &d); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return d
}

func compactPeers(t *testing.T, s string, size int) []netip.AddrPort {
	t.Helper()
	if len(s)%size != 0 {
		t.Fatalf("compact peers: %d bytes, not a multiple of %d", len(s), size)
	}
	var out []netip.AddrPort
	for i := 0; i < len(s); i += size {
		// Decoded by hand per BEP 23: address bytes, then the port big-endian.
		ip, _ := netip.AddrFromSlice([]byte(s[i : i+size-2]))
		out = append(out, netip.AddrPortFrom(ip, binary.BigEndian.Uint16([]byte(s[i+size-2:i+size]))))
	}
	return out
}

func TestHTTPAnnounceCompact(t *testing.T) {
	tr := start(t, Config{Interval: 90 * time.Second, MinInterval: 30 * time.Second, TrackerID: "tid-1", WarningMessage: "be nice"})
	v4 := v4Peers(10)
	v6 := addrs(t, "[::1]:7001", "[::1]:7002", "[::1]:7003")
	tr.SetPeers(ihA, append(slices.Clone(v4), v6...))
	status, body := get(t, tr.AnnounceURL()+"?"+query(ihA, "compact=1&numwant=100&event=started&key=k1&trackerid=abc&ip=127.0.0.1&foo=bar"))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	d := decodeDict(t, body)
	for k, want := range map[string]any{"interval": int64(90), "min interval": int64(30), "tracker id": "tid-1", "warning message": "be nice", "complete": int64(0), "incomplete": int64(14)} {
		if d[k] != want {
			t.Errorf("%s = %#v, want %#v", k, d[k], want)
		}
	}
	got4 := compactPeers(t, d["peers"].(string), 6)
	got6 := compactPeers(t, d["peers6"].(string), 18)
	slices.SortFunc(got4, netip.AddrPort.Compare)
	slices.SortFunc(got6, netip.AddrPort.Compare)
	if !slices.Equal(got4, v4) || !slices.Equal(got6, v6) {
		t.Errorf("peers %v peers6 %v, want %v %v", got4, got6, v4, v6)
	}
	rec := tr.Announces()
	if len(rec) != 1 {
		t.Fatalf("%d announces recorded", len(rec))
	}
	a := rec[0]
	want := AnnounceRequest{InfoHash: ihA, PeerID: pid, Port: 6881, Uploaded: 1, Downloaded: 2, Left: 3, Event: "started",
		NumWant: 100, Compact: 1, Key: "k1", TrackerID: "abc", IP: "127.0.0.1", Unknown: []string{"foo"}}
	if fmt.Sprint(a.AnnounceRequest) != fmt.Sprint(want) || a.Protocol != HTTP || a.Remote.Addr() != netip.MustParseAddr("127.0.0.1") ||
		a.Path != "/announce" || !strings.HasPrefix(a.UserAgent, "Go-http-client") {
		t.Errorf("recorded %+v\nwant %+v", a, want)
	}
	// The announcer joined the swarm: now 14 peers, 1 of them announced with left 3.
	if st := tr.Stats().Torrents[ihA]; st.Peers != 14 || st.HTTPAnnounces != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHTTPAnnounceNoPeers6WhenNone(t *testing.T) {
	tr := start(t, Config{})
	status, body := get(t, tr.AnnounceURL()+"?"+query(ihB, "compact=1"))
	d := decodeDict(t, body)
	if status != 200 || d["peers"] != "" || d["peers6"] != nil || d["interval"] != int64(1800) {
		t.Errorf("status %d reply %q", status, body)
	}
	for _, k := range []string{"min interval", "tracker id", "warning message"} {
		if _, ok := d[k]; ok {
			t.Errorf("%s present without configuration", k)
		}
	}
}

func TestHTTPAnnounceDict(t *testing.T) {
	tr := start(t, Config{})
	peers := addrs(t, "127.0.0.2:1000", "[::1]:2000")
	tr.SetPeers(ihA, peers)
	for _, noPeerID := range []bool{false, true} {
		extra := "compact=0"
		if noPeerID {
			extra += "&no_peer_id=1"
		}
		_, body := get(t, tr.AnnounceURL()+"?"+query(ihA, extra))
		var r struct {
			Peers []map[string]any `bencode:"peers"`
		}
		if err := bencode.DecodeBytes(body, &r); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		var got []netip.AddrPort
		for _, p := range r.Peers {
			got = append(got, netip.AddrPortFrom(netip.MustParseAddr(p["ip"].(string)), uint16(p["port"].(int64))))
			id, ok := p["peer id"].(string)
			if noPeerID == ok || (!noPeerID && len(id) != 20) {
				t.Errorf("no_peer_id=%v: peer id %q", noPeerID, id)
			}
		}
		slices.SortFunc(got, netip.AddrPort.Compare)
		if !slices.Equal(got, peers) {
			t.Errorf("peers %v want %v", got, peers)
		}
	}
}

func TestNumWantSubsetDeterministic(t *testing.T) {
	peers := v4Peers(40)
	run := func(seed uint64) [][]netip.AddrPort {
		tr := start(t, Config{Seed: seed})
		tr.SetPeers(ihA, peers)
		var out [][]netip.AddrPort
		for range 5 {
			_, body := get(t, tr.AnnounceURL()+"?"+query(ihA, "compact=1&numwant=7&event=stopped"))
			got := compactPeers(t, decodeDict(t, body)["peers"].(string), 6)
			if len(got) != 7 {
				t.Fatalf("numwant 7: got %d peers", len(got))
			}
			seen := map[netip.AddrPort]bool{}
			for _, p := range got {
				if seen[p] || !slices.Contains(peers, p) {
					t.Fatalf("peer %v duplicated or not in swarm", p)
				}
				seen[p] = true
			}
			out = append(out, got)
		}
		tr.Close()
		return out
	}
	a, b, c := run(1), run(1), run(2)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different subsets:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("different seeds, same subsets")
	}
}

func TestDefaultAndMaxNumWant(t *testing.T) {
	tr := start(t, Config{DefaultNumWant: 4, MaxNumWant: 9})
	tr.SetPeers(ihA, v4Peers(20))
	for extra, want := range map[string]int{"": 4, "numwant=0": 0, "numwant=50": 9} {
		_, body := get(t, tr.AnnounceURL()+"?"+query(ihA, extra+"&event=stopped"))
		if n := len(decodeDict(t, body)["peers"].(string)) / 6; n != want {
			t.Errorf("%q: %d peers, want %d", extra, n, want)
		}
	}
}

func TestAnnouncedPeersJoinSwarm(t *testing.T) {
	tr := start(t, Config{})
	announce := func(port int, extra string) []netip.AddrPort {
		q := strings.Replace(query(ihA, extra), "port=6881", fmt.Sprintf("port=%d", port), 1)
		_, body := get(t, tr.AnnounceURL()+"?"+q)
		return compactPeers(t, decodeDict(t, body)["peers"].(string), 6)
	}
	if got := announce(7000, "event=started"); len(got) != 0 {
		t.Errorf("first announcer got %v (itself?)", got)
	}
	want := netip.MustParseAddrPort("127.0.0.1:7000")
	if got := announce(7001, ""); !slices.Equal(got, []netip.AddrPort{want}) {
		t.Errorf("second announcer got %v, want %v", got, want)
	}
	announce(7000, "event=stopped")
	if got := announce(7001, ""); len(got) != 0 {
		t.Errorf("after stopped: %v", got)
	}
	// A completed event counts as a download; left=0 makes the peer a seed.
	q := strings.Replace(query(ihA, "event=completed"), "left=3", "left=0", 1)
	get(t, tr.AnnounceURL()+"?"+q)
	_, body := get(t, tr.ScrapeURL()+"?info_hash="+pct(ihA[:]))
	f := decodeDict(t, body)["files"].(map[string]any)[string(ihA[:])].(map[string]any)
	if f["complete"] != int64(1) || f["incomplete"] != int64(1) || f["downloaded"] != int64(1) {
		t.Errorf("scrape %v", f)
	}
}

func TestHTTPScrape(t *testing.T) {
	tr := start(t, Config{})
	tr.SetScrape(ihA, 5, 6, 7)
	tr.SetScrape(ihB, 1, 2, 3)
	_, body := get(t, tr.ScrapeURL()+"?info_hash="+pct(ihA[:])+"&info_hash="+pct(ihB[:]))
	files := decodeDict(t, body)["files"].(map[string]any)
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	for ih, want := range map[[20]byte][3]int64{ihA: {5, 6, 7}, ihB: {1, 2, 3}} {
		f := files[string(ih[:])].(map[string]any)
		if f["complete"] != want[0] || f["incomplete"] != want[1] || f["downloaded"] != want[2] {
			t.Errorf("%x: %v want %v", ih, f, want)
		}
	}
	// No info_hash: every torrent.
	_, body = get(t, tr.ScrapeURL())
	if n := len(decodeDict(t, body)["files"].(map[string]any)); n != 2 {
		t.Errorf("full scrape: %d files", n)
	}
	if s := tr.Scrapes(); len(s) != 2 || len(s[0].InfoHashes) != 2 || s[0].InfoHashes[1] != ihB {
		t.Errorf("recorded scrapes %+v", s)
	}
	// BEP 48 convention: a passkey path works too.
	u := strings.Replace(tr.ScrapeURL(), "/scrape", "/secretkey/scrape", 1)
	if status, _ := get(t, u); status != 200 {
		t.Errorf("passkey scrape status %d", status)
	}
}

func TestHTTPRejects(t *testing.T) {
	tr := start(t, Config{})
	for _, q := range []string{"", "info_hash=abc", query(ihA, "port=1"), query(ihA, "event=bogus")} {
		status, body := get(t, tr.AnnounceURL()+"?"+q)
		d := decodeDict(t, body)
		if status != 400 || !strings.Contains(d["failure reason"].(string), "bad announce") {
			t.Errorf("%q: status %d body %q", q, status, body)
		}
	}
	if n := len(tr.Rejections()); n != 4 {
		t.Errorf("%d rejections, want 4", n)
	}
	if status, _ := get(t, strings.Replace(tr.AnnounceURL(), "announce", "other", 1)); status != 404 {
		t.Errorf("unknown path: status %d", status)
	}
}

func TestHTTPFaults(t *testing.T) {
	tr := start(t, Config{HugeBodySize: 8 << 20, SlowHold: time.Minute})
	tr.SetPeers(ihA, v4Peers(3))
	for _, m := range FaultModes() {
		t.Run(m.String(), func(t *testing.T) {
			tr.SetFault(m)
			defer tr.SetFault(FaultNone)
			redirects := 0
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cl := &http.Client{
				Transport: &http.Transport{DisableKeepAlives: true},
				CheckRedirect: func(req *http.Request, via []*http.Request) error {
					redirects++
					if req.URL.String() != via[0].URL.String() {
						t.Errorf("redirect to %s, want %s", req.URL, via[0].URL)
					}
					if len(via) >= 10 {
						return errors.New("stopped after 10 redirects")
					}
					return nil
				},
			}
			if m == FaultSlow {
				// The client gives up; the tracker must let go.
				var cancelT func()
				ctx, cancelT = context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancelT()
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", tr.AnnounceURL()+"?"+query(ihA, "compact=1&event=stopped"), nil)
			resp, err := cl.Do(req)
			var body []byte
			var readErr error
			if err == nil {
				body, readErr = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
				resp.Body.Close()
			}
			switch m {
			case FaultNone, FaultWrongTransaction, FaultForeignPacket:
				if err != nil || readErr != nil || resp.StatusCode != 200 {
					t.Fatalf("err %v %v", err, readErr)
				}
				if d := decodeDict(t, body); len(d["peers"].(string)) != 18 {
					t.Errorf("reply %q", body)
				}
			case FaultFailureReason:
				if d := decodeDict(t, body); resp.StatusCode != 200 || d["failure reason"] != FailureReason {
					t.Errorf("status %d reply %q", resp.StatusCode, body)
				}
			case FaultHTTP500:
				if resp.StatusCode != 500 {
					t.Errorf("status %d", resp.StatusCode)
				}
			case FaultGarbage:
				var v any
				if resp.StatusCode != 200 || bencode.DecodeBytes(body, &v) == nil {
					t.Errorf("garbage decoded: status %d %q", resp.StatusCode, body)
				}
			case FaultNonDict:
				var l []any
				if resp.StatusCode != 200 || bencode.DecodeBytes(body, &l) != nil || len(l) != 2 {
					t.Errorf("non-dict: %q", body)
				}
			case FaultHugeBody:
				if readErr != nil || len(body) != 8<<20 || resp.ContentLength != 8<<20 {
					t.Fatalf("huge: %v, %d bytes, Content-Length %d", readErr, len(body), resp.ContentLength)
				}
				var d struct {
					Interval int64  `bencode:"interval"`
					Peers    string `bencode:"peers"`
				}
				if err := bencode.DecodeBytes(body, &d); err != nil || d.Interval != 1800 || len(d.Peers) < 8<<20-64 {
					t.Errorf("huge body does not decode as a dictionary: %v", err)
				}
			case FaultSlow:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("slow: err %v, want deadline exceeded", err)
				}
			case FaultRedirectLoop:
				if err == nil || redirects != 10 {
					t.Errorf("redirect loop: err %v after %d redirects", err, redirects)
				}
			case FaultNoReply:
				if err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
					t.Errorf("no reply: err %v", err)
				}
			case FaultTruncated:
				if !errors.Is(readErr, io.ErrUnexpectedEOF) {
					t.Errorf("truncated: read err %v, body %q", readErr, body)
				}
			default:
				t.Fatalf("mode %v not covered", m)
			}
			// Every request reached the parser and was recorded with its mode.
			rec := tr.Announces()
			if last := rec[len(rec)-1]; last.Fault != m {
				t.Errorf("recorded fault %v", last.Fault)
			}
		})
	}
}

func TestFailureRetryIn(t *testing.T) {
	for n, want := range map[int]any{0: nil, 5: int64(5), -1: "never"} {
		tr := start(t, Config{FailureRetryIn: n})
		tr.SetFault(FaultFailureReason)
		_, body := get(t, tr.AnnounceURL()+"?"+query(ihA, ""))
		if d := decodeDict(t, body); d["retry in"] != want || d["failure reason"] != FailureReason {
			t.Errorf("FailureRetryIn %d: reply %q", n, body)
		}
		tr.Close()
	}
}

func TestHTTPScrapeFault(t *testing.T) {
	tr := start(t, Config{})
	tr.SetFault(FaultFailureReason)
	_, body := get(t, tr.ScrapeURL()+"?info_hash="+pct(ihA[:]))
	if d := decodeDict(t, body); d["failure reason"] != FailureReason {
		t.Errorf("scrape under failure_reason: %q", body)
	}
}

func TestSlowReleasedByClose(t *testing.T) {
	checkGoroutines(t)
	tr, err := Start(t.Context(), Config{SlowHold: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tr.SetFault(FaultSlow)
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, err := noKeepAlive.Get(tr.AnnounceURL() + "?" + query(ihA, ""))
		if err == nil {
			resp.Body.Close()
			t.Errorf("held request got a reply (status %d) when the tracker closed", resp.StatusCode)
		}
	})
	for len(tr.Announces()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	tr.Close() // must not wait for the hour
	wg.Wait()
}

func TestStartRefusesNonLoopback(t *testing.T) {
	if _, err := Start(t.Context(), Config{Host: netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Error("non-loopback host accepted")
	}
	if _, err := Start(t.Context(), Config{DisableHTTP: true, DisableUDP: true}); err == nil {
		t.Error("nothing to serve accepted")
	}
}

func TestContextEndClosesTracker(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(t.Context())
	tr, err := Start(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-tr.closing
	tr.Close()
}

func TestParseAnnounceQuery(t *testing.T) {
	for _, tc := range []struct {
		name, q, err string
	}{
		{"ok", query(ihA, ""), ""},
		{"plus is space", strings.Replace(query(ihA, ""), "%20", "+", 1), ""},
		{"missing info_hash", "peer_id=" + pct(pid[:]) + "&port=1&uploaded=0&downloaded=0&left=0", "info_hash: missing"},
		{"short info_hash", "info_hash=abc&" + query(ihA, "")[len("info_hash=")+60+1:], "info_hash: want 20 bytes, got 3"},
		{"long peer_id", query(ihA, "")[:strings.Index(query(ihA, ""), "&port")] + "%00&port=1&uploaded=0&downloaded=0&left=0", "peer_id: want 20 bytes, got 21"},
		{"port 0", strings.Replace(query(ihA, ""), "port=6881", "port=0", 1), "port"},
		{"port too big", strings.Replace(query(ihA, ""), "port=6881", "port=65536", 1), "port"},
		{"negative left", strings.Replace(query(ihA, ""), "left=3", "left=-1", 1), "left: want a non-negative"},
		{"left not a number", strings.Replace(query(ihA, ""), "left=3", "left=1e9", 1), "left"},
		{"duplicate", query(ihA, "port=2"), "port: given more than once"},
		{"bad event", query(ihA, "event=bogus"), "event"},
		{"paused event (BEP 21)", query(ihA, "event=paused"), ""},
		{"BEP 7 ipv4 ipv6", query(ihA, "ipv4=127.0.0.1&ipv6=%3A%3A1"), ""},
		{"empty event", query(ihA, "event="), ""},
		{"bad compact", query(ihA, "compact=2"), "compact"},
		{"bad numwant", query(ihA, "numwant=-5"), "numwant"},
		{"bad escape", query(ihA, "key=%zz"), "key"},
		{"missing left", strings.Replace(query(ihA, ""), "&left=3", "", 1), "left: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAnnounceQuery(tc.q)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err %v, want %q", err, tc.err)
			}
		})
	}
	r, err := ParseAnnounceQuery(strings.Replace(query(ihB, ""), "%20", "+", 1))
	if err != nil || r.InfoHash != ihB {
		t.Errorf("plus-as-space info hash: %x %v", r.InfoHash, err)
	}
}

func TestParseScrapeQuery(t *testing.T) {
	if h, err := ParseScrapeQuery("info_hash=" + pct(ihA[:]) + "&x=1&info_hash=" + url.QueryEscape(string(ihB[:]))); err != nil || len(h) != 2 || h[0] != ihA || h[1] != ihB {
		t.Errorf("%x %v", h, err)
	}
	if _, err := ParseScrapeQuery("info_hash=ab"); err == nil || !strings.Contains(err.Error(), "info_hash #1") {
		t.Errorf("short hash: %v", err)
	}
}

func FuzzParseAnnounceQuery(f *testing.F) {
	f.Add(query(ihA, ""))
	f.Add(query(ihB, "compact=1&numwant=10&event=started&key=x&trackerid=y&no_peer_id=1&ip=1.2.3.4"))
	f.Add("info_hash=%zz")
	f.Add("&&&=&info_hash")
	f.Add(strings.Replace(query(ihA, ""), "left=3", "left=99999999999999999999", 1))
	f.Fuzz(func(t *testing.T, q string) {
		r, err := ParseAnnounceQuery(q)
		if err != nil {
			return
		}
		if r.Port == 0 || r.Left < 0 || r.Uploaded < 0 || r.Downloaded < 0 || r.NumWant < -1 || r.Compact < -1 || r.Compact > 1 || !httpEvents[r.Event] {
			t.Errorf("accepted invalid request %+v", r)
		}
		ParseScrapeQuery(q)
	})
}

// --- UDP ---

type udpClient struct {
	t    testing.TB
	conn *net.UDPConn
	tid  uint32
}

func dialUDP(t testing.TB, trackerURL string, local string) *udpClient {
	t.Helper()
	u, err := url.Parse(trackerURL)
	if err != nil {
		t.Fatal(err)
	}
	raddr, err := net.ResolveUDPAddr("udp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	var laddr *net.UDPAddr
	if local != "" {
		laddr = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(local))
	}
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{t: t, conn: conn, tid: 0x1000}
}

// roundTrip sends b and returns the reply, or nil after the read deadline.
func (c *udpClient) roundTrip(b []byte, wait time.Duration) []byte {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := c.conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return buf[:n]
}

func (c *udpClient) connectPacket() []byte {
	c.tid++
	b := binary.BigEndian.AppendUint64(nil, ProtocolID)
	b = binary.BigEndian.AppendUint32(b, ActionConnect)
	return binary.BigEndian.AppendUint32(b, c.tid)
}

func (c *udpClient) connect() uint64 {
	c.t.Helper()
	r := c.roundTrip(c.connectPacket(), 5*time.Second)
	if len(r) != 16 || binary.BigEndian.Uint32(r[0:]) != ActionConnect || binary.BigEndian.Uint32(r[4:]) != c.tid {
		c.t.Fatalf("connect reply %x", r)
	}
	return binary.BigEndian.Uint64(r[8:])
}

func (c *udpClient) announcePacket(connID uint64, ih [20]byte, event uint32, numWant int32, port uint16) []byte {
	c.tid++
	b := binary.BigEndian.AppendUint64(nil, connID)
	b = binary.BigEndian.AppendUint32(b, ActionAnnounce)
	b = binary.BigEndian.AppendUint32(b, c.tid)
	b = append(b, ih[:]...)
	b = append(b, pid[:]...)
	b = binary.BigEndian.AppendUint64(b, 100) // downloaded
	b = binary.BigEndian.AppendUint64(b, 1<<40)
	b = binary.BigEndian.AppendUint64(b, 7) // uploaded
	b = binary.BigEndian.AppendUint32(b, event)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 0xdeadbeef)
	b = binary.BigEndian.AppendUint32(b, uint32(numWant))
	return binary.BigEndian.AppendUint16(b, port)
}

func (c *udpClient) scrapePacket(connID uint64, hashes ...[20]byte) []byte {
	c.tid++
	b := binary.BigEndian.AppendUint64(nil, connID)
	b = binary.BigEndian.AppendUint32(b, ActionScrape)
	b = binary.BigEndian.AppendUint32(b, c.tid)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

func expectUDPError(t *testing.T, r []byte, tid uint32, contains string) {
	t.Helper()
	if len(r) < 8 || binary.BigEndian.Uint32(r) != ActionError || binary.BigEndian.Uint32(r[4:]) != tid || !strings.Contains(string(r[8:]), contains) {
		t.Errorf("want error %q for tid %x, got %x (%q)", contains, tid, r, r)
	}
}

func TestUDPAnnounceAndScrapeIPv4(t *testing.T) {
	tr := start(t, Config{Interval: 120 * time.Second})
	peers := v4Peers(5)
	tr.SetPeers(ihA, append(slices.Clone(peers), netip.MustParseAddrPort("[::1]:9")))
	c := dialUDP(t, tr.UDPAnnounceURL(), "")
	id := c.connect()
	r := c.roundTrip(c.announcePacket(id, ihA, 2, -1, 51413), 5*time.Second)
	if len(r) != 20+6*5 || binary.BigEndian.Uint32(r[0:]) != ActionAnnounce || binary.BigEndian.Uint32(r[4:]) != c.tid {
		t.Fatalf("announce reply %x", r)
	}
	interval, leechers, seeders := binary.BigEndian.Uint32(r[8:]), binary.BigEndian.Uint32(r[12:]), binary.BigEndian.Uint32(r[16:])
	if interval != 120 || leechers != 7 || seeders != 0 {
		t.Errorf("interval %d leechers %d seeders %d", interval, leechers, seeders)
	}
	got := compactPeers(t, string(r[20:]), 6)
	slices.SortFunc(got, netip.AddrPort.Compare)
	if !slices.Equal(got, peers) {
		t.Errorf("peers %v", got)
	}
	a := tr.Announces()[0]
	if a.Protocol != UDP || a.Event != "started" || a.Downloaded != 100 || a.Left != 1<<40 || a.Uploaded != 7 ||
		a.Key != "deadbeef" || a.NumWant != -1 || a.Port != 51413 || a.PeerID != pid || a.InfoHash != ihA || a.IP != "" {
		t.Errorf("recorded %+v", a)
	}
	tr.SetScrape(ihB, 3, 4, 5)
	r = c.roundTrip(c.scrapePacket(id, ihA, ihB), 5*time.Second)
	if len(r) != 8+24 || binary.BigEndian.Uint32(r) != ActionScrape || binary.BigEndian.Uint32(r[4:]) != c.tid {
		t.Fatalf("scrape reply %x", r)
	}
	// seeders, completed, leechers per hash
	want := []uint32{0, 0, 7, 3, 5, 4}
	for i, w := range want {
		if g := binary.BigEndian.Uint32(r[8+4*i:]); g != w {
			t.Errorf("scrape word %d = %d, want %d", i, g, w)
		}
	}
	if st := tr.Stats(); st.UDPConnects != 1 || st.Torrents[ihA].UDPAnnounces != 1 || st.Torrents[ihB].UDPScrapes != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestUDPAnnounceIPv6(t *testing.T) {
	tr := start(t, Config{IPv6: true})
	if tr.UDPAnnounceURL6() == "" || tr.AnnounceURL6() == "" {
		t.Fatal("no IPv6 URLs")
	}
	v6 := addrs(t, "[::1]:7001", "[::1]:7002")
	tr.SetPeers(ihA, append(v4Peers(3), v6...))
	c := dialUDP(t, tr.UDPAnnounceURL6(), "")
	id := c.connect()
	r := c.roundTrip(c.announcePacket(id, ihA, 0, 50, 51413), 5*time.Second)
	if len(r) != 20+18*2 {
		t.Fatalf("announce over IPv6: %d bytes, want 56", len(r))
	}
	got := compactPeers(t, string(r[20:]), 18)
	slices.SortFunc(got, netip.AddrPort.Compare)
	if !slices.Equal(got, v6) {
		t.Errorf("peers6 %v", got)
	}
	// HTTP over IPv6 works too.
	if status, _ := get(t, tr.AnnounceURL6()+"?"+query(ihA, "")); status != 200 {
		t.Errorf("http over ::1: status %d", status)
	}
}

func TestUDPConnectionID(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	tr := start(t, Config{Now: clock})
	c := dialUDP(t, tr.UDPAnnounceURL(), "")

	r := c.roundTrip(c.announcePacket(12345, ihA, 0, -1, 1), 5*time.Second)
	expectUDPError(t, r, c.tid, "connection ID unknown")

	id := c.connect()
	advance(ConnectionIDLifetime) // still valid at exactly two minutes
	r = c.roundTrip(c.announcePacket(id, ihA, 0, -1, 1), 5*time.Second)
	if binary.BigEndian.Uint32(r) != ActionAnnounce {
		t.Errorf("valid connection ID refused: %q", r)
	}
	advance(time.Second)
	r = c.roundTrip(c.announcePacket(id, ihA, 0, -1, 1), 5*time.Second)
	expectUDPError(t, r, c.tid, "connection ID expired")

	// An ID issued to one IP is refused from another.
	id = c.connect()
	c2 := dialUDP(t, tr.UDPAnnounceURL(), "127.0.0.2:0")
	r = c2.roundTrip(c2.scrapePacket(id, ihA), 5*time.Second)
	expectUDPError(t, r, c2.tid, "another IP")
	if n := len(tr.Rejections()); n != 3 {
		t.Errorf("%d rejections, want 3", n)
	}
}

func TestUDPDropBadConnectionID(t *testing.T) {
	tr := start(t, Config{DropBadConnectionID: true})
	c := dialUDP(t, tr.UDPAnnounceURL(), "")
	if r := c.roundTrip(c.announcePacket(99, ihA, 0, -1, 1), 100*time.Millisecond); r != nil {
		t.Errorf("reply to a bad connection ID: %x", r)
	}
	if rj := tr.Rejections(); len(rj) != 1 || !strings.Contains(rj[0].Err, "connection ID unknown") {
		t.Errorf("rejections %+v", rj)
	}
	id := c.connect()
	if r := c.roundTrip(c.announcePacket(id, ihA, 0, -1, 1), 5*time.Second); len(r) != 20 {
		t.Errorf("good connection ID: reply %x", r)
	}
}

func TestUDPBadRequests(t *testing.T) {
	tr := start(t, Config{})
	c := dialUDP(t, tr.UDPAnnounceURL(), "")
	id := c.connect()
	bad := c.connectPacket()
	bad[7] ^= 1
	expectUDPError(t, c.roundTrip(bad, 5*time.Second), c.tid, "protocol id")
	short := c.announcePacket(id, ihA, 0, -1, 1)[:97]
	expectUDPError(t, c.roundTrip(short, 5*time.Second), c.tid, "at least 98")
	ev := c.announcePacket(id, ihA, 4, -1, 1)
	expectUDPError(t, c.roundTrip(ev, 5*time.Second), c.tid, "event 4")
	sc := append(c.scrapePacket(id, ihA), 1)
	expectUDPError(t, c.roundTrip(sc, 5*time.Second), c.tid, "scrape")
	unk := c.scrapePacket(id, ihA)
	unk[11] = 9
	expectUDPError(t, c.roundTrip(unk, 5*time.Second), c.tid, "action 9")
	// Too short to answer: nothing comes back, the next request still works.
	if r := c.roundTrip([]byte{1, 2, 3}, 100*time.Millisecond); r != nil {
		t.Errorf("reply to 3-byte packet: %x", r)
	}
	c.connect()
}

func TestUDPFaults(t *testing.T) {
	tr := start(t, Config{SlowHold: time.Hour})
	tr.SetPeers(ihA, v4Peers(2))
	c := dialUDP(t, tr.UDPAnnounceURL(), "")
	id := c.connect()
	for _, m := range FaultModes() {
		t.Run(m.String(), func(t *testing.T) {
			tr.SetFault(m)
			defer tr.SetFault(FaultNone)
			c.t = t
			wait := 5 * time.Second
			if m == FaultNoReply || m == FaultSlow {
				wait = 100 * time.Millisecond // a reply would come at once; none must come
			}
			r := c.roundTrip(c.announcePacket(id, ihA, 0, -1, 1), wait)
			normal := func() bool {
				return len(r) == 32 && binary.BigEndian.Uint32(r) == ActionAnnounce && binary.BigEndian.Uint32(r[4:]) == c.tid
			}
			switch m {
			case FaultNoReply, FaultSlow:
				if r != nil {
					t.Errorf("got reply %x", r)
				}
			case FaultFailureReason:
				expectUDPError(t, r, c.tid, FailureReason)
			case FaultTruncated:
				if len(r) != 29 || binary.BigEndian.Uint32(r[4:]) != c.tid {
					t.Errorf("truncated reply %x", r)
				}
			case FaultWrongTransaction:
				if len(r) != 32 || binary.BigEndian.Uint32(r[4:]) != c.tid+1 {
					t.Errorf("reply %x, tid %x", r, c.tid)
				}
			case FaultForeignPacket, FaultGarbage:
				if len(r) < 16 || normal() || bytes.Equal(r[4:8], binary.BigEndian.AppendUint32(nil, c.tid)) {
					t.Errorf("foreign packet looks like a reply: %x", r)
				}
			default:
				if !normal() {
					t.Errorf("reply %x", r)
				}
			}
		})
	}
	c.t = t
	// Connect faults are separate: announce keeps working while connect is broken.
	tr.SetConnectFault(FaultTruncated)
	if r := c.roundTrip(c.connectPacket(), 5*time.Second); len(r) != 13 {
		t.Errorf("truncated connect %x", r)
	}
	tr.SetConnectFault(FaultNone)
	if r := c.roundTrip(c.scrapePacket(id, ihA), 5*time.Second); len(r) != 20 {
		t.Errorf("scrape with connect fault %x", r)
	}
}

func FuzzParseUDPRequest(f *testing.F) {
	c := &udpClient{}
	f.Add(c.connectPacket())
	f.Add(c.announcePacket(42, ihA, 2, -1, 6881))
	f.Add(append(c.announcePacket(42, ihA, 2, 50, 6881), 2, 5, '/', 'a', 'b', 'c', 'd', 'e'))
	f.Add(c.scrapePacket(42, ihA, ihB))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseUDPRequest(b)
		if err != nil {
			return
		}
		switch r.Action {
		case ActionConnect:
			if r.ConnectionID != ProtocolID {
				t.Errorf("connect without protocol id accepted")
			}
		case ActionAnnounce:
			if len(b) < 98 || r.Announce.Port == 0 || r.Announce.Left < 0 {
				t.Errorf("bad announce accepted: %+v", r)
			}
		case ActionScrape:
			if len(r.InfoHashes) == 0 || len(r.InfoHashes) > maxScrapeHashes {
				t.Errorf("scrape with %d hashes accepted", len(r.InfoHashes))
			}
		default:
			t.Errorf("action %d accepted", r.Action)
		}
	})
}

func TestUDPURLData(t *testing.T) {
	tr := start(t, Config{})
	c := dialUDP(t, tr.UDPAnnounceURL(), "")
	id := c.connect()
	p := c.announcePacket(id, ihA, 0, -1, 1)
	p = append(p, 1, 2, 4, '/', 'a', 'n', 'n', 1, 2, 11, 'o', 'u', 'n', 'c', 'e', '?', 'k', '=', '%', '2', '0', 0, 2, 1, 'x')
	if r := c.roundTrip(p, 5*time.Second); binary.BigEndian.Uint32(r) != ActionAnnounce {
		t.Fatalf("reply %q", r)
	}
	if got := tr.Announces()[0]; got.URLData != "/announce?k=%20" || got.Path != got.URLData {
		t.Errorf("URLData %q, Path %q", got.URLData, got.Path)
	}
	bad := append(c.announcePacket(id, ihA, 0, -1, 1), 2, 9, 'a')
	expectUDPError(t, c.roundTrip(bad, 5*time.Second), c.tid, "URLData")
	tr.ClearRecords()
	if len(tr.Announces())+len(tr.Rejections())+len(tr.Scrapes()) != 0 {
		t.Error("records not cleared")
	}
}

func TestCompactBytes(t *testing.T) {
	tr := start(t, Config{})
	tr.SetPeers(ihA, addrs(t, "127.1.0.1:6000", "[::1]:6001"))
	_, body := get(t, tr.AnnounceURL()+"?"+query(ihA, "compact=1"))
	d := decodeDict(t, body)
	if want := "\x7f\x01\x00\x01\x17\x70"; d["peers"] != want {
		t.Errorf("peers % x, want % x (port big-endian)", d["peers"], want)
	}
	if want := strings.Repeat("\x00", 15) + "\x01\x17\x71"; d["peers6"] != want {
		t.Errorf("peers6 % x, want % x", d["peers6"], want)
	}
}
