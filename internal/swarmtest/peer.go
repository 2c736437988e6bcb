package swarmtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/zeebo/bencode"
)

// Peer is one synthetic peer. Its fields are fixed once the swarm starts.
type Peer struct {
	Index     int
	Torrent   *Torrent
	Profile   Profile
	Addr      netip.AddrPort // listen address; for Refuse, an address nobody listens on
	Country   string
	Continent string
	City      string
	ASN       uint32
	ASOrg     string
	Curve     Curve
	// DialOut peers also connect to Config.DialOut, like a leecher that
	// found btda through a tracker.
	DialOut bool
	// LazyHidden is how many pieces a lazy seed leaves out of its bitfield.
	LazyHidden int
	// DialFrom, if valid, is the address a DialOut peer's connections leave from instead
	// of its listen address (a client behind a second interface, like ctorrent here); such
	// a peer tells no `p` on them, so the reader cannot link the two addresses by port.
	DialFrom netip.Addr
	// FixedPeerID makes the peer use one peer_id for all its connections, as Transmission,
	// rtorrent, aria2 and ctorrent do (libtorrent draws one per connection, the default).
	FixedPeerID bool
	// Reach options (ReachConfig): RequireMSE peers accept and open only MSE-encrypted
	// connections (RC4); UTPOnly peers listen and dial over uTP only; IPv6 peers live on
	// [::1] (Addr) in the country Config.Reach.IPv6Country and dial Config.DialOut6.
	RequireMSE, UTPOnly, IPv6 bool
	// Unlisted peers are given to neither the tracker, the DHT nor other peers' PEX: the
	// reader learns of them only from their own connections (a leecher behind a NAT).
	Unlisted bool
	// HidePortFor: a DialOut peer's connections made within this long of its first contact
	// tell no `p` (aria2 in a DHT swarm: its first sessions closed before its extension
	// handshake told the port).
	HidePortFor time.Duration

	behaviour Behaviour
	utp       *utp.Socket // a UTPOnly peer's socket: its listener and dialer
	permA     int         // pieces are acquired in the order (permA·i + permB) mod Pieces
	permB     int
	// contact is 1 + the swarm time (ns) of the peer's first completed handshake, 0
	// before; it starts an Anchored curve's clock.
	contact atomic.Int64
}

// FirstContact returns the swarm time of the peer's first completed handshake.
func (p *Peer) FirstContact() (time.Duration, bool) {
	c := p.contact.Load()
	return time.Duration(c - 1), c != 0
}

// touch records a completed handshake at swarm time t (only the first one counts).
func (p *Peer) touch(t time.Duration) { p.contact.CompareAndSwap(0, int64(t)+1) }

// curveTime maps swarm time t to the curve's own clock: t itself, or for an Anchored
// curve the time since first contact (negative before it, where the curve is at Start).
func (p *Peer) curveTime(t time.Duration) time.Duration {
	if !p.Curve.Anchored {
		return t
	}
	a, ok := p.FirstContact()
	if !ok {
		return -1
	}
	return t - a
}

// left reports whether the peer has left the swarm by swarm time t (Curve.LeaveAt).
func (p *Peer) left(t time.Duration) bool {
	if p.Curve.LeaveAt <= 0 {
		return false
	}
	if _, ok := p.FirstContact(); !ok && p.Curve.Anchored {
		return false // its clock has not started
	}
	return p.curveTime(t) >= p.Curve.LeaveAt
}

// leaveTime is the swarm time the peer leaves (ok false: never, or not known yet).
func (p *Peer) leaveTime() (time.Duration, bool) {
	if p.Curve.LeaveAt <= 0 {
		return 0, false
	}
	if !p.Curve.Anchored {
		return p.Curve.LeaveAt, true
	}
	a, ok := p.FirstContact()
	return a + p.Curve.LeaveAt, ok
}

// Progress is the single source of truth: the number of pieces peer p has at
// swarm time t (t measured from the swarm's start). Peers report exactly
// this on the wire; the truth file is computed from it.
func Progress(p *Peer, t time.Duration) int { return p.Curve.At(p.curveTime(t)) }

// next is Curve.Next in swarm time.
func (p *Peer) next(t time.Duration) (time.Duration, bool) {
	ct := p.curveTime(t)
	if p.Curve.Anchored {
		if _, ok := p.FirstContact(); !ok {
			return 0, false // the clock has not started
		}
	}
	n, ok := p.Curve.Next(ct)
	return n + (t - ct), ok
}

// Piece returns the index of the i-th piece the peer acquires (0 ≤ i <
// Pieces). The peer's pieces at time t are Piece(0..Progress(t)-1).
func (p *Peer) Piece(i int) int {
	n := p.Torrent.Pieces
	return int((int64(p.permA)*int64(i) + int64(p.permB)) % int64(n))
}

