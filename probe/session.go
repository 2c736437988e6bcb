package probe

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// DefaultBufferBudget is the default SessionConfig.Budget: 64 MiB of large message bodies
// at once. Honest sessions seldom need any (only bitfields above 139,000 pieces and outsized
// extension messages exceed 17 KiB, each for the moment it is read); it bounds what hostile
// peers announcing 1 MiB messages can make btda hold, whatever the session counts.
const DefaultBufferBudget = 64 << 20

// PeerIDPrefix starts every btda peer_id (Azureus style): an honest, stable client
// identity rather than an impersonation of a real client.
const PeerIDPrefix = "-DA0001-"

// SessionConfig configures probe sessions, active and passive. Zero fields take the
// defaults in the comments.
type SessionConfig struct {
	PeerID     [20]byte // ours; zero: PeerIDPrefix plus 12 random characters
	Version    string   // sent as `v` = "btda <Version>"; "" sends "btda dev"
	ListenPort uint16   // sent as `p` in our extension handshake; 0 leaves it out

	DialTimeout      time.Duration // TCP connect; default DefaultDialTimeout
	HandshakeTimeout time.Duration // connect → the peer's complete BEP 3 handshake; default DefaultHandshakeTimeout
	QuietWindow      time.Duration // end the session after this long without a message; default DefaultQuietWindow
	SessionCap       time.Duration // hard cap on one session after connect; default DefaultSessionCap
	MaxMessages      int           // message cap per session (keep-alives count); default DefaultMaxMessages

	SendInterested bool          // send `interested` after the handshakes (keeps libtorrent/aria2 from idling us out)
	KeepAlive      time.Duration // send a keep-alive after this long without writing; 0: never

	// IdleGrace ends a session whose peer showed no movement this long after its initial
	// report came in (QuietWindow stays the bound for sessions with movement, and for
	// peers that sent no progress at all). Default DefaultIdleGrace; negative: off (every
	// session waits out the quiet window).
	IdleGrace time.Duration
	// Watch, if set, holds sessions with downloading peers below the threshold open past
	// the quiet window (see Watcher, Target.Watch and ListenerConfig.Watch). nil: never.
	Watch *Watcher

	MaxPEX int // PEX peers kept per session; default DefaultMaxPEX

	// Budget caps the message-body buffer bytes above 17 KiB that all sessions of the
	// Prober (and its Listener) hold at once; a session that would exceed it ends with
	// OutcomeLocalError. nil: NewProber makes one of DefaultBufferBudget bytes. Pass the
	// same Budget to MetadataConfig.Budget to bound metadata fetches with the sessions.
	Budget *wire.Budget

	// Encryption is the outgoing sessions' MSE policy; "" is DefaultEncryption.
	Encryption EncryptionPolicy
	// UTP, if set, dials uTP sessions (see Prober.Probe for when); nil: TCP only.
	UTP UTPSocket

	// Dial, if set, replaces the default TCP dialer (tests, proxies). It must honour ctx.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger // default: discard
}

