package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// ListenerConfig configures the passive listener. Zero fields take the defaults noted.
type ListenerConfig struct {
	// Lookup routes an incoming handshake's info hash (v1, or a v2 hash truncated to 20
	// bytes) to a watched torrent and returns its piece count. Required.
	Lookup func(metainfo.Hash) (pieces int, ok bool)
	// Deliver receives the Observation of every incoming session that got past routing.
	// It is called from the session's goroutine and should not block for long. Required.
	Deliver func(Observation)
	// InfoHashes returns the wire hashes of the watched torrents (v1, truncated v2): the
	// secret keys an incoming MSE handshake may use. nil: MSE connections are turned away.
	InfoHashes func() []metainfo.Hash

	// Watch, if set and the Prober has a Watcher (SessionConfig.Watch), holds incoming
	// sessions open exactly as outgoing ones (same budget, rules and ends): when a session
	// would end it is asked for the torrent's threshold and the peer's previous point
	// (o is the session's report so far, o.ListenPort its BEP 10 `p`; read it, do not keep
	// it); ok false: not held (the caller is visiting the peer itself, say). It is called
	// from the session's goroutine.
	Watch func(o *Observation) (info WatchInfo, ok bool)
	// OnHold, as Target.OnHold, is called once when an incoming session is held, with its
	// report so far (Interim set). The session still ends through Deliver. A held
	// connection leaves the MaxTotal count (the watch budget bounds it) but keeps its
	// place in MaxPerIP.
	OnHold func(interim Observation)

	HandshakeTimeout time.Duration // accept → the peer's complete handshake; default DefaultHandshakeTimeout
	MaxPerIP         int           // concurrent connections per remote IP; default DefaultMaxPerIP
	MaxTotal         int           // concurrent connections in all; default DefaultMaxTotal
	ShutdownTimeout  time.Duration // how long Serve lets running sessions finish; default 2 s
	Logger           *slog.Logger  // default: the Prober's
}

// ListenerStats counts what the listener turned away. All counters only grow.
type ListenerStats struct {
	Accepted        uint64 // connections accepted
	Sessions        uint64 // sessions started (a watched info hash)
	UnknownInfoHash uint64 // closed at once: info hash not watched
	OverPerIPCap    uint64 // closed at once: too many connections from that IP
	OverTotalCap    uint64 // closed at once: too many connections in all
	NotBitTorrent   uint64 // closed: not a BitTorrent handshake (after MSE, or MSE refused: no InfoHashes)
	HandshakeFailed uint64 // closed: timeout or disconnect before a complete handshake
	MSEUnknownHash  uint64 // closed: an MSE handshake keyed with no watched info hash
	MSEFailed       uint64 // closed: a broken MSE handshake (or garbage, which looks the same)
	Encrypted       uint64 // sessions started after an MSE handshake (counted in Sessions too)
	UTP             uint64 // connections accepted over uTP (counted in Accepted too)
}

// Listener accepts incoming peers and reads their progress like an active session.
type Listener struct {
	p   *Prober
	cfg ListenerConfig
	log *slog.Logger

	mu    sync.Mutex
	perIP map[netip.Addr]int
	total int

	accepted, sessions, unknown, overIP, overTotal, notBT, hsFailed atomic.Uint64
	mseUnknown, mseFailed, encrypted, utp                           atomic.Uint64
}

// NewListener returns a listener whose sessions run with p's configuration, and draw on
// its buffer Budget together with p's outgoing sessions.
func NewListener(p *Prober, cfg ListenerConfig) (*Listener, error) {
	if p == nil || cfg.Lookup == nil || cfg.Deliver == nil {
		return nil, errors.New("probe: NewListener needs a Prober, Lookup and Deliver")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPerIP <= 0 {
		cfg.MaxPerIP = DefaultMaxPerIP
	}
	if cfg.MaxTotal <= 0 {
		cfg.MaxTotal = DefaultMaxTotal
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = p.log
	}
	return &Listener{p: p, cfg: cfg, log: log.With("component", "probe_listener"), perIP: map[netip.Addr]int{}}, nil
}

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{
		Accepted: l.accepted.Load(), Sessions: l.sessions.Load(), UnknownInfoHash: l.unknown.Load(),
		OverPerIPCap: l.overIP.Load(), OverTotalCap: l.overTotal.Load(), NotBitTorrent: l.notBT.Load(),
		HandshakeFailed: l.hsFailed.Load(), MSEUnknownHash: l.mseUnknown.Load(), MSEFailed: l.mseFailed.Load(),
		Encrypted: l.encrypted.Load(), UTP: l.utp.Load(),
	}
}

