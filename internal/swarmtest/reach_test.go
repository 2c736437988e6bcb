package swarmtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/anacrolix/torrent/mse"
	"github.com/oschwald/geoip2-golang/v2"
	"github.com/zeebo/bencode"
)

// reachReader opens a connection to p the way its reach options need (or not, to check the
// refusal): TCP or uTP, over its family, plaintext or MSE (offering plaintext and RC4, as
// a client that merely allows encryption does).
func reachReader(t *testing.T, p *Peer, useUTP, useMSE bool) (*testReader, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var c net.Conn
	var err error
	if useUTP {
		network, local := "udp4", "127.0.0.1:0"
		if p.Addr.Addr().Is6() {
			network, local = "udp6", "[::1]:0"
		}
		sock, serr := utp.NewSocket(network, local)
		if serr != nil {
			t.Fatal(serr)
		}
		t.Cleanup(func() { sock.Close() })
		c, err = sock.DialContext(ctx, network, p.Addr.String())
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", p.Addr.String())
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if useMSE {
		rw, method, err := mse.InitiateHandshake(c, p.Torrent.WireHash[:], nil, mse.AllSupportedCrypto)
		if err != nil {
			return nil, err
		}
		if method != mse.CryptoMethodRC4 {
			t.Errorf("peer %d chose crypto method %d, want RC4", p.Index, method)
		}
		c = &mseConn{Conn: c, rw: rw}
	}
	return readerHandshake(t, c, p.Torrent.WireHash, p.Torrent.Pieces)
}

// readerHandshake does the reader's side of the BEP 3 and BEP 10 handshakes on c.
func readerHandshake(t *testing.T, c net.Conn, hash [20]byte, npieces int) (*testReader, error) {
	r := &testReader{t: t, conn: c, npieces: npieces, have: make([]bool, npieces), meta: map[int][]byte{}}
	hs := append([]byte{19}, "BitTorrent protocol"...)
	hs = append(hs, 0, 0, 0, 0, 0, 0x10, 0, 0x04)
	hs = append(hs, hash[:]...)
	hs = append(hs, "-RD0001-abcdefghijkl"...)
	if _, err := c.Write(hs); err != nil {
		return r, err
	}
	got := make([]byte, 68)
	if _, err := io.ReadFull(c, got); err != nil {
		return r, err
	}
	if !bytes.Equal(got[:20], hs[:20]) || !bytes.Equal(got[28:48], hash[:]) {
		return r, errors.New("bad handshake reply")
	}
	copy(r.reserved[:], got[20:28])
	if r.reserved[5]&0x10 != 0 {
		if err := r.sendExt(); err != nil {
			return r, err
		}
	}
	return r, nil
}

func reachConfig() Config {
	return Config{Seed: 5, Torrents: 2, Peers: 40, Clock: NewManualClock(t0),
		Mix:   map[Profile]float64{Libtorrent: 3, Transmission: 2, Silent: 1, Refuse: 1},
		Reach: ReachConfig{RequireMSE: 0.5, UTPOnly: 0.3, IPv6: 0.3, IPv6Country: "DE"}}
}

// TestReachOptions: the shares are exact and drawn apart from everything else (the same
// seed without reach options gives the same peers), every peer is reachable exactly the
// way its options say and not the other way, and the truth names the options.
func TestReachOptions(t *testing.T) {
	cfg := reachConfig()
	cfg.Dir = t.TempDir()
	cfg.Tracker.Enabled = true
	s := startTestSwarm(t, cfg)
	plain := startTestSwarm(t, Config{Seed: cfg.Seed, Torrents: cfg.Torrents, Peers: cfg.Peers, Mix: cfg.Mix})

	var talking, nMSE, nUTP, n6, combos int
	for i, p := range s.Peers() {
		q := plain.Peers()[i]
		if p.Profile != q.Profile || p.Curve != q.Curve || p.Torrent.Index != q.Torrent.Index || (!p.IPv6 && p.Country != q.Country) {
			t.Errorf("peer %d differs from the same seed without reach options: %s %+v vs %s %+v", i, p.Profile, p.Curve, q.Profile, q.Curve)
		}
		if p.Profile.ReportsProgress() {
			talking++
		}
		nMSE += btoi(p.RequireMSE)
		nUTP += btoi(p.UTPOnly)
		n6 += btoi(p.IPv6)
		if btoi(p.RequireMSE)+btoi(p.UTPOnly)+btoi(p.IPv6) > 1 {
			combos++
		}
	}
	if want := int(math.Round(0.5 * float64(talking))); nMSE != want {
		t.Errorf("%d peers require MSE, want %d (half of %d talking)", nMSE, want, talking)
	}
	if want := int(math.Round(0.3 * float64(len(s.Peers())))); nUTP != want || n6 != want {
		t.Errorf("%d uTP-only and %d IPv6 peers, want %d each", nUTP, n6, want)
	}
	if combos == 0 {
		t.Error("no peer has two reach options: the shares do not combine")
	}

	truth := s.Truth(Window{To: time.Minute})
	for i, p := range s.Peers() {
		pt := truth.Peers[i]
		if pt.RequireMSE != p.RequireMSE || pt.UTPOnly != p.UTPOnly || pt.IPv6 != p.IPv6 {
			t.Errorf("peer %d: truth says mse=%v utp=%v ipv6=%v", i, pt.RequireMSE, pt.UTPOnly, pt.IPv6)
		}
		if p.IPv6 && (p.Addr.Addr() != netip.IPv6Loopback() || pt.Country != "DE" || pt.IP != "::1") {
			t.Errorf("IPv6 peer %d at %s in %s", i, p.Addr, pt.Country)
		}
		if !p.IPv6 && !p.Addr.Addr().Is4() {
			t.Errorf("IPv4 peer %d at %s", i, p.Addr)
		}
		if p.Profile == Refuse || p.Profile == Silent {
			continue
		}
		want := Progress(p, 0)
		// The way its options say: it reads.
		r, err := reachReader(t, p, p.UTPOnly, p.RequireMSE)
		if err != nil {
			t.Errorf("peer %d (mse=%v utp=%v ipv6=%v) unreachable its own way: %v", i, p.RequireMSE, p.UTPOnly, p.IPv6, err)
			continue
		}
		r.readUntil(func() bool { return r.ext != nil && r.matches(p, want) }, "progress of peer "+strconv.Itoa(i))
		if p.RequireMSE && r.ext["e"] != int64(1) {
			t.Errorf("peer %d requires MSE but its extension handshake has e=%v", i, r.ext["e"])
		}
		// The other way: refused.
		if p.UTPOnly {
			if _, err := reachReader(t, p, false, p.RequireMSE); err == nil {
				t.Errorf("uTP-only peer %d accepted a TCP connection", i)
			}
		}
		if p.RequireMSE {
			if _, err := reachReader(t, p, p.UTPOnly, false); err == nil {
				t.Errorf("peer %d requires MSE but answered a plaintext handshake", i)
			}
		}
	}
	if st := s.Stats(); st.Encrypted == 0 || st.PlaintextRefused == 0 || st.UTPSessions == 0 {
		t.Errorf("stats %+v: no MSE handshake, refused plaintext or uTP session counted", st)
	}

	// The tracker hands IPv6 peers out in peers6, and the torrents name its [::1] UDP URL.
	if len(s.AnnounceURLs()) != 3 || s.AnnounceURLs()[2] != s.Tracker().UDPAnnounceURL6() {
		t.Errorf("announce URLs %q lack the UDP tracker on [::1]", s.AnnounceURLs())
	}
	for _, tor := range s.Torrents() {
		var want6 int
		for _, p := range s.Peers() {
			if p.Torrent == tor && p.IPv6 {
				want6++
			}
		}
		if got := len(httpAnnounce6(t, s.Tracker().AnnounceURL(), tor.lookupHashes()[0])); got != want6 {
			t.Errorf("torrent %d: %d peers6 from the tracker, want %d", tor.Index, got, want6)
		}
	}
	// GeoIP places ::1 in the IPv6 country.
	city, _ := s.GeoIPPaths()
	db, err := geoip2.Open(city)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if rec, err := db.City(netip.IPv6Loopback()); err != nil || rec.Country.ISOCode != "DE" {
		t.Errorf("::1 is in %q (%v), want DE", rec.Country.ISOCode, err)
	}
}

// TestReachPEX: PEX names IPv6 peers in added6 and flags MSE (0x01) and uTP (0x04).
func TestReachPEX(t *testing.T) {
	cfg := reachConfig()
	cfg.Torrents = 1
	s := startTestSwarm(t, cfg)
	p := s.Peers()[0]
	var d struct {
		Added   string `bencode:"added"`
		AddedF  string `bencode:"added.f"`
		Added6  string `bencode:"added6"`
		Added6F string `bencode:"added6.f"`
	}
	if err := bencode.DecodeBytes(s.pexPayload(p), &d); err != nil {
		t.Fatal(err)
	}
	byAddr := map[netip.AddrPort]*Peer{}
	for _, o := range s.Peers() {
		byAddr[o.Addr] = o
	}
	check := func(compact, flags string, size int) {
		if len(compact) != size*len(flags) {
			t.Fatalf("%d bytes of addresses for %d flags", len(compact), len(flags))
		}
		for i := range len(flags) {
			b := compact[i*size : (i+1)*size]
			ip, _ := netip.AddrFromSlice([]byte(b[:size-2]))
			o := byAddr[netip.AddrPortFrom(ip, binary.BigEndian.Uint16([]byte(b[size-2:])))]
			if o == nil {
				t.Fatalf("PEX names %x, not a peer", b)
			}
			if flags[i] != o.pexFlags() || (o.RequireMSE != (flags[i]&1 != 0)) || (o.UTPOnly != (flags[i]&4 != 0)) {
				t.Errorf("peer %d (mse=%v utp=%v) has PEX flags %#x", o.Index, o.RequireMSE, o.UTPOnly, flags[i])
			}
		}
	}
	check(d.Added, d.AddedF, 6)
	check(d.Added6, d.Added6F, 18)
	if len(d.Added6F) == 0 || len(d.AddedF) == 0 {
		t.Errorf("PEX has %d IPv4 and %d IPv6 peers; want both", len(d.AddedF), len(d.Added6F))
	}
}

// TestReachDialOut: peers dial btda's address of their family, over their transport,
// starting with MSE when they require it.
func TestReachDialOut(t *testing.T) {
	type lis struct {
		v6, utp bool
		l       net.Listener
	}
	var ls []lis
	addrs := map[bool]string{}
	for _, v6 := range []bool{false, true} {
		host := "127.0.0.1"
		if v6 {
			host = "::1"
		}
		tl, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer tl.Close()
		port := tl.Addr().(*net.TCPAddr).Port
		us, err := utp.NewSocket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("uTP on the TCP listener's port: %v", err)
		}
		defer us.Close()
		addrs[v6] = tl.Addr().String()
		ls = append(ls, lis{v6, false, tl}, lis{v6, true, us})
	}
	cfg := reachConfig()
	cfg.Peers, cfg.Mix = 24, map[Profile]float64{Libtorrent: 1, Rtorrent: 1}
	cfg.DialOut, cfg.DialOut6, cfg.DialOutFraction = addrs[false], addrs[true], 1
	s := startTestSwarm(t, cfg)
	type conn struct {
		c       net.Conn
		v6, utp bool
	}
	conns := make(chan conn, 2*len(s.Peers()))
	for _, l := range ls {
		go func() {
			for {
				c, err := l.l.Accept()
				if err != nil {
					return
				}
				conns <- conn{c, l.v6, l.utp}
			}
		}()
	}
	byPort := map[uint16][]*Peer{} // ports may repeat across addresses
	for _, p := range s.Peers() {
		byPort[p.Addr.Port()] = append(byPort[p.Addr.Port()], p)
		if !p.DialOut {
			t.Fatalf("peer %d does not dial out", p.Index)
		}
	}
	seen := map[int]bool{}
	deadline := time.After(30 * time.Second)
	for len(seen) < len(s.Peers()) {
		var c conn
		select {
		case c = <-conns:
		case <-deadline:
			t.Fatalf("%d of %d peers dialled in", len(seen), len(s.Peers()))
		}
		_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
		head := make([]byte, 20)
		if _, err := io.ReadFull(c.c, head); err != nil {
			t.Fatal(err)
		}
		rw := struct {
			io.Reader
			io.Writer
		}{io.MultiReader(bytes.NewReader(head), c.c), c.c}
		sc := &mseConn{Conn: c.c, rw: rw} // plaintext: the first bytes put back
		// The whole 20-byte prefix: an MSE key starts with 0x13 once in 256 connections.
		encrypted := string(head) != "\x13"+protocolString
		if encrypted {
			keys := func(yield func([]byte) bool) {
				for _, tor := range s.Torrents() {
					if !yield(tor.WireHash[:]) {
						return
					}
				}
			}
			ret, method, err := mse.ReceiveHandshake(context.Background(), rw, keys, mse.DefaultCryptoSelector)
			if err != nil {
				t.Fatalf("MSE from a dialling peer: %v", err)
			}
			if method != mse.CryptoMethodRC4 {
				t.Errorf("dialling peer chose %d, want RC4 (it offers nothing else)", method)
			}
			sc = &mseConn{Conn: c.c, rw: ret}
		}
		hs := make([]byte, 68)
		if _, err := io.ReadFull(sc, hs); err != nil {
			t.Fatal(err)
		}
		copy(hs[48:], "-RD0001-abcdefghijkl")
		if _, err := sc.Write(hs); err != nil {
			t.Fatal(err)
		}
		var tor *Torrent
		for _, x := range s.Torrents() {
			if bytes.Equal(x.WireHash[:], hs[28:48]) {
				tor = x
			}
		}
		if tor == nil {
			t.Fatalf("handshake for unknown info hash %x", hs[28:48])
		}
		r := &testReader{t: t, conn: sc, npieces: tor.Pieces, have: make([]bool, tor.Pieces)}
		r.readUntil(func() bool { return r.ext != nil }, "extension handshake")
		port, _ := r.ext["p"].(int64)
		var p *Peer
		for _, q := range byPort[uint16(port)] {
			if q.Torrent == tor && q.IPv6 == c.v6 && q.UTPOnly == c.utp && q.RequireMSE == encrypted {
				p = q
			}
		}
		if p == nil {
			t.Fatalf("a peer telling p=%d dialled in with mse=%v utp=%v ipv6=%v: no such peer (candidates %d)",
				port, encrypted, c.utp, c.v6, len(byPort[uint16(port)]))
		}
		seen[p.Index] = true
		c.c.Close()
	}
}

