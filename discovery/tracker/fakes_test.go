package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zeebo/bencode"
)

// testHash is a hash with bytes from every percent-encoding class.
var testHash = metainfo.Hash{0x00, 0x20, 0x2d, 0x2e, 0x5f, 0x7e, 0x41, 0x7a, 0x30, 0xff, 0x25, 0x2b, 0x26, 0x3d, 0x3f, 0x2f, 0x80, 0x12, 0x61, 0x39}

// testPeers are what the good fakes hand out (loopback addresses; nothing dials them).
var testPeers = []netip.AddrPort{
	netip.MustParseAddrPort("127.1.0.1:6881"),
	netip.MustParseAddrPort("127.1.0.2:51413"),
}

// testPeers6 are what the good UDP fake hands out to an IPv6 client.
var testPeers6 = []netip.AddrPort{
	netip.MustParseAddrPort("[::1]:6881"),
	netip.MustParseAddrPort("[fd00::2]:51413"),
}

func compact6(peers []netip.AddrPort) string {
	var b []byte
	for _, p := range peers {
		a := p.Addr().As16()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, p.Port())
	}
	return string(b)
}

func compact4(peers []netip.AddrPort) string {
	var b []byte
	for _, p := range peers {
		a := p.Addr().As4()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, p.Port())
	}
	return string(b)
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuf) {
	buf := &syncBuf{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// waitFor polls cond until it holds or 15 s pass (a generous bound on a hang, not a
// performance assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkGoroutines fails the test if goroutines started after it was called are still
// running at cleanup.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// fakeHTTP is a loopback HTTP tracker whose replies the test scripts.
type fakeHTTP struct {
	srv *httptest.Server
	URL string // announce URL

	mu       sync.Mutex
	raw      []string // raw announce queries
	remotes  []string // the announces' client addresses
	times    []time.Time
	scrapes  int
	announce func(w http.ResponseWriter, r *http.Request) // nil: good reply
}

type httpReq struct {
	raw string
	q   url.Values
	at  time.Time
}

// listenAt reads a fake's address: an IP (any free port) or an IP:port.
func listenAt(ip string) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(ip); err == nil {
		return ap
	}
	return netip.AddrPortFrom(netip.MustParseAddr(strings.Trim(ip, "[]")), 0)
}

// newFakeHTTP listens on ip (a 127.x address) so that each fake has its own tracker label.
func newFakeHTTP(t testing.TB, ip string, announce func(w http.ResponseWriter, r *http.Request)) *fakeHTTP {
	t.Helper()
	f := &fakeHTTP{announce: announce}
	ln, err := net.Listen("tcp", listenAt(ip).String())
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Listener.Close()
	f.srv.Listener = ln
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + "/announce"
	return f
}

func (f *fakeHTTP) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.Contains(r.URL.Path, "/announce"):
		f.mu.Lock()
		f.raw = append(f.raw, r.URL.RawQuery)
		f.remotes = append(f.remotes, r.RemoteAddr)
		f.times = append(f.times, time.Now())
		h := f.announce
		f.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Write(mustBenc(map[string]any{"interval": 0, "peers": compact4(testPeers)}))
	case strings.Contains(r.URL.Path, "/scrape"):
		f.mu.Lock()
		f.scrapes++
		h := f.announce
		f.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		goodScrape(w, r)
	default:
		http.NotFound(w, r)
	}
}

func goodScrape(w http.ResponseWriter, r *http.Request) {
	{
		ih := r.URL.Query().Get("info_hash")
		w.Write(mustBenc(map[string]any{"files": map[string]any{
			ih: map[string]any{"complete": 3, "incomplete": 4, "downloaded": 5},
		}}))
	}
}

func mustBenc(v any) []byte {
	b, err := bencode.EncodeBytes(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (f *fakeHTTP) requests() []httpReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]httpReq, len(f.raw))
	for i, raw := range f.raw {
		q, _ := url.ParseQuery(raw)
		out[i] = httpReq{raw: raw, q: q, at: f.times[i]}
	}
	return out
}

func (f *fakeHTTP) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.raw)
}

// udpAnnounceReq is one announce the UDP fake received.
type udpAnnounceReq struct {
	connID     uint64
	tid        uint32
	hash       metainfo.Hash
	peerID     [20]byte
	downloaded uint64
	left       uint64
	uploaded   uint64
	event      uint32
	key        uint32
	numWant    int32
	port       uint16
}

// fakeUDP is a loopback BEP 15 tracker. reply, if set, replaces the good answer to each
// request; returning nil sends nothing.
type fakeUDP struct {
	conn *net.UDPConn
	URL  string
	done chan struct{}

	mu        sync.Mutex
	connects  int
	announces []udpAnnounceReq
	froms     []netip.AddrPort // the announces' source addresses
	scrapes   int
	reply     func(action, tid uint32, good []byte) [][]byte
}