func (c *SessionConfig) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.QuietWindow, DefaultQuietWindow)
	def(&c.SessionCap, DefaultSessionCap)
	if c.IdleGrace == 0 {
		c.IdleGrace = DefaultIdleGrace
	}
	if c.MaxMessages <= 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.MaxPEX <= 0 {
		c.MaxPEX = DefaultMaxPEX
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.PeerID == ([20]byte{}) {
		const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		copy(c.PeerID[:], PeerIDPrefix)
		var r [20]byte
		if _, err := rand.Read(r[:]); err != nil {
			return fmt.Errorf("peer id: %w", err)
		}
		for i := len(PeerIDPrefix); i < 20; i++ {
			c.PeerID[i] = alnum[int(r[i])%len(alnum)]
		}
	}
	if c.Encryption == "" {
		c.Encryption = DefaultEncryption
	}
	if !c.Encryption.Valid() {
		return fmt.Errorf("probe: unknown encryption policy %q (want %s, %s, %s or %s)", c.Encryption,
			PreferPlaintext, PreferEncrypted, RequireEncrypted, DisableEncrypted)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Budget == nil {
		c.Budget = wire.NewBudget(DefaultBufferBudget)
	}
	return nil
}

// Target is one peer to probe for one torrent.
type Target struct {
	Torrent metainfo.Hash    // the wire info hash
	Pieces  int              // the torrent's piece count (bitfield size)
	Addr    netip.AddrPort   // where to dial
	Source  discovery.Source // what led to it, copied into the Observation
	Hints   discovery.Hints  // how the peer is best reached (PEX flags, or what worked last time)

	// Watch is what decides whether the session is held open (SessionConfig.Watch).
	// OnHold, if set, is called once when it is, with the session's report so far
	// (Interim set): the caller records it, so that a crash during a long hold does not
	// lose the point below the threshold, and may free the session's slot.
	Watch  WatchInfo
	OnHold func(interim Observation)

	// watchInfo, if set, fills in Watch when the session would end (the listener's
	// incoming sessions: the peer's listen port, which the lookup needs, comes with its
	// extension handshake); ok false: not held.
	watchInfo func(o *Observation) (WatchInfo, bool)
}

// Prober runs probe sessions. It is safe for concurrent use: the caller bounds how many
// sessions run at once (one goroutine each); per-session buffers come from a pool.
type Prober struct {
	cfg    SessionConfig
	dialer net.Dialer
	log    *slog.Logger
	extMsg []byte // our extension handshake message, encoded once
	pool   sync.Pool
	active atomic.Int64 // outgoing sessions running now (Metrics: sessions_in_flight)
}

// sessionBufs is the reusable memory of one session.
type sessionBufs struct {
	br   *bufio.Reader
	dec  wire.Decoder
	set  wire.PieceSet
	hs   [wire.HandshakeLen]byte
	wbuf []byte
}

// NewProber checks cfg, fills in defaults and prepares our handshake messages.
func NewProber(cfg SessionConfig) (*Prober, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.MaxMessages < 1 || cfg.QuietWindow <= 0 {
		return nil, errors.New("probe: MaxMessages and QuietWindow must be positive")
	}
	ext := wire.ExtHandshake{M: wire.OurExtensions, V: "btda " + cfg.Version, P: int(cfg.ListenPort),
		Reqq: -1, MetadataSize: -1, CompleteAgo: -1}
	payload, err := wire.AppendExtHandshake(nil, ext)
	if err != nil {
		return nil, fmt.Errorf("probe: encoding our extension handshake: %w", err)
	}
	p := &Prober{cfg: cfg, log: cfg.Logger.With("component", "probe")}
	// No TCP keep-alive probes: a session ends on its own deadlines, and a held one sends
	// BitTorrent keep-alives and ends on watch_silence. Go's default (15 s) costs four
	// setsockopt calls per dial.
	p.dialer.KeepAlive = -1
	p.extMsg = wire.AppendMessage(nil, wire.Message{Type: wire.Extended, ExtendedID: 0, Payload: payload})
	p.pool.New = func() any { return &sessionBufs{br: bufio.NewReaderSize(nil, 4096)} }
	return p, nil
}

// Session runs an outgoing session over a connection the caller has already opened (another
// transport, a proxy, an encrypted stream), exactly as Probe does after dialling. It does
// not close conn. Timings.Connect is 0.
func (p *Prober) Session(ctx context.Context, conn net.Conn, t Target) Observation {
	o := p.newOutgoing(t)
	if t.Pieces <= 0 || t.Pieces > wire.MaxPieces {
		o.Outcome = OutcomeLocalError
		o.Err = fmt.Errorf("probe: bad target with %d pieces", t.Pieces)
		return o
	}
	p.runTarget(ctx, conn, &o, nil, &t)
	return o
}

// dialOutcome maps a dial error to an Outcome.
func dialOutcome(ctx context.Context, err error) Outcome {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return OutcomeLocalError // we were told to stop; not the peer's fault
	case errors.Is(err, syscall.ECONNREFUSED):
		return OutcomeRefused
	case localErrno(err):
		return OutcomeLocalError
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout(), errors.Is(err, syscall.ETIMEDOUT):
		return OutcomeConnectTimeout
	}
	return OutcomeUnreachable
}

