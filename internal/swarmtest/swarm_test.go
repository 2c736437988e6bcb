package swarmtest

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func equalMix() map[Profile]float64 {
	m := map[Profile]float64{}
	for _, p := range AllProfiles {
		m[p] = 1
	}
	return m
}

// scenarioCurves gives leechers exact, varied curves: from zero with a
// stall, a regression (libtorrent only: it is the one with lt_donthave), a
// seed, and one piece short of complete.
func scenarioCurves() func(p *Peer) (Curve, bool) {
	seen := map[Profile]int{}
	return func(p *Peer) (Curve, bool) {
		switch p.Profile {
		case Libtorrent, Transmission, Rtorrent:
		default:
			return Curve{}, false
		}
		seen[p.Profile]++
		return scenarioCurve(p, seen[p.Profile]), true
	}
}

func scenarioCurve(p *Peer, k int) Curve {
	n := p.Torrent.Pieces
	s := time.Second
	switch k % 4 {
	case 0:
		return Curve{Start: 0, Interval: s, StallAt: 20 * s, StallFor: 10 * s}
	case 1:
		c := Curve{Start: 10, Interval: 2 * s}
		if p.Profile == Libtorrent {
			c.RegressAt, c.RegressBy = 50*s, 3
		}
		return c
	case 2:
		return Curve{Start: n}
	default:
		return Curve{Start: n - 1, Interval: 3 * s}
	}
}

func startTestSwarm(t *testing.T, cfg Config) *Swarm {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = NewManualClock(t0)
	}
	s, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (r *testReader) matches(p *Peer, n int) bool {
	if r.count != n {
		return false
	}
	for i := 0; i < n; i++ {
		if !r.have[p.Piece(i)] {
			return false
		}
	}
	return true
}

func TestPeersReportExactProgress(t *testing.T) {
	clock := NewManualClock(t0)
	s := startTestSwarm(t, Config{Seed: 7, Torrents: 3, Peers: 44, Mix: equalMix(), Duration: 100 * time.Second,
		Versions: map[Version]float64{V1: 1, V2: 1, Hybrid: 1},
		Clock:    clock, CurveFunc: scenarioCurves()})
	type conn struct {
		p *Peer
		r *testReader
	}
	var conns []conn
	for _, p := range s.Peers() {
		b := p.Behaviour()
		if !b.Talks {
			continue
		}
		r, err := dialReader(t, p.Addr, p.Torrent.WireHash, p.Torrent.Pieces, true)
		if err != nil {
			t.Fatalf("peer %d (%s): %v", p.Index, p.Profile, err)
		}
		n := Progress(p, 0)
		// Reserved bits follow the profile.
		if got := r.reserved[7]&0x04 != 0; got != b.Fast {
			t.Errorf("peer %d (%s): fast bit %v", p.Index, p.Profile, got)
		}
		if got := r.reserved[5]&0x10 != 0; got != b.Extensions {
			t.Errorf("peer %d (%s): extension bit %v", p.Index, p.Profile, got)
		}
		r.readUntil(func() bool { return r.ext != nil && r.matches(p, n) && (n > 0 || !b.Fast || r.first != "") },
			"first progress and extension handshake")
		want := map[bool]string{true: "bitfield"}[n > 0]
		switch {
		case b.Super:
			want = "have_none"
		case b.Fast && n == p.Torrent.Pieces:
			want = "have_all"
		case b.Fast && n == 0:
			want = "have_none"
		}
		if r.first != want {
			t.Errorf("peer %d (%s) with %d/%d pieces: first progress message %q, want %q",
				p.Index, p.Profile, n, p.Torrent.Pieces, r.first, want)
		}
		checkExt(t, p, r.ext)
		conns = append(conns, conn{p, r})
	}
	if len(conns) < 25 {
		t.Fatalf("only %d talking peers", len(conns))
	}
	for _, at := range []time.Duration{0, 5 * time.Second, 25 * time.Second, 35 * time.Second,
		49 * time.Second, 50 * time.Second, 51 * time.Second, 120 * time.Second, 10 * time.Hour} {
		clock.Set(t0.Add(at))
		for _, c := range conns {
			n := Progress(c.p, at)
			c.r.readUntil(func() bool { return c.r.matches(c.p, n) }, "progress at "+at.String())
		}
	}
	for _, c := range conns {
		c.r.quiet(50 * time.Millisecond)
		if c.r.closed {
			t.Errorf("peer %d closed the connection", c.p.Index)
		}
	}
	// The regressing peers really regressed and said so with lt_donthave.
	regressed := 0
	for _, c := range conns {
		if c.p.Curve.RegressBy > 0 {
			regressed++
			if c.r.count != c.p.Curve.grown(50*time.Second)-3 {
				t.Errorf("regressing peer %d at %d", c.p.Index, c.r.count)
			}
		}
	}
	if regressed == 0 {
		t.Error("scenario has no regressing peer")
	}
}