// Serve accepts on ln until ctx is done, then closes ln, gives running sessions up to
// ShutdownTimeout to finish on their own, ends the rest, and returns once every one of
// its goroutines has returned. It returns nil after ctx is done, or the accept error that
// stopped it. Serve closes ln. One Listener may serve several listeners at once (TCP and
// uTP on the same port): the per-IP and total caps cover them all.
func (l *Listener) Serve(ctx context.Context, ln net.Listener) error {
	sctx, cancelSessions := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSessions()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		t := time.NewTimer(l.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			cancelSessions() // closes every session's connection
			<-done
		}
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if localErrno(err) || (errors.As(err, &ne) && ne.Timeout()) {
				// Out of descriptors: wait a little rather than spin (bounded backoff).
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.log.Warn("accept failed; backing off", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			ln.Close()
			return fmt.Errorf("probe listener: accept: %w", err)
		}
		backoff = 0
		l.accepted.Add(1)
		if isUTP(conn) {
			l.utp.Add(1)
		}
		ip := remoteAddr(conn).Addr()
		if !l.admit(ip) {
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			held := false
			defer func() { l.release(ip, held) }() // before the close, so a peer that sees it can reconnect
			l.handle(sctx, conn, &held)
		}()
	}
}

// admit counts a connection against the caps; excess is closed at once by the caller.
func (l *Listener) admit(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.cfg.MaxTotal {
		l.overTotal.Add(1)
		return false
	}
	if l.perIP[ip] >= l.cfg.MaxPerIP {
		l.overIP.Add(1)
		return false
	}
	l.total++
	l.perIP[ip]++
	return true
}

// release gives back a connection's places; held: its MaxTotal place went at the hold.
func (l *Listener) release(ip netip.Addr, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !held {
		l.total--
	}
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

func remoteAddr(c net.Conn) netip.AddrPort {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap
}

// heldOut takes a connection whose session is now held out of the MaxTotal count: held
// connections only listen, and the watch budget bounds them, so they must not keep new
// peers out.
func (l *Listener) heldOut() {
	l.mu.Lock()
	l.total--
	l.mu.Unlock()
}

// handle reads the handshake, routes it, and runs the shared session code; *held is set
// when the session is held (see ListenerConfig.Watch).
func (l *Listener) handle(ctx context.Context, conn net.Conn, held *bool) {
	start := time.Now()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// Both ways: an MSE handshake writes too, and a peer that does not read must not hold it.
	if err := conn.SetDeadline(start.Add(l.cfg.HandshakeTimeout)); err != nil {
		l.hsFailed.Add(1)
		return
	}
	sr, err := acceptStream(conn, l.cfg.InfoHashes)
	switch {
	case errors.Is(err, errMSEUnknownInfoHash):
		l.mseUnknown.Add(1)
		return
	case errors.Is(err, wire.ErrNotBitTorrent):
		l.notBT.Add(1)
		return
	case errors.Is(err, errMSE):
		l.mseFailed.Add(1)
		return
	case err != nil:
		l.hsFailed.Add(1)
		return
	}
	conn = sr.conn
	var buf [wire.HandshakeLen]byte
	hs, err := wire.ReadHandshake(conn, buf[:])
	if err != nil {
		if errors.Is(err, wire.ErrNotBitTorrent) {
			l.notBT.Add(1)
		} else {
			l.hsFailed.Add(1)
		}
		return
	}
	pieces, ok := l.cfg.Lookup(metainfo.Hash(hs.InfoHash))
	if !ok || pieces <= 0 || pieces > wire.MaxPieces {
		// Not ours: close now rather than hold a slot (the 2015 tool held it for 6 s).
		l.unknown.Add(1)
		return
	}
	l.sessions.Add(1)
	if sr.enc != EncryptionNone {
		l.encrypted.Add(1)
	}
	o := Observation{
		Torrent: metainfo.Hash(hs.InfoHash), Addr: remoteAddr(conn), Direction: Incoming,
		Source: discovery.SourceIncoming, Start: start, NumPieces: pieces, CompleteAgo: -1,
		Transport: TransportTCP, Encryption: sr.enc,
	}
	if isUTP(conn) {
		o.Transport = TransportUTP
	}
	var t *Target
	if l.cfg.Watch != nil && l.p.cfg.Watch != nil {
		t = &Target{Torrent: o.Torrent, Pieces: pieces, Addr: o.Addr, Source: o.Source, watchInfo: l.cfg.Watch,
			OnHold: func(in Observation) {
				l.heldOut()
				*held = true
				if l.cfg.OnHold != nil {
					l.cfg.OnHold(in)
				}
			}}
	}
	l.p.runTarget(ctx, conn, &o, &hs, t)
	l.cfg.Deliver(o)
}
