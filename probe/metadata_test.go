package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// infoOfSize builds a v1 (or, with v2, a v2-only) info dictionary of exactly size bytes,
// padded with an unknown key that parsers ignore.
func infoOfSize(t *testing.T, size int, v2 bool) []byte {
	t.Helper()
	var head string
	if v2 {
		head = "d9:file treed4:datad0:d6:lengthi100e11:pieces root32:" + strings.Repeat("r", 32) +
			"eee12:meta versioni2e4:name4:data12:piece lengthi16384e"
	} else {
		head = "d6:lengthi100e4:name4:data12:piece lengthi16384e6:pieces20:" + strings.Repeat("p", 20)
	}
	const key = "5:x pad"
	// size = head + key + digits(pad) + ':' + pad + 'e'; try each digit count.
	for digits := 1; digits <= 7; digits++ {
		pad := size - len(head) - len(key) - digits - 2
		if pad >= 0 && len(strconv.Itoa(pad)) == digits {
			return []byte(fmt.Sprintf("%s%s%d:%s", head, key, pad, strings.Repeat("z", pad)) + "e")
		}
	}
	t.Fatalf("cannot build an info dict of %d bytes", size)
	return nil
}

func magnetFor(info []byte, v2 bool) *metainfo.Magnet {
	if v2 {
		return &metainfo.Magnet{InfoHashV2: sha256.Sum256(info)}
	}
	return &metainfo.Magnet{InfoHashV1: sha1.Sum(info)}
}

// mdMode is how a fake metadata peer behaves.
type mdMode int

const (
	mdHonest      mdMode = iota
	mdReject             // rejects every request
	mdHugeSize           // claims a 1 GiB metadata_size
	mdCorrupt            // flips a byte of the last piece (hash mismatch)
	mdShortPiece         // sends the first piece one byte short
	mdNoMetadata         // ut_metadata but no metadata_size
	mdNoExtension        // no BEP 10 bit in the handshake
	mdWrongHash          // answers for another torrent
	mdSilent             // handshakes, then says nothing
	mdOutOfOrder         // answers a window of requests in reverse order
	mdBigMessage         // sends a 200 KiB extended message before its extension handshake
)

// mdPeer is a fake peer serving (or failing to serve) info over ut_metadata on 127.0.0.1.
type mdPeer struct {
	addr  netip.AddrPort
	conns atomic.Int32 // connections accepted
}

func startMDPeer(t *testing.T, info []byte, hash metainfo.Hash, mode mdMode) *mdPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &mdPeer{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serveMD(c, info, hash, mode)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); cancel(); wg.Wait() })
	return p
}

const fakeMDID = 3 // the fake peer's ut_metadata id