// checkExt checks the BEP 10 handshake against the profile.
func checkExt(t *testing.T, p *Peer, ext map[string]any) {
	t.Helper()
	b := p.Behaviour()
	if v, _ := ext["v"].(string); v != b.Version {
		t.Errorf("peer %d: v = %q", p.Index, v)
	}
	port, hasP := ext["p"].(int64)
	if hasP != b.SendPort || (hasP && uint16(port) != p.Addr.Port()) {
		t.Errorf("peer %d (%s): p = %v (present %v), listen port %d", p.Index, p.Profile, port, hasP, p.Addr.Port())
	}
	uo, hasUO := ext["upload_only"].(int64)
	if hasUO != (b.UploadOnly >= 0) || (hasUO && int(uo) != b.UploadOnly) {
		t.Errorf("peer %d (%s): upload_only = %v (present %v)", p.Index, p.Profile, uo, hasUO)
	}
	ms, hasMS := ext["metadata_size"].(int64)
	if hasMS != b.MetaSize || (hasMS && int(ms) != len(p.Torrent.Info)) {
		t.Errorf("peer %d: metadata_size = %v", p.Index, ms)
	}
	if _, ok := ext["reqq"]; ok != b.ReqQ {
		t.Errorf("peer %d: reqq present %v", p.Index, ok)
	}
}

func TestUnreadableProfiles(t *testing.T) {
	s := startTestSwarm(t, Config{Seed: 3, Peers: 22, Mix: map[Profile]float64{AcceptClose: 1, Silent: 1, Garbage: 1, Refuse: 1}})
	for _, p := range s.Peers() {
		c, err := net.DialTimeout("tcp4", p.Addr.String(), 5*time.Second)
		if p.Profile == Refuse {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("refusing peer %d: dial err = %v, want connection refused", p.Index, err)
			}
			if err == nil {
				c.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("peer %d (%s): %v", p.Index, p.Profile, err)
		}
		h := p.Torrent.WireHash
		hs := append(append(append([]byte{19}, "BitTorrent protocol"...), make([]byte, 8)...), h[:]...)
		hs = append(hs, "-RD0001-abcdefghijkl"...)
		_, _ = c.Write(hs)
		_ = c.SetReadDeadline(time.Now().Add(map[Profile]time.Duration{Silent: 100 * time.Millisecond}[p.Profile] + 5*time.Second*time.Duration(btoi(p.Profile != Silent))))
		buf := make([]byte, 68)
		n, err := io.ReadFull(c, buf)
		switch p.Profile {
		case AcceptClose:
			if n != 0 || (!errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET)) {
				t.Errorf("accept-close peer %d: read %d bytes, err %v", p.Index, n, err)
			}
		case Silent:
			if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("silent peer %d: read %d bytes, err %v", p.Index, n, err)
			}
		case Garbage:
			if err != nil || (buf[0] == 19 && string(buf[1:20]) == "BitTorrent protocol") {
				t.Errorf("garbage peer %d: err %v, first bytes %q", p.Index, err, buf[:20])
			}
		}
		c.Close()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMetadataAndPEX(t *testing.T) {
	s := startTestSwarm(t, Config{Seed: 5, Torrents: 1, Peers: 12, Mix: map[Profile]float64{Libtorrent: 1, Transmission: 1}})
	p := s.Peers()[0]
	r, err := dialReader(t, p.Addr, p.Torrent.WireHash, p.Torrent.Pieces, true)
	if err != nil {
		t.Fatal(err)
	}
	r.readUntil(func() bool { return r.ext != nil && len(r.pex) > 0 }, "extension handshake and PEX")
	size := int(r.ext["metadata_size"].(int64))
	npieces := (size + 16383) / 16384
	for i := 0; i <= npieces; i++ { // one past the end must be rejected
		r.requestMetadata(i)
	}
	r.readUntil(func() bool { return len(r.meta) == npieces && r.metaRej == 1 }, "metadata pieces")
	var info []byte
	for i := 0; i < npieces; i++ {
		info = append(info, r.meta[i]...)
	}
	if sha1.Sum(info) != p.Torrent.InfoHashV1 && p.Torrent.HasV1() {
		t.Errorf("metadata does not hash to the info hash")
	}
	if len(info) != len(p.Torrent.Info) {
		t.Errorf("metadata %d bytes, want %d", len(info), len(p.Torrent.Info))
	}
	known := map[netip.AddrPort]*Peer{}
	for _, o := range s.Peers() {
		known[o.Addr] = o
	}
	for _, a := range r.pex {
		o, ok := known[a]
		if !ok || o == p || o.Torrent != p.Torrent {
			t.Errorf("PEX names %s, not another peer of the torrent", a)
		}
	}
}