// localErrno reports errors that are our machine's fault: out of descriptors, buffers or
// ephemeral ports.
func localErrno(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

// session is the state of one running session.
type session struct {
	p       *Prober
	conn    net.Conn
	o       *Observation
	b       *sessionBufs
	end     time.Time // the session cap
	wmu     sync.Mutex
	lastW   time.Time
	known   bool
	settled bool      // the peer's initial report is over (see settleGap)
	lastAt  time.Time // when the last progress message arrived
	haves   int       // have messages applied
	bulk    bool      // a bitfield or have_all arrived
	peerMD  uint8
	writeOK bool
	ka      *time.Timer // keep-alive timer, guarded by wmu
	kaEvery time.Duration
	done    bool // the read loop ended; guarded by wmu

	target *Target // what decides a hold: outgoing sessions' own; incoming ones' from the listener (nil: never held)
	hold   *hold   // the connection is held (see watch.go)
}

// run is the shared part of active and passive sessions: from a connected socket to a
// finished Observation. For an incoming connection, peerHS is the handshake the listener
// already read; for an outgoing one it is nil and run exchanges handshakes itself.
func (p *Prober) run(ctx context.Context, conn net.Conn, o *Observation, peerHS *wire.Handshake) {
	p.runTarget(ctx, conn, o, peerHS, nil)
}

// runTarget is run for a session with a Target (which may be held, see watch.go).
func (p *Prober) runTarget(ctx context.Context, conn net.Conn, o *Observation, peerHS *wire.Handshake, t *Target) {
	b := p.pool.Get().(*sessionBufs)
	defer func() {
		b.br.Reset(nil) // do not keep the connection reachable from the pool
		// Gives back any budget; the decoder keeps at most a 17 KiB buffer, so pooled
		// sessions never pin a large one.
		b.dec.Reset(nil, 0)
		p.pool.Put(b)
	}()
	b.br.Reset(conn)
	b.dec.Reset(b.br, o.NumPieces)
	b.dec.SetBudget(p.cfg.Budget)
	b.set.Reset(o.NumPieces)

	// A done ctx closes the connection, which unblocks any read or write at once.
	if ctx.Done() != nil { // (skip the allocation for contexts that never end)
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
	}

	s := &session{p: p, conn: conn, o: o, b: b, writeOK: true, target: t}
	s.end = time.Now().Add(p.cfg.SessionCap)
	if dl, ok := ctx.Deadline(); ok && dl.Before(s.end) {
		s.end = dl // the caller's deadline acts as a tighter session cap
	}
	outcome, viol, err := s.handshake(ctx, peerHS)
	if err == nil && outcome == 0 {
		o.Timings.Handshake = time.Since(o.Start)
		outcome, viol, err = s.read(ctx)
	}
	o.Outcome, o.Violation, o.Err = outcome, viol, err
	if s.known {
		o.Known = true
		o.Bitfield = b.set.Clone()
	}
	o.Timings.Total = time.Since(o.Start)
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.LogAttrs(ctx, slog.LevelDebug, "probe session ended", slog.String("peer", o.Addr.String()),
			slog.String("direction", o.Direction.String()), slog.String("outcome", o.Outcome.String()),
			slog.String("violation", o.Violation), slog.Bool("known", o.Known), slog.Int("pieces", o.Last.Pieces),
			slog.Int("messages", o.Messages), slog.Duration("total", o.Timings.Total), slog.Any("err", o.Err))
	}
}