func serveMD(c net.Conn, info []byte, hash metainfo.Hash, mode mdMode) {
	br := bufio.NewReader(c)
	if _, err := wire.ReadHandshake(br, nil); err != nil {
		return
	}
	r := wire.Reserved{0, 0, 0, 0, 0, 0x10, 0, 0}
	if mode == mdNoExtension {
		r = wire.Reserved{}
	}
	if mode == mdWrongHash {
		hash = metainfo.Hash{0xEE}
	}
	var w []byte
	w = wire.AppendHandshake(w, wire.Handshake{Reserved: r, InfoHash: hash, PeerID: [20]byte{'-', 'F', 'K'}})
	// Messages FetchMetadata must skip: a bitfield of a size it cannot check, a have.
	w = wire.AppendMessage(w, wire.Message{Type: wire.Bitfield, Payload: []byte{0xFF, 0x80}})
	w = wire.AppendMessage(w, wire.Message{Type: wire.Have, Index: 3})
	w = wire.AppendMessage(w, wire.Message{Type: wire.KeepAlive})
	if mode == mdBigMessage {
		w = wire.AppendMessage(w, wire.Message{Type: wire.Extended, ExtendedID: 7, Payload: make([]byte, 200<<10)})
	}
	size := len(info)
	switch mode {
	case mdHugeSize:
		size = 1 << 30
	case mdNoMetadata:
		size = -1
	}
	if mode != mdNoExtension && mode != mdSilent {
		hs, _ := wire.AppendExtHandshake(nil, wire.ExtHandshake{M: map[string]int{wire.ExtMetadata: fakeMDID, wire.ExtPEX: 7},
			V: "fake 1.0", P: -1, Reqq: -1, MetadataSize: size, CompleteAgo: -1})
		w = wire.AppendMessage(w, wire.Message{Type: wire.Extended, ExtendedID: 0, Payload: hs})
	}
	if _, err := c.Write(w); err != nil {
		return
	}
	dec := wire.NewDecoder(br, 16)
	var theirID uint8
	var held []int // mdOutOfOrder: requests not yet answered
	var m wire.Message
	for {
		if err := dec.Next(&m); err != nil {
			return
		}
		if m.Type != wire.Extended {
			continue
		}
		if m.ExtendedID == 0 {
			h, err := wire.ParseExtHandshake(m.Payload)
			if err != nil {
				return
			}
			theirID = uint8(h.M[wire.ExtMetadata])
			continue
		}
		if m.ExtendedID != fakeMDID || theirID == 0 {
			continue
		}
		req, err := wire.ParseMetadataMsg(m.Payload)
		if err != nil || req.Type != wire.MetadataRequest {
			continue
		}
		pieces := (len(info) + wire.MetadataBlock - 1) / wire.MetadataBlock
		answer := func(i int) []byte {
			if mode == mdReject || i >= pieces {
				return wire.AppendMessage(nil, wire.Message{Type: wire.Extended, ExtendedID: theirID,
					Payload: wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataReject, Piece: i})})
			}
			data := bytes.Clone(info[i*wire.MetadataBlock : min(len(info), (i+1)*wire.MetadataBlock)])
			switch {
			case mode == mdCorrupt && i == pieces-1:
				data[len(data)-1] ^= 0xFF
			case mode == mdShortPiece && i == 0:
				data = data[:len(data)-1]
			}
			return wire.AppendMessage(nil, wire.Message{Type: wire.Extended, ExtendedID: theirID,
				Payload: wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataData, Piece: i, TotalSize: len(info), Data: data})})
		}
		if mode == mdOutOfOrder {
			held = append(held, req.Piece)
			if len(held) < min(2, pieces) && req.Piece != pieces-1 {
				continue
			}
			var out []byte
			for j := len(held) - 1; j >= 0; j-- {
				out = append(out, answer(held[j])...)
			}
			held = held[:0]
			if _, err := c.Write(out); err != nil {
				return
			}
			continue
		}
		if _, err := c.Write(answer(req.Piece)); err != nil {
			return
		}
	}
}

// logBuf collects log lines, so tests can see why peers were dropped.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func mdTestConfig(lb *logBuf) MetadataConfig {
	cfg := MetadataConfig{Version: "test", ListenPort: 6881, DialTimeout: 2 * time.Second,
		HandshakeTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second, PeerTimeout: 8 * time.Second}
	if lb != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func TestFetchMetadataSizes(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name string
		size int
		v2   bool
	}{
		{"small", 200, false},
		{"exactly 16 KiB", 16384, false},
		{"16 KiB + 1", 16385, false},
		{"exactly 32 KiB", 32768, false},
		{"3 pieces and a bit", 3*16384 + 7, false},
		{"v2 small", 300, true},
		{"v2 exactly 16 KiB", 16384, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := infoOfSize(t, tc.size, tc.v2)
			m := magnetFor(info, tc.v2)
			a := startMDPeer(t, info, m.Hash(), mdHonest)
			b := startMDPeer(t, info, m.Hash(), mdOutOfOrder)
			c := startMDPeer(t, info, m.Hash(), mdBigMessage) // within the default budget: skipped
			for _, peers := range [][]netip.AddrPort{{a.addr, b.addr}, {b.addr}, {c.addr}} {
				tor, err := FetchMetadata(context.Background(), mdTestConfig(nil), m, peers)
				if err != nil {
					t.Fatalf("peers %v: %v", peers, err)
				}
				if !bytes.Equal(tor.Info, info) {
					t.Fatalf("got %d info bytes, want the %d served", len(tor.Info), len(info))
				}
				if tor.Hash() != m.Hash() || tor.Name != "data" {
					t.Errorf("torrent hash %s name %q, want %s data", tor.Hash(), tor.Name, m.Hash())
				}
			}
		})
	}
}