func TestIdlePeerDropsAndKeepsAlive(t *testing.T) {
	s := startTestSwarm(t, Config{Seed: 1, Peers: 1, Mix: map[Profile]float64{Libtorrent: 1},
		IdleTimeout: 300 * time.Millisecond, KeepAlive: 50 * time.Millisecond})
	p := s.Peers()[0]
	r, err := dialReader(t, p.Addr, p.Torrent.WireHash, p.Torrent.Pieces, true)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.closed {
		if err := r.next(deadline); err != nil && !r.closed {
			t.Fatalf("want the idle peer to close the connection, got %v", err)
		}
	}
	if r.keeps == 0 {
		t.Error("no keep-alive before the idle timeout")
	}
}

func TestDialOut(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := startTestSwarm(t, Config{Seed: 2, Peers: 3, Mix: map[Profile]float64{Libtorrent: 1},
		DialOut: l.Addr().String(), DialOutFraction: 1})
	byIP := map[netip.Addr]*Peer{}
	for _, p := range s.Peers() {
		if !p.DialOut {
			t.Fatalf("peer %d does not dial out with fraction 1", p.Index)
		}
		byIP[p.Addr.Addr()] = p
	}
	for range s.Peers() {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		p := byIP[from]
		if p == nil {
			t.Fatalf("connection from %s, not a swarm peer address", from)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		hs := make([]byte, 68)
		if _, err := io.ReadFull(c, hs); err != nil {
			t.Fatal(err)
		}
		if string(hs[28:48]) != string(p.Torrent.WireHash[:]) {
			t.Fatalf("peer %d dialled with info hash %x", p.Index, hs[28:48])
		}
		copy(hs[48:], "-RD0001-abcdefghijkl")
		hs[25], hs[27] = 0x10, 0x04
		if _, err := c.Write(hs); err != nil {
			t.Fatal(err)
		}
		r := &testReader{t: t, conn: c, npieces: p.Torrent.Pieces, have: make([]bool, p.Torrent.Pieces)}
		n := Progress(p, 0)
		r.readUntil(func() bool { return r.ext != nil && r.matches(p, n) }, "dial-out progress")
		if port, _ := r.ext["p"].(int64); uint16(port) != p.Addr.Port() {
			t.Errorf("dial-out peer %d sent p=%d, listens on %d", p.Index, port, p.Addr.Port())
		}
		c.Close()
	}
	if got := s.Stats().DialOuts; got < 3 {
		t.Errorf("DialOuts = %d", got)
	}
}

func TestSharedListeners(t *testing.T) {
	if ok, _ := loopbackOnly(); !ok {
		t.Skip("shared listeners need a loopback-only network namespace (run under unshare -n)")
	}
	s := startTestSwarm(t, Config{Seed: 11, Torrents: 2, Peers: 40, ListenMode: ListenShared, SharedPorts: 3,
		Mix: map[Profile]float64{Libtorrent: 3, Rtorrent: 1, AcceptClose: 1, Refuse: 1}})
	if s.ListenMode() != ListenShared || len(s.listeners) != 3 {
		t.Fatalf("mode %s with %d listeners", s.ListenMode(), len(s.listeners))
	}
	for _, p := range s.Peers() {
		switch p.Profile {
		case Refuse:
			if c, err := net.DialTimeout("tcp4", p.Addr.String(), 5*time.Second); err == nil {
				c.Close()
				t.Errorf("refusing peer %d accepted a connection", p.Index)
			}
		case Libtorrent, Rtorrent:
			r, err := dialReader(t, p.Addr, p.Torrent.WireHash, p.Torrent.Pieces, true)
			if err != nil {
				t.Fatalf("peer %d: %v", p.Index, err)
			}
			n := Progress(p, 0)
			r.readUntil(func() bool { return r.ext != nil && r.matches(p, n) }, "progress")
			if v, _ := r.ext["v"].(string); v != p.Behaviour().Version {
				t.Errorf("peer %d answered as %q: connection reached the wrong peer", p.Index, v)
			}
		}
	}
	// An address no peer owns is closed at once.
	c, err := net.Dial("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.9.9.9"), s.Peers()[0].Addr.Port()).String())
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("unknown address got data")
		}
		c.Close()
	}
}