const fakeConnID = 0x1122334455667788

func newFakeUDP(t testing.TB, ip string, reply func(action, tid uint32, good []byte) [][]byte) *fakeUDP {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listenAt(ip)))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUDP{conn: c, reply: reply, done: make(chan struct{})}
	f.URL = "udp://" + c.LocalAddr().String() + "/announce"
	go f.serve()
	t.Cleanup(func() { c.Close(); <-f.done })
	return f
}

func (f *fakeUDP) serve() {
	defer close(f.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		if n < 16 {
			continue
		}
		action := binary.BigEndian.Uint32(p[8:])
		tid := binary.BigEndian.Uint32(p[12:])
		var good []byte
		good = binary.BigEndian.AppendUint32(good, action)
		good = binary.BigEndian.AppendUint32(good, tid)
		f.mu.Lock()
		switch action {
		case udpActConnect:
			if binary.BigEndian.Uint64(p) != udpProtocolID {
				f.mu.Unlock()
				continue
			}
			f.connects++
			good = binary.BigEndian.AppendUint64(good, fakeConnID)
		case udpActAnnounce:
			if n < 98 {
				f.mu.Unlock()
				continue
			}
			r := udpAnnounceReq{
				connID:     binary.BigEndian.Uint64(p),
				tid:        tid,
				downloaded: binary.BigEndian.Uint64(p[56:]),
				left:       binary.BigEndian.Uint64(p[64:]),
				uploaded:   binary.BigEndian.Uint64(p[72:]),
				event:      binary.BigEndian.Uint32(p[80:]),
				key:        binary.BigEndian.Uint32(p[88:]),
				numWant:    int32(binary.BigEndian.Uint32(p[92:])),
				port:       binary.BigEndian.Uint16(p[96:]),
			}
			copy(r.hash[:], p[16:36])
			copy(r.peerID[:], p[36:56])
			f.announces = append(f.announces, r)
			f.froms = append(f.froms, from)
			good = binary.BigEndian.AppendUint32(good, 0) // interval
			good = binary.BigEndian.AppendUint32(good, 7) // leechers
			good = binary.BigEndian.AppendUint32(good, 2) // seeders
			if from.Addr().Is6() {
				good = append(good, compact6(testPeers6)...)
			} else {
				good = append(good, compact4(testPeers)...)
			}
		case udpActScrape:
			f.scrapes++
			good = binary.BigEndian.AppendUint32(good, 3) // seeders
			good = binary.BigEndian.AppendUint32(good, 5) // completed
			good = binary.BigEndian.AppendUint32(good, 4) // leechers
		}
		reply := f.reply
		f.mu.Unlock()
		out := [][]byte{good}
		if reply != nil {
			out = reply(action, tid, good)
		}
		for _, o := range out {
			f.conn.WriteToUDPAddrPort(o, from)
		}
	}
}

func (f *fakeUDP) announceReqs() []udpAnnounceReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]udpAnnounceReq(nil), f.announces...)
}

func (f *fakeUDP) connectCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects
}

// fastConfig is a Config with test-sized timers.
func fastConfig(log *slog.Logger) Config {
	return Config{
		Port:        65001, // above 32767: proves the UDP port is packed unsigned
		Interval:    5 * time.Millisecond,
		RetryBase:   5 * time.Millisecond,
		RetryMax:    20 * time.Millisecond,
		HTTPTimeout: 2 * time.Second,
		UDPBase:     100 * time.Millisecond, // generous: tests run on loaded 2-core machines
		UDPRetries:  1,
		UDPMaxWait:  400 * time.Millisecond,
		StopTimeout: 2 * time.Second,
		Logger:      log,
	}
}

// runAnnouncer starts an Announcer for one torrent over urls and drains its sightings.
type running struct {
	a      *Announcer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	sightings []discovery.Sighting
	drained   chan struct{}
}

func startAnnouncer(t *testing.T, cfg Config, tis ...discovery.TorrentInfo) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	out := make(chan discovery.Sighting)
	a, err := NewAnnouncer(cfg, reg, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tis {
		if err := a.Add(ti); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, reg: reg, cancel: cancel, done: make(chan struct{}), drained: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := a.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer close(r.drained)
		for {
			select {
			case s := <-out:
				r.mu.Lock()
				r.sightings = append(r.sightings, s)
				r.mu.Unlock()
			case <-r.done:
				return
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

// stop cancels Run and waits for it (idempotent).
func (r *running) stop() {
	r.cancel()
	<-r.done
	<-r.drained
}

func (r *running) nSightings() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sightings)
}