// Behaviour returns the peer's wire behaviour (its profile's, with the
// swarm's idle-timeout override applied).
func (p *Peer) Behaviour() Behaviour { return p.behaviour }

// BytesPerSecond is the peer's download rate while progressing.
func (p *Peer) BytesPerSecond() float64 {
	return p.Curve.PiecesPerSecond() * float64(p.Torrent.PieceLength)
}

// Local extension ids (what readers must use when they send to us).
const (
	extPEX      = 1
	extMetadata = 2
	extDontHave = 7
)

type extHandshake struct {
	M            map[string]int `bencode:"m"`
	P            int            `bencode:"p"`
	MetadataSize int            `bencode:"metadata_size"`
}

type metadataMsg struct {
	MsgType int `bencode:"msg_type"`
	Piece   int `bencode:"piece"`
}

// session is one connection of one peer.
type session struct {
	s        *Swarm
	p        *Peer
	conn     net.Conn
	outgoing bool

	wmu sync.Mutex // serialises writes

	mu          sync.Mutex
	remotePEX   int
	remoteMeta  int
	remoteDont  int
	pexSent     bool
	remoteFast  bool
	remoteExtOK bool
	// extReady is closed once the reader's extension handshake is known: a
	// regression that happened before it is sent then (lt_donthave needs
	// the reader's message id).
	extReady     chan struct{}
	extReadyOnce sync.Once
}

func (ss *session) write(b []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.WriteTimeout))
	_, err := ss.conn.Write(b)
	return err
}

// serve runs the profile's behaviour on conn until the peer, the reader or
// the swarm ends it. It always closes conn.
func (s *Swarm) serve(ctx context.Context, p *Peer, conn net.Conn, outgoing bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	s.stats.sessions.Add(1)
	if p.UTPOnly {
		s.stats.utpSessions.Add(1)
	}
	ss := &session{s: s, p: p, conn: conn, outgoing: outgoing, extReady: make(chan struct{})}
	b := p.behaviour
	if p.left(s.Elapsed()) {
		return // gone: the connection closes at once
	}
	switch p.Profile {
	case AcceptClose, Refuse:
		return
	case Silent:
		ss.drain()
		return
	case Garbage:
		// 96 random bytes look like an MSE Diffie-Hellman key (BEP 8).
		junk := make([]byte, 96)
		_, _ = rand.Read(junk)
		if ss.write(junk) == nil {
			ss.drain()
		}
		return
	}
	if !b.Talks {
		return
	}
	if p.RequireMSE {
		c, err := ss.encrypt(ctx)
		if err != nil {
			if errors.Is(err, errPlaintextRefused) {
				s.stats.plaintextRefused.Add(1)
			} else {
				s.stats.badHandshakes.Add(1)
			}
			s.log.Debug("MSE handshake failed", "peer", p.Index, "err", err)
			return
		}
		s.stats.encrypted.Add(1)
		ss.conn = c
	}
	if err := ss.handshake(); err != nil {
		s.stats.badHandshakes.Add(1)
		s.log.Debug("handshake failed", "peer", p.Index, "err", err)
		return
	}
	s.stats.handshakes.Add(1)
	t0 := s.Elapsed()
	p.touch(t0)
	n := Progress(p, t0)
	if err := ss.write(ss.initialMessages(n)); err != nil {
		return
	}
	if ss.remoteExtOK {
		if err := ss.write(appendExtended(nil, 0, ss.extHandshake())); err != nil {
			return
		}
	}
	go func() {
		defer cancel()
		ss.readLoop()
	}()
	ss.progressLoop(ctx, t0, n)
}

// drain reads and discards until the idle timeout, an error or the swarm's
// end; it is how silent and garbage peers keep a connection open.
func (ss *session) drain() {
	buf := make([]byte, 512)
	for {
		_ = ss.conn.SetReadDeadline(time.Now().Add(ss.p.behaviour.IdleTimeout))
		if _, err := ss.conn.Read(buf); err != nil {
			return
		}
	}
}