func TestPerAddressLimitNeedsNamespace(t *testing.T) {
	if ok, _ := loopbackOnly(); ok {
		t.Skip("only meaningful outside a loopback-only namespace")
	}
	_, err := Start(context.Background(), Config{Peers: 5, PerAddressLimit: 2, Mix: map[Profile]float64{Libtorrent: 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "unshare -n") {
		t.Errorf("err = %v", err)
	}
}

func TestTruth(t *testing.T) {
	cfg := Config{Seed: 42, Torrents: 4, Peers: 300, Duration: time.Minute}
	s := startTestSwarm(t, cfg)
	w := Window{From: 10 * time.Second, To: 2 * time.Minute}
	tr := s.Truth(w)
	total := 0
	for _, c := range tr.Crossings {
		total += c.Count
	}
	if total != tr.Total {
		t.Errorf("crossings sum to %d, total %d", total, tr.Total)
	}
	inWindow, classes := 0, map[string]int{}
	for i, pt := range tr.Peers {
		p := s.Peers()[i]
		classes[pt.Class]++
		if pt.Counted && (!pt.Crosses || pt.Class != "leecher" || !pt.Reports) {
			t.Errorf("peer %d counted but %+v", i, pt)
		}
		if pt.Crosses {
			at := *pt.CrossAt
			if Progress(p, at) < pt.Threshold || (at > 0 && Progress(p, at-1) >= pt.Threshold) || Progress(p, 0) >= pt.Threshold {
				t.Errorf("peer %d: crossing at %v is not the first time at the threshold", i, at)
			}
			if pt.Counted && w.Contains(at) {
				inWindow++
			}
		}
		if pt.Class == "seed" && pt.Crosses {
			t.Errorf("seed %d crosses", i)
		}
		if pt.Class == "partial_seed" && pt.Crosses {
			t.Errorf("partial seed %d crosses", i)
		}
		if pt.BytesPerS != pt.PiecesPerS*float64(pt.PieceLength) {
			t.Errorf("peer %d: speed %v != %v × %d", i, pt.BytesPerS, pt.PiecesPerS, pt.PieceLength)
		}
	}
	if inWindow != tr.Total {
		t.Errorf("%d counted crossings in window, total says %d", inWindow, tr.Total)
	}
	if tr.Total == 0 || classes["seed"] == 0 || classes["leecher"] == 0 || classes["unobservable"] == 0 {
		t.Errorf("degenerate truth: total %d classes %v", tr.Total, classes)
	}
	path := filepath.Join(t.TempDir(), "truth.json")
	if err := s.WriteTruth(path, w); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Truth
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Total != tr.Total || len(back.Peers) != len(tr.Peers) {
		t.Errorf("truth file round trip: %d/%d", back.Total, len(back.Peers))
	}
	// Same seed, same swarm (ports are the kernel's, the rest is the seed's).
	s2 := startTestSwarm(t, cfg)
	tr2 := s2.Truth(w)
	for i := range tr.Peers {
		a, b := tr.Peers[i], tr2.Peers[i]
		a.Port, b.Port = 0, 0
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("peer %d differs between two swarms with the same seed:\n%s\n%s", i, ja, jb)
		}
	}
}

func TestWritesFiles(t *testing.T) {
	dir := t.TempDir()
	s := startTestSwarm(t, Config{Seed: 1, Torrents: 3, Peers: 5, Dir: dir, Trackers: []string{"http://127.0.0.1:6969/announce"}})
	for _, tor := range s.Torrents() {
		if _, err := os.Stat(filepath.Join(dir, "torrents", tor.Name+".torrent")); err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "magnets.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "magnet:?"); got != 3 {
		t.Errorf("%d magnets", got)
	}
	city, asn := s.GeoIPPaths()
	for _, p := range []string{city, asn} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative peers", Config{Peers: -1}, "peers"},
		{"too many torrents", Config{Torrents: 10001}, "torrents"},
		{"threshold", Config{Threshold: 1.5}, "threshold"},
		{"unknown profile", Config{Mix: map[Profile]float64{"bittorrent-9000": 1}}, "unknown profile"},
		{"unknown version", Config{Versions: map[Version]float64{"v3": 1}}, "unknown version"},
		{"public dial-out", Config{DialOut: "192.0.2.1:6881"}, "not a loopback"},
		{"bad dial-out", Config{DialOut: "localhost"}, "dialout"},
		{"listen mode", Config{ListenMode: "any"}, "listen_mode"},
		{"zero mix", Config{Peers: 3, Mix: map[Profile]float64{Libtorrent: 0}}, "mix"},
		{"negative duration", Config{Duration: -time.Second}, "duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(context.Background(), tt.cfg, nil)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Config{Seed: 9, Peers: 20, Clock: NewManualClock(t0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Leave a few connections open mid-session.
	for _, p := range s.Peers()[:10] {
		if c, err := net.DialTimeout("tcp4", p.Addr.String(), time.Second); err == nil {
			defer c.Close()
		}
	}
	cancel() // the caller's context ends the swarm
	s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestRegressionBeforeExtensionHandshake: a regression that happens before
// the reader's BEP 10 handshake arrives is still sent (as lt_donthave) once
// the reader's message ids are known.
func TestRegressionBeforeExtensionHandshake(t *testing.T) {
	clock := NewManualClock(t0)
	s := startTestSwarm(t, Config{Seed: 4, Peers: 1, Mix: map[Profile]float64{Libtorrent: 1}, Clock: clock,
		CurveFunc: func(p *Peer) (Curve, bool) {
			return Curve{Start: 20, Interval: time.Second, RegressAt: 5 * time.Second, RegressBy: 7}, true
		}})
	p := s.Peers()[0]
	r, err := dialReaderT(t, p.Addr, p.Torrent.WireHash, p.Torrent.Pieces, true, true,
		func(r *testReader) { r.deferExt = true })
	if err != nil {
		t.Fatal(err)
	}
	r.readUntil(func() bool { return r.matches(p, 20) }, "bitfield")
	clock.Set(t0.Add(4 * time.Second))
	r.readUntil(func() bool { return r.matches(p, 24) }, "haves up to the regression")
	clock.Set(t0.Add(6 * time.Second))
	if err := r.sendExt(); err != nil {
		t.Fatal(err)
	}
	r.readUntil(func() bool { return r.matches(p, Progress(p, 6*time.Second)) }, "lt_donthave after the extension handshake")
}

func TestHandshakeVariants(t *testing.T) {
	clock := NewManualClock(t0)
	s := startTestSwarm(t, Config{Seed: 8, Torrents: 3, Peers: 9, Versions: map[Version]float64{V1: 1, V2: 1, Hybrid: 1},
		Mix: map[Profile]float64{Libtorrent: 1}, Clock: clock,
		CurveFunc: func(p *Peer) (Curve, bool) { return Curve{Start: p.Torrent.Pieces}, true }})
	seen := map[Version]bool{}
	for _, p := range s.Peers() {
		tor := p.Torrent
		seen[tor.Version] = true
		var hashes [][20]byte
		hashes = append(hashes, tor.lookupHashes()...)
		for _, h := range hashes {
			// Every hash the torrent is known by works, and is echoed.
			r, err := dialReader(t, p.Addr, h, tor.Pieces, true)
			if err != nil {
				t.Fatalf("%s torrent, hash %x: %v", tor.Version, h, err)
			}
			r.readUntil(func() bool { return r.first != "" && r.ext != nil }, "have_all")
			if r.first != "have_all" || r.count != tor.Pieces {
				t.Errorf("seed with Fast: first %q, count %d", r.first, r.count)
			}
		}
		// Without Fast the seed sends a full bitfield.
		r, err := dialReader(t, p.Addr, tor.WireHash, tor.Pieces, false)
		if err != nil {
			t.Fatal(err)
		}
		r.readUntil(func() bool { return r.first != "" }, "bitfield")
		if r.first != "bitfield" || r.count != tor.Pieces {
			t.Errorf("seed without Fast: first %q, count %d", r.first, r.count)
		}
		// A wrong info hash is dropped without an answer.
		if _, err := dialReader(t, p.Addr, [20]byte{1, 2, 3}, tor.Pieces, true); err == nil {
			t.Errorf("peer %d answered a handshake for an unknown torrent", p.Index)
		}
	}
	if len(seen) != 3 {
		t.Errorf("versions seen: %v", seen)
	}
	// A reader without the extension bit gets no BEP 10 handshake, only progress.
	p := s.Peers()[0]
	c, err := net.DialTimeout("tcp4", p.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := p.Torrent.WireHash
	hs := append(append(append([]byte{19}, "BitTorrent protocol"...), 0, 0, 0, 0, 0, 0, 0, 0x04), h[:]...)
	if _, err := c.Write(append(hs, "-RD0001-abcdefghijkl"...)); err != nil {
		t.Fatal(err)
	}
	r := &testReader{t: t, conn: c, npieces: p.Torrent.Pieces, have: make([]bool, p.Torrent.Pieces)}
	if _, err := io.ReadFull(c, make([]byte, 68)); err != nil {
		t.Fatal(err)
	}
	r.readUntil(func() bool { return r.first != "" }, "have_all")
	r.quiet(100 * time.Millisecond)
	if r.ext != nil {
		t.Error("extension handshake sent to a reader without the extension bit")
	}
}

func TestLazySeedBitfieldThenHaves(t *testing.T) {
	s := startTestSwarm(t, Config{Seed: 6, Peers: 3, Mix: map[Profile]float64{LazySeed: 1}})
	for _, p := range s.Peers() {
		n := p.Torrent.Pieces
		if p.LazyHidden < 1 || p.LazyHidden >= n {
			t.Fatalf("peer %d hides %d of %d pieces", p.Index, p.LazyHidden, n)
		}
		r, err := dialReader(t, p.Addr, p.Torrent.WireHash, n, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.next(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if r.first != "bitfield" || r.count != n-p.LazyHidden {
			t.Errorf("lazy seed %d: first message %q with %d pieces, want a bitfield of %d", p.Index, r.first, r.count, n-p.LazyHidden)
		}
		r.readUntil(func() bool { return r.matches(p, n) }, "haves completing the lazy bitfield")
	}
}