// TestFetchMetadataBadThenGood: the bad peer is asked first (Parallel 1) and dropped for
// the named reason; the honest peer after it delivers.
func TestFetchMetadataBadThenGood(t *testing.T) {
	checkGoroutines(t)
	info := infoOfSize(t, 40000, false)
	m := magnetFor(info, false)
	for _, tc := range []struct {
		mode   mdMode
		reason string
		budget int64 // 0: the default
	}{
		{mdReject, MetadataReasonRejected, 0},
		{mdHugeSize, MetadataReasonTooLarge, 0},
		{mdCorrupt, MetadataReasonHashMismatch, 0},
		{mdShortPiece, MetadataReasonBadPiece, 0},
		{mdNoMetadata, MetadataReasonNoUTMetadata, 0},
		{mdNoExtension, MetadataReasonNoExtensions, 0},
		{mdWrongHash, MetadataReasonInfoHash, 0},
		// Over the shared buffer budget: our limit, so a local error; the honest peer's
		// 16 KiB pieces need no budget.
		{mdBigMessage, MetadataReasonLocal, 64 << 10},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			bad := startMDPeer(t, info, m.Hash(), tc.mode)
			good := startMDPeer(t, info, m.Hash(), mdHonest)
			var lb logBuf
			cfg := mdTestConfig(&lb)
			cfg.Parallel = 1
			if tc.budget > 0 {
				cfg.Budget = wire.NewBudget(tc.budget)
			}
			tor, err := FetchMetadata(context.Background(), cfg, m, []netip.AddrPort{bad.addr, good.addr})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tor.Info, info) {
				t.Fatal("wrong info bytes")
			}
			if bad.conns.Load() != 1 || good.conns.Load() != 1 {
				t.Errorf("connections: bad %d, good %d; want 1 each", bad.conns.Load(), good.conns.Load())
			}
			if !strings.Contains(lb.String(), "reason="+tc.reason) {
				t.Errorf("log lacks reason=%s:\n%s", tc.reason, lb.String())
			}
			if cfg.Budget.Used() != 0 {
				t.Errorf("budget %d bytes still in use", cfg.Budget.Used())
			}
		})
	}
}

// TestFetchMetadataParallel: honest and corrupt peers at once; whatever order they finish
// in, the verified copy wins.
func TestFetchMetadataParallel(t *testing.T) {
	checkGoroutines(t)
	info := infoOfSize(t, 5*16384, false)
	m := magnetFor(info, false)
	var peers []netip.AddrPort
	for _, mode := range []mdMode{mdCorrupt, mdCorrupt, mdReject, mdHonest, mdCorrupt} {
		peers = append(peers, startMDPeer(t, info, m.Hash(), mode).addr)
	}
	for range 5 {
		tor, err := FetchMetadata(context.Background(), mdTestConfig(nil), m, peers)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tor.Info, info) {
			t.Fatal("wrong info bytes")
		}
	}
}