func (ss *session) handshake() error {
	p := ss.p
	var mine handshake
	b := p.behaviour
	if b.Extensions {
		mine.reserved[reservedExt] |= maskExt
	}
	if b.Fast {
		mine.reserved[reservedFast] |= maskFast
	}
	if b.DHT {
		mine.reserved[reservedFast] |= maskDHT
	}
	copy(mine.peerID[:], b.PeerPrefix)
	if p.FixedPeerID {
		copy(mine.peerID[len(b.PeerPrefix):], fmt.Sprintf("%012d", p.Index))
	} else {
		_, _ = rand.Read(mine.peerID[len(b.PeerPrefix):]) // a fresh id per connection, as libtorrent does
	}
	_ = ss.conn.SetDeadline(time.Now().Add(ss.s.cfg.HandshakeTimeout))
	defer func() { _ = ss.conn.SetDeadline(time.Time{}) }() // a dead conn fails on its next read anyway
	var theirs handshake
	var err error
	if ss.outgoing {
		mine.infoHash = p.Torrent.WireHash
		if _, err := ss.conn.Write(mine.marshal()); err != nil {
			return fmt.Errorf("write handshake: %w", err)
		}
		if theirs, err = readHandshake(ss.conn); err != nil {
			return err
		}
		if theirs.infoHash != mine.infoHash {
			return fmt.Errorf("remote answered with info hash %x, want %x", theirs.infoHash, mine.infoHash)
		}
	} else {
		if theirs, err = readHandshake(ss.conn); err != nil {
			return err
		}
		if !p.Torrent.matches(theirs.infoHash) {
			return fmt.Errorf("unknown info hash %x", theirs.infoHash)
		}
		mine.infoHash = theirs.infoHash
		if _, err := ss.conn.Write(mine.marshal()); err != nil {
			return fmt.Errorf("write handshake: %w", err)
		}
	}
	ss.remoteFast = theirs.fast() && b.Fast
	ss.remoteExtOK = theirs.extensions() && b.Extensions
	return nil
}

// bitfield encodes the first n pieces of the acquisition order, minus the
// last `hide` of them.
func (p *Peer) bitfield(n, hide int) []byte {
	bf := make([]byte, (p.Torrent.Pieces+7)/8)
	for i := 0; i < n-hide; i++ {
		pc := p.Piece(i)
		bf[pc/8] |= 0x80 >> (pc % 8)
	}
	return bf
}

// initialMessages is what the peer sends right after the handshake for n
// pieces (REFERENCE.md §3 "first progress message").
func (ss *session) initialMessages(n int) []byte {
	p := ss.p
	b := p.behaviour
	total := p.Torrent.Pieces
	var out []byte
	switch {
	case b.Super:
		// libtorrent super-seeding: have_none (if Fast), then a few haves.
		if ss.remoteFast {
			out = appendMessage(out, msgHaveNone, nil)
		}
		for i := 0; i < n; i++ {
			out = appendHave(out, p.Piece(i))
		}
	case b.Lazy && n > 0:
		hide := min(p.LazyHidden, n)
		out = appendMessage(out, msgBitfield, p.bitfield(n, hide))
		for i := n - hide; i < n; i++ {
			out = appendHave(out, p.Piece(i))
		}
	case ss.remoteFast && n == total:
		out = appendMessage(out, msgHaveAll, nil)
	case ss.remoteFast && n == 0:
		out = appendMessage(out, msgHaveNone, nil)
	case n == 0:
		// No Fast and nothing to show: real clients send nothing.
	default:
		out = appendMessage(out, msgBitfield, p.bitfield(n, 0))
	}
	return out
}

func (ss *session) extHandshake() []byte {
	p := ss.p
	b := p.behaviour
	m := map[string]int{}
	d := map[string]any{"v": b.Version, "m": m}
	if b.PEX {
		m["ut_pex"] = extPEX
	}
	if b.MetaSize {
		m["ut_metadata"] = extMetadata
		d["metadata_size"] = len(p.Torrent.Info)
	}
	if b.DontHave {
		m["lt_donthave"] = extDontHave
	}
	// Dial-out peers always tell their listen port, so the reader can key
	// the incoming connection by (IP, listen port).
	// A peer connecting from a second address tells no port (ctorrent has no BEP 10).
	hide := false
	if a, ok := p.FirstContact(); ok && ss.outgoing && p.HidePortFor > 0 {
		hide = ss.s.Elapsed()-a < p.HidePortFor
	}
	if !p.DialFrom.IsValid() && !hide && (b.SendPort || ss.outgoing) {
		d["p"] = int(p.Addr.Port())
	}
	if b.ReqQ {
		d["reqq"] = 250
	}
	if b.UploadOnly >= 0 {
		d["upload_only"] = b.UploadOnly
	}
	if p.RequireMSE {
		d["e"] = 1 // BEP 10: prefers encryption
	}
	out, _ := bencode.EncodeBytes(d) // only ints, strings and maps: cannot fail
	return out
}