func (s *session) handshake(ctx context.Context, peerHS *wire.Handshake) (Outcome, string, error) {
	o, cfg := s.o, s.p.cfg
	deadline := minTime(time.Now().Add(cfg.HandshakeTimeout), s.end)
	if err := s.conn.SetDeadline(deadline); err != nil {
		return OutcomeLocalError, "", err
	}
	// Outgoing: we send first (the peer may wait for our info hash). Incoming: the
	// listener has read theirs to route it; we answer now.
	ours := wire.Handshake{Reserved: wire.OurReserved, InfoHash: o.Torrent, PeerID: cfg.PeerID}
	hs, err := wire.Exchange(s.conn, s.b.br, ours, peerHS, s.b.hs[:])
	if errors.Is(err, wire.ErrInfoHashMismatch) {
		return OutcomeInfoHashMismatch, "", err
	}
	if err != nil {
		return handshakeOutcome(ctx, err), "", err
	}
	o.Flags.Extended, o.Flags.Fast, o.Flags.DHT = hs.Reserved.Extended(), hs.Reserved.Fast(), hs.Reserved.DHT()
	o.Client.PeerID = hs.PeerID
	o.Client.Family, o.Client.Version = DecodePeerID(hs.PeerID)
	if hs.PeerID == cfg.PeerID {
		// Trackers and the DHT list our own address among the peers; never count ourselves.
		return OutcomeSelf, "", errors.New("connected to ourselves (our own peer_id)")
	}

	// What we say after the handshake: we never claim to be a seed (seed-seed links get
	// closed, and some clients skip HAVEs for pieces we claim), so have_none with Fast and
	// nothing without it; our extension handshake; optionally interested.
	w := s.b.wbuf[:0]
	if o.Flags.Fast {
		w = wire.AppendMessage(w, wire.Message{Type: wire.HaveNone})
	}
	if o.Flags.Extended {
		w = append(w, s.p.extMsg...)
	}
	if cfg.SendInterested {
		w = wire.AppendMessage(w, wire.Message{Type: wire.Interested})
	}
	s.b.wbuf = w
	if len(w) > 0 {
		// A failed write is not the end: the peer may have sent its progress and closed;
		// the read loop finds out what really happened.
		if _, err := s.conn.Write(w); err != nil {
			s.writeOK = false
		}
	}
	s.lastW = time.Now()
	return 0, "", nil
}

// handshakeOutcome maps an error before the handshake completed.
func handshakeOutcome(ctx context.Context, err error) Outcome {
	switch {
	case ctx.Err() != nil:
		return OutcomeLocalError
	case errors.Is(err, wire.ErrNotBitTorrent):
		return OutcomeNotBitTorrent
	case errors.Is(err, os.ErrDeadlineExceeded):
		return OutcomeHandshakeTimeout
	case localErrno(err):
		return OutcomeLocalError
	}
	return OutcomeReset // EOF, reset, broken pipe: the peer went away during the handshake
}

// read is the progress loop.
func (s *session) read(ctx context.Context) (Outcome, string, error) {
	cfg, o, b := s.p.cfg, s.o, s.b
	last := time.Now()
	if cfg.KeepAlive > 0 && cfg.KeepAlive < cfg.SessionCap {
		s.startKeepAlive(cfg.KeepAlive)
	}
	defer func() {
		s.wmu.Lock()
		s.done = true
		if s.ka != nil {
			s.ka.Stop()
		}
		s.wmu.Unlock()
		if s.hold != nil {
			cfg.Watch.release(s.hold)
		}
	}()
	maxMessages := cfg.MaxMessages
	var m wire.Message
	for {
		if err := s.conn.SetReadDeadline(s.deadline(last)); err != nil {
			return s.readEnd(ctx, err)
		}
		if s.evicted() {
			return OutcomeOK, "", nil // (checked after the deadline is set: see Watcher.acquire)
		}
		if err := b.dec.Next(&m); err != nil {
			if s.hold != nil {
				return s.holdEnded(ctx, err)
			}
			if s.startHold(ctx, err) {
				// A held session may read a have per piece on top of the usual messages.
				maxMessages = o.Messages + cfg.MaxMessages + 2*o.NumPieces
				continue
			}
			return s.readEnd(ctx, err)
		}
		now := time.Now()
		if gap := now.Sub(last); gap > o.Timings.MaxGap && s.hold == nil { // (the quiet-window data)
			o.Timings.MaxGap = gap
		}
		last = now
		o.Messages++
		if v := s.handle(&m, now); v != nil {
			return OutcomeProtocolViolation, v.Kind, v
		}
		if s.hold != nil && s.crossedOrDone() {
			return OutcomeOK, "", nil // the crossing is in: Last is its point
		}
		if o.Messages >= maxMessages {
			return OutcomeMessageCap, "", nil
		}
	}
}