func httpAnnounce6(t *testing.T, announce string, h [20]byte) [][]byte {
	t.Helper()
	body := httpAnnounceBody(t, announce, h)
	var d struct {
		Peers6 string `bencode:"peers6"`
	}
	if err := bencode.DecodeBytes(body, &d); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for b := []byte(d.Peers6); len(b) >= 18; b = b[18:] {
		out = append(out, b[:18])
	}
	return out
}

// TestReachSharedListeners: in shared mode the IPv6 and uTP-only peers keep sockets of their
// own, and the others are still routed by local address.
func TestReachSharedListeners(t *testing.T) {
	if ok, _ := loopbackOnly(); !ok {
		t.Skip("shared listeners need a loopback-only network namespace (run under unshare -n)")
	}
	cfg := reachConfig()
	cfg.ListenMode, cfg.SharedPorts = ListenShared, 3
	s := startTestSwarm(t, cfg)
	own := 0
	for _, p := range s.Peers() {
		if p.ownSocket() && p.Profile != Refuse {
			own++
		}
	}
	if s.ListenMode() != ListenShared || len(s.listeners) != 3+own {
		t.Fatalf("mode %s with %d listeners, want 3 shared and %d own", s.ListenMode(), len(s.listeners), own)
	}
	for i, p := range s.Peers() {
		if p.Profile == Refuse || p.Profile == Silent {
			continue
		}
		r, err := reachReader(t, p, p.UTPOnly, p.RequireMSE)
		if err != nil {
			t.Fatalf("peer %d (%s, mse=%v utp=%v ipv6=%v): %v", i, p.Addr, p.RequireMSE, p.UTPOnly, p.IPv6, err)
		}
		n := Progress(p, 0)
		r.readUntil(func() bool { return r.ext != nil && r.matches(p, n) }, "progress")
		if v, _ := r.ext["v"].(string); v != p.Behaviour().Version {
			t.Errorf("peer %d answered as %q: connection reached the wrong peer", i, v)
		}
		if p.UTPOnly {
			if c, err := net.DialTimeout("tcp", p.Addr.String(), 5*time.Second); err == nil {
				c.Close()
				t.Errorf("uTP-only peer %d took a TCP connection", i)
			}
		}
	}
}

func TestReachConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Reach: ReachConfig{RequireMSE: -0.1}}, "reach.require_mse"},
		{Config{Reach: ReachConfig{UTPOnly: 2}}, "reach.utp_only"},
		{Config{Reach: ReachConfig{IPv6: math.NaN()}}, "reach.ipv6"},
		{Config{Reach: ReachConfig{IPv6: 0.5, IPv6Country: "XX"}}, "reach.ipv6_country"},
		{Config{DialOut6: "127.0.0.1:6881"}, "dialout6"},
		{Config{DialOut6: "[2001:db8::1]:6881"}, "loopback"},
		{Config{DialOut6: "nope"}, "dialout6"},
		{Config{Peers: 10, PerAddressLimit: 3, Reach: ReachConfig{IPv6: 1}}, "per_address_limit"},
	} {
		_, err := Start(context.Background(), tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want it to mention %q", tt.cfg, err, tt.want)
		}
	}
}

// TestMSEConnWriteAfterFailure: after a failed write the RC4 stream is unusable; the next
// Write must fail, not panic (mse's writer drops its cipher after a short write). The
// session's PEX or metadata writer could otherwise crash the swarm after a reader hung up.
func TestMSEConnWriteAfterFailure(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	h := [20]byte{1, 2, 3}
	done := make(chan io.ReadWriter, 1)
	go func() {
		keys := func(yield func([]byte) bool) { yield(h[:]) }
		rw, _, err := mse.ReceiveHandshake(context.Background(), b, keys, func(mse.CryptoMethod) mse.CryptoMethod { return mse.CryptoMethodRC4 })
		if err != nil {
			t.Error(err)
		}
		done <- rw
	}()
	rw, _, err := mse.InitiateHandshake(a, h[:], nil, mse.CryptoMethodRC4)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	b.Close()
	c := &mseConn{Conn: a, rw: rw}
	for i := range 3 {
		if _, err := c.Write([]byte("after close")); err == nil {
			t.Errorf("write %d to a closed pipe succeeded", i)
		}
	}
}

func TestReachParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte("dialout6: \"[::1]:6881\"\ntracker: {enabled: true, ipv6: true}\n" +
		"reach: {require_mse: 0.3, utp_only: 0.1, ipv6: 0.2, ipv6_country: FR}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := ReachConfig{RequireMSE: 0.3, UTPOnly: 0.1, IPv6: 0.2, IPv6Country: "FR"}
	if c.Reach != want || c.DialOut6 != "[::1]:6881" || !c.Tracker.IPv6 {
		t.Errorf("parsed %+v, dialout6 %q, tracker %+v", c.Reach, c.DialOut6, c.Tracker)
	}
	if _, err := ParseConfig([]byte("reach: {require_tls: 1}\n")); err == nil {
		t.Error("an unknown reach key was accepted")
	}
}

// FuzzPeerSessionMSE: whatever a reader sends a peer that requires MSE (a plaintext
// handshake, a broken key exchange, garbage), the session ends once the input closes.
func FuzzPeerSessionMSE(f *testing.F) {
	tor, err := GenerateTorrent(rand.New(rand.NewPCG(1, 1)), 0, V1, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("\x13BitTorrent protocol\x00\x00\x00\x00\x00\x10\x00\x04"))
	f.Add(bytes.Repeat([]byte{0xab}, 96))
	f.Add(bytes.Repeat([]byte{0x01}, 700))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Swarm{cfg: Config{HandshakeTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}.withDefaults(),
			log: slog.New(slog.DiscardHandler), clock: NewManualClock(t0), start: t0, byTor: [][]*Peer{nil}}
		p := &Peer{Torrent: tor, Profile: Libtorrent, behaviour: Libtorrent.Behaviour(), permA: 1, RequireMSE: true,
			Curve: Curve{Pieces: tor.Pieces, Start: 3, Interval: time.Second}}
		s.byTor[0] = []*Peer{p}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serve(context.Background(), p, server, false)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_, _ = client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("MSE peer session did not end after its input closed")
		}
		if s.Stats().Handshakes != 0 {
			t.Error("a BitTorrent handshake completed without MSE")
		}
	})
}