func TestFetchMetadataAllFail(t *testing.T) {
	checkGoroutines(t)
	info := infoOfSize(t, 20000, false)
	m := magnetFor(info, false)
	modes := []mdMode{mdReject, mdHugeSize, mdCorrupt, mdShortPiece, mdNoMetadata, mdNoExtension, mdWrongHash}
	want := map[netip.AddrPort]string{}
	var peers []netip.AddrPort
	for _, mode := range modes {
		p := startMDPeer(t, info, m.Hash(), mode)
		peers = append(peers, p.addr)
	}
	for i, r := range []string{MetadataReasonRejected, MetadataReasonTooLarge, MetadataReasonHashMismatch,
		MetadataReasonBadPiece, MetadataReasonNoUTMetadata, MetadataReasonNoExtensions, MetadataReasonInfoHash} {
		want[peers[i]] = r
	}
	// A closed port, a duplicate and a port-0 address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	want[closed] = MetadataReasonDial
	zero := netip.MustParseAddrPort("127.0.0.1:0")
	want[zero] = MetadataReasonBadAddress
	peers = append(peers, closed, peers[0], zero)

	_, err = FetchMetadata(context.Background(), mdTestConfig(nil), m, peers)
	var me *MetadataError
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T), want a *MetadataError", err, err)
	}
	if len(me.Peers) != len(want) {
		t.Errorf("%d peer errors, want %d (duplicates merged)", len(me.Peers), len(want))
	}
	for _, pe := range me.Peers {
		if pe.Reason != want[pe.Addr] {
			t.Errorf("%s: reason %s (%v), want %s", pe.Addr, pe.Reason, pe.Err, want[pe.Addr])
		}
		if !strings.Contains(err.Error(), pe.Addr.String()+": "+pe.Reason) {
			t.Errorf("error text lacks %s: %s", pe.Addr, pe.Reason)
		}
	}
}

// TestFetchMetadataMagnetPeers: the magnet's x.pe peers are asked after the given ones.
func TestFetchMetadataMagnetPeers(t *testing.T) {
	info := infoOfSize(t, 500, false)
	m := magnetFor(info, false)
	bad := startMDPeer(t, info, m.Hash(), mdReject)
	good := startMDPeer(t, info, m.Hash(), mdHonest)
	m.Peers = []netip.AddrPort{good.addr, bad.addr}
	cfg := mdTestConfig(nil)
	cfg.Parallel = 1
	tor, err := FetchMetadata(context.Background(), cfg, m, []netip.AddrPort{bad.addr})
	if err != nil || !bytes.Equal(tor.Info, info) {
		t.Fatalf("got %v", err)
	}
	if bad.conns.Load() != 1 || good.conns.Load() != 1 {
		t.Errorf("connections: bad %d (asked once, first), good %d", bad.conns.Load(), good.conns.Load())
	}
}

func TestFetchMetadataBadInput(t *testing.T) {
	if _, err := FetchMetadata(context.Background(), MetadataConfig{}, nil, nil); err == nil {
		t.Error("nil magnet: no error")
	}
	if _, err := FetchMetadata(context.Background(), MetadataConfig{}, &metainfo.Magnet{}, nil); err == nil {
		t.Error("magnet without hash: no error")
	}
	_, err := FetchMetadata(context.Background(), MetadataConfig{}, &metainfo.Magnet{InfoHashV1: metainfo.Hash{1}}, nil)
	var me *MetadataError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "no peers") {
		t.Errorf("no peers: %v", err)
	}
}

// TestFetchMetadataCancel: silent peers hold the transfer; cancelling the context ends it
// at once, with every goroutine gone and the peers marked canceled or not tried.
func TestFetchMetadataCancel(t *testing.T) {
	checkGoroutines(t)
	info := infoOfSize(t, 1000, false)
	m := magnetFor(info, false)
	var (
		peers []netip.AddrPort
		fakes []*mdPeer
	)
	for range 6 {
		f := startMDPeer(t, info, m.Hash(), mdSilent)
		fakes = append(fakes, f)
		peers = append(peers, f.addr)
	}
	cfg := mdTestConfig(nil)
	cfg.HandshakeTimeout, cfg.PeerTimeout = time.Minute, time.Minute
	cfg.Parallel = 3
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := FetchMetadata(ctx, cfg, m, peers)
		done <- err
	}()
	// Wait until the first three peers are connected, then cancel.
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range fakes[:3] {
		for f.conns.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	var me *MetadataError
	if !errors.As(err, &me) {
		t.Fatalf("error %T, want a *MetadataError inside", err)
	}
	for _, pe := range me.Peers {
		if pe.Reason != MetadataReasonCanceled && pe.Reason != MetadataReasonNotTried {
			t.Errorf("%s: reason %s, want canceled or not_tried", pe.Addr, pe.Reason)
		}
	}
}