// readEnd maps the error that ended the read loop.
func (s *session) readEnd(ctx context.Context, err error) (Outcome, string, error) {
	var v *wire.Violation
	quietEnd := OutcomeNoProgress
	closed := OutcomeClosedBeforeProgress
	if s.known {
		quietEnd, closed = OutcomeOK, OutcomeOK
	}
	switch {
	case errors.As(err, &v):
		return OutcomeProtocolViolation, v.Kind, err
	case errors.Is(ctx.Err(), context.Canceled):
		if s.known {
			return OutcomeOK, "", nil
		}
		return OutcomeLocalError, "", ctx.Err()
	case ctx.Err() != nil: // the caller's deadline: a session cap
		return OutcomeSessionCap, "", nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !time.Now().Before(s.end) {
			return OutcomeSessionCap, "", nil
		}
		// Quiet window: the normal end. A message left half-read is dropped.
		return quietEnd, "", nil
	case err == io.EOF:
		return closed, "", nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return OutcomeReset, "", err
	case localErrno(err), errors.Is(err, wire.ErrBudget):
		return OutcomeLocalError, "", err
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		if s.b.dec.Partial() {
			return OutcomeReset, "", err
		}
		return closed, "", nil
	}
	return OutcomeReset, "", err
}

// handle applies one message. It returns a violation that ends the session.
func (s *session) handle(m *wire.Message, now time.Time) *wire.Violation {
	o, set := s.o, &s.b.set
	switch m.Type {
	case wire.Have:
		s.haves++
		set.Set(int(m.Index))
		s.progress(now)
	case wire.Bitfield:
		s.bulk = true
		if !s.known {
			_ = set.Replace(m.Payload) // the decoder has checked the size and spare bits
		} else if n := wire.Popcount(m.Payload); n < set.Count() {
			// A later, smaller bitfield: the peer lost pieces (re-check, deleted files).
			_ = set.Replace(m.Payload)
			o.Flags.Regressed = true
		} else {
			// A later bitfield (aria2 resends whole bitfields) merges with the haves.
			_ = set.Merge(m.Payload)
		}
		s.progress(now)
	case wire.HaveAll:
		s.bulk = true
		set.SetAll()
		s.progress(now)
	case wire.HaveNone:
		o.Flags.HaveNone = true
		if set.Count() > 0 {
			o.Flags.Regressed = true
		}
		set.ClearAll()
		s.progress(now)
	case wire.Extended:
		return s.extended(m, now)
	}
	return nil
}

// The initial report: a lazy bitfield (libtorrent ≤ 1.1, old Transmission, some seeders)
// leaves pieces out and sends them as haves right after. Progress messages that follow the
// first one back to back (gaps under settleGap, within settleMax of it) are part of the
// peer's initial state, not progress made while we watched; counting them as movement
// would turn every lazy seed into a confirmed download.
const (
	settleGap = 250 * time.Millisecond
	settleMax = time.Second
)

// progress records a progress message read at now.
func (s *session) progress(now time.Time) {
	o, n := s.o, s.b.set.Count()
	switch {
	case !s.known:
		s.known = true
		o.First = Point{Pieces: n, At: now}
		o.Timings.FirstProgress = now.Sub(o.Start)
	case !s.settled && n >= o.First.Pieces && now.Sub(s.lastAt) < settleGap && now.Sub(o.Start.Add(o.Timings.FirstProgress)) < settleMax:
		// Still the initial report: the peer had n pieces now. Moving At with the count
		// keeps speeds exact (a count stamped with an earlier time would inflate them).
		o.First = Point{Pieces: n, At: now}
	default:
		s.settled = true
	}
	s.lastAt = now
	o.Last = Point{Pieces: n, At: now}
	if s.b.set.Full() {
		o.Flags.Seed = true
	}
	// BEP 16 super-seeders reveal a few pieces by HAVE after have_none (or nothing) and
	// leave upload_only out; a real fresh leecher usually has more, or sends a bitfield.
	o.Flags.SuperSeedSuspect = !s.bulk && s.haves > 0 && n <= 4 && !o.Flags.UploadOnly && !o.Flags.Seed
}