// progressLoop sends a have (or lt_donthave) every time the curve moves, and
// keep-alives, until the connection ends.
func (ss *session) progressLoop(ctx context.Context, t time.Duration, cur int) {
	p := ss.p
	ka := time.NewTicker(p.behaviour.KeepAlive)
	defer ka.Stop()
	extReady := ss.extReady
	if !ss.remoteExtOK {
		extReady = nil // no extension handshake will come
	}
	var leave <-chan struct{}
	if at, ok := p.leaveTime(); ok {
		var stopLeave func()
		leave, stopLeave = ss.s.clock.At(ss.s.start.Add(at))
		defer stopLeave()
	}
	for {
		var fire <-chan struct{}
		stop := func() {}
		if next, ok := p.next(t); ok {
			fire, stop = ss.s.clock.At(ss.s.start.Add(next))
		}
		select {
		case <-ctx.Done():
			stop()
			return
		case <-leave:
			stop()
			return // the peer quit
		case <-ka.C:
			stop()
			if ss.write([]byte{0, 0, 0, 0}) != nil {
				return
			}
			continue
		case <-extReady:
			stop()
			extReady = nil // fires once; then catch up on any pending regression
		case <-fire:
		}
		t = ss.s.Elapsed()
		n := Progress(p, t)
		var out []byte
		switch {
		case n > cur:
			for i := cur; i < n; i++ {
				out = appendHave(out, p.Piece(i))
			}
		case n < cur:
			ss.mu.Lock()
			id := ss.remoteDont
			ss.mu.Unlock()
			// Like libtorrent, lt_donthave goes only to readers that
			// announced it; others keep a stale view (documented truth).
			// Before the reader's extension handshake arrives we cannot
			// tell yet: keep cur (what the reader was told) until then.
			if !p.behaviour.DontHave {
				break
			}
			if id == 0 {
				if extReady != nil {
					continue
				}
				break
			}
			for i := n; i < cur; i++ {
				out = appendDontHave(out, byte(id), p.Piece(i))
			}
		}
		if len(out) > 0 {
			if ss.write(out) != nil {
				return
			}
			ss.s.stats.updates.Add(int64(abs(n - cur)))
		}
		cur = n
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

var errBadMessage = errors.New("bad message")

func (ss *session) readLoop() {
	r := bufio.NewReaderSize(ss.conn, 4096)
	for {
		_ = ss.conn.SetReadDeadline(time.Now().Add(ss.p.behaviour.IdleTimeout))
		m, err := readMessage(r)
		if err != nil {
			return
		}
		if m.keepAlive || m.id != msgExtended {
			continue
		}
		if err := ss.onExtended(m.payload); err != nil {
			ss.s.log.Debug("session ended on an extended message", "peer", ss.p.Index, "err", err)
			return
		}
	}
}

func (ss *session) onExtended(payload []byte) error {
	if len(payload) < 1 {
		return fmt.Errorf("%w: empty extended message", errBadMessage)
	}
	switch payload[0] {
	case 0:
		var h extHandshake
		if err := bencode.DecodeBytes(payload[1:], &h); err != nil {
			return fmt.Errorf("%w: extension handshake: %v", errBadMessage, err)
		}
		ss.mu.Lock()
		ss.remotePEX = clampExt(h.M["ut_pex"])
		ss.remoteMeta = clampExt(h.M["ut_metadata"])
		ss.remoteDont = clampExt(h.M["lt_donthave"])
		sendPEX := ss.p.behaviour.PEX && ss.remotePEX > 0 && !ss.pexSent
		ss.pexSent = ss.pexSent || sendPEX
		pexID := ss.remotePEX
		ss.mu.Unlock()
		ss.extReadyOnce.Do(func() { close(ss.extReady) })
		if sendPEX {
			return ss.write(appendExtended(nil, byte(pexID), ss.s.pexPayload(ss.p)))
		}
	case extMetadata:
		if !ss.p.behaviour.MetaSize {
			return nil
		}
		var req metadataMsg
		if err := bencode.DecodeBytes(payload[1:], &req); err != nil {
			return fmt.Errorf("%w: ut_metadata: %v", errBadMessage, err)
		}
		if req.MsgType != 0 {
			return nil
		}
		ss.mu.Lock()
		id := ss.remoteMeta
		ss.mu.Unlock()
		if id == 0 {
			return nil
		}
		return ss.write(appendExtended(nil, byte(id), metadataReply(ss.p.Torrent.Info, req.Piece)))
	}
	return nil
}

func clampExt(id int) int {
	if id < 0 || id > 255 {
		return 0
	}
	return id
}

// metadataReply answers a BEP 9 request: data for a valid piece, reject
// otherwise.
func metadataReply(info []byte, piece int) []byte {
	const chunk = 16 << 10
	if piece < 0 || piece*chunk >= len(info) {
		out, _ := bencode.EncodeBytes(map[string]any{"msg_type": 2, "piece": piece})
		return out
	}
	end := min((piece+1)*chunk, len(info))
	out, _ := bencode.EncodeBytes(map[string]any{"msg_type": 1, "piece": piece, "total_size": len(info)})
	return append(out, info[piece*chunk:end]...)
}

func appendDontHave(b []byte, extID byte, piece int) []byte {
	var pl [4]byte
	binary.BigEndian.PutUint32(pl[:], uint32(piece))
	return appendExtended(b, extID, pl[:])
}