// FuzzFetchMetadataPeer feeds arbitrary bytes as a peer's side of a metadata transfer
// (after a valid BEP 3 handshake): FetchMetadata must return a verified torrent or a
// *MetadataError, never panic or hang.
func FuzzFetchMetadataPeer(f *testing.F) {
	info := []byte("d6:lengthi100e4:name4:data12:piece lengthi16384e6:pieces20:ppppppppppppppppppppe")
	m := &metainfo.Magnet{InfoHashV1: sha1.Sum(info)}
	ext := func(id uint8, payload []byte) []byte {
		return wire.AppendMessage(nil, wire.Message{Type: wire.Extended, ExtendedID: id, Payload: payload})
	}
	hs := func(size int) []byte {
		b, _ := wire.AppendExtHandshake(nil, wire.ExtHandshake{M: map[string]int{wire.ExtMetadata: 3},
			P: -1, Reqq: -1, MetadataSize: size, CompleteAgo: -1})
		return ext(0, b)
	}
	data := func(piece, total int, d []byte) []byte {
		return ext(wire.OurMetadataID, wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataData, Piece: piece, TotalSize: total, Data: d}))
	}
	good := append(hs(len(info)), data(0, len(info), info)...)
	f.Add(good)
	f.Add(append(wire.AppendMessage(nil, wire.Message{Type: wire.Bitfield, Payload: []byte{1, 2, 3}}), good...))
	f.Add(append(hs(len(info)), ext(wire.OurMetadataID, wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataReject}))...))
	f.Add(hs(1 << 30))
	f.Add(append(hs(len(info)), data(0, len(info), info[:50])...))
	f.Add(append(hs(len(info)), data(1, len(info), info)...))
	f.Add(append(hs(len(info)), data(0, len(info)+1, info)...))
	f.Add(append(hs(len(info)), ext(wire.OurMetadataID, []byte("d8:msg_typei0e5:piecei0ee"))...))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 20})
	f.Add(append(ext(7, make([]byte, 40<<10)), good...))
	f.Add([]byte{0, 0, 0, 1, 20})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		cfg := MetadataConfig{IdleTimeout: time.Second, HandshakeTimeout: time.Second, PeerTimeout: 5 * time.Second,
			Budget: wire.NewBudget(32 << 10),
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				ours, theirs := net.Pipe()
				go func() {
					defer theirs.Close()
					go func() { _, _ = io.Copy(io.Discard, theirs) }()
					out := wire.AppendHandshake(nil, wire.Handshake{Reserved: wire.Reserved{5: 0x10}, InfoHash: m.Hash()})
					_ = theirs.SetWriteDeadline(time.Now().Add(5 * time.Second))
					_, _ = theirs.Write(append(out, stream...))
				}()
				return ours, nil
			}}
		tor, err := FetchMetadata(context.Background(), cfg, m, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")})
		if u := cfg.Budget.Used(); u != 0 {
			t.Fatalf("%d budget bytes held after the fetch", u)
		}
		if err == nil {
			if !bytes.Equal(tor.Info, info) {
				t.Fatalf("accepted %d info bytes that are not the magnet's", len(tor.Info))
			}
			return
		}
		var me *MetadataError
		if !errors.As(err, &me) || len(me.Peers) != 1 {
			t.Fatalf("error %v (%T), want a *MetadataError for one peer", err, err)
		}
	})
}