func (s *session) extended(m *wire.Message, now time.Time) *wire.Violation {
	o := s.o
	switch m.ExtendedID {
	case 0:
		h, err := wire.ParseExtHandshake(m.Payload)
		if err != nil {
			return asViolation(err)
		}
		o.Client.V = h.V
		if h.UploadOnly {
			o.Flags.UploadOnly = true
			o.Flags.SuperSeedSuspect = false
		}
		o.Flags.ShareMode = o.Flags.ShareMode || h.ShareMode
		o.Flags.PrefersEncryption = h.E
		if h.CompleteAgo >= 0 {
			o.CompleteAgo = h.CompleteAgo
		}
		// A held session keeps the port it was held under: the scheduler marked the peer
		// by it (see ListenerConfig.OnHold).
		if o.Direction == Incoming && h.P > 0 && (s.hold == nil || o.ListenPort == 0) {
			o.ListenPort = uint16(h.P)
		}
		s.peerMD = uint8(h.M[wire.ExtMetadata])
	case wire.OurMetadataID:
		md, err := wire.ParseMetadataMsg(m.Payload)
		if err != nil {
			return asViolation(err)
		}
		if md.Type == wire.MetadataRequest && s.peerMD != 0 {
			// We serve no metadata here: say so, so the peer asks someone else.
			s.write(wire.Message{Type: wire.Extended, ExtendedID: s.peerMD,
				Payload: wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataReject, Piece: md.Piece})})
		}
	case wire.OurPEXID:
		px, err := wire.ParsePEX(m.Payload)
		if err != nil {
			return asViolation(err)
		}
		room := s.p.cfg.MaxPEX - len(o.PEX)
		if room > 0 {
			k := min(room, len(px.Added))
			if px.AddedFlags != nil && o.PEXHints == nil {
				o.PEXHints = make([]discovery.Hints, len(o.PEX), len(o.PEX)+k)
			}
			o.PEX = append(o.PEX, px.Added[:k]...)
			if o.PEXHints != nil {
				for i := range k {
					var h discovery.Hints
					if px.AddedFlags != nil {
						h = discovery.Hints(px.AddedFlags[i]) & discovery.HintsMask
					}
					o.PEXHints = append(o.PEXHints, h)
				}
			}
		}
	case wire.OurDontHaveID:
		i, err := wire.ParseDontHave(m.Payload)
		if err != nil {
			return asViolation(err)
		}
		if uint64(i) >= uint64(o.NumPieces) {
			return &wire.Violation{Kind: wire.KindDontHaveIndex, Detail: fmt.Sprintf("lt_donthave index %d, torrent has %d pieces", i, o.NumPieces)}
		}
		if s.known && s.b.set.Clear(int(i)) {
			o.Flags.Regressed = true
			s.progress(now)
		}
	}
	// Other ids are extensions we did not announce; ignore them.
	return nil
}

func asViolation(err error) *wire.Violation {
	var v *wire.Violation
	if errors.As(err, &v) {
		return v
	}
	return &wire.Violation{Kind: "malformed", Detail: err.Error()}
}

// write sends one message, bounded by the session cap. Failures are ignored: the read
// loop sees a broken connection too.
func (s *session) write(m wire.Message) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.writeOK {
		return
	}
	s.b.wbuf = wire.AppendMessage(s.b.wbuf[:0], m)
	_ = s.conn.SetWriteDeadline(minTime(time.Now().Add(s.p.cfg.HandshakeTimeout), s.end))
	if _, err := s.conn.Write(s.b.wbuf); err != nil {
		s.writeOK = false
	}
	s.lastW = time.Now()
}

// keepAlive runs on a timer while the session reads, so long listening sessions are not
// dropped as idle (libtorrent: 120 s, rtorrent: 240 s without a read).
func (s *session) keepAlive() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.done || !s.writeOK {
		return
	}
	if since := time.Since(s.lastW); since < s.kaEvery {
		s.ka.Reset(s.kaEvery - since) // we wrote something else meanwhile
		return
	}
	var ka [4]byte
	_ = s.conn.SetWriteDeadline(minTime(time.Now().Add(s.p.cfg.HandshakeTimeout), s.end))
	if _, err := s.conn.Write(ka[:]); err != nil {
		s.writeOK = false
		return
	}
	s.lastW = time.Now()
	s.ka.Reset(s.kaEvery)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
