package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe/wire"
)

// Reaching a peer: which transport (TCP, uTP) and which encryption (none, MSE) to open an
// outgoing session with, and the fallbacks when the first choice fails the way a peer that
// only speaks the other one fails.

// Transport is the session's transport. Its String form is the `transport` label.
type Transport uint8

// The transports of a session.
const (
	TransportTCP Transport = iota + 1
	TransportUTP
)

// Transports lists every Transport, for pre-creating metric series.
var Transports = []Transport{TransportTCP, TransportUTP}

func (t Transport) String() string {
	switch t {
	case TransportTCP:
		return "tcp"
	case TransportUTP:
		return "utp"
	}
	return "unknown"
}

// Fallbacks counts the new connections an outgoing session took after its first one
// failed: to the other encryption on the same transport, or to the other transport.
type Fallbacks struct {
	ToEncrypted, ToPlaintext uint8 // MSE after plaintext failed; plaintext after MSE failed
	ToUTP, ToTCP             uint8 // uTP after TCP failed; TCP after uTP failed
}

// Hints says how the session reached the peer, for the next visit to go straight to it:
// HintEncryption when it used MSE (or the incoming peer asked for it with `e`), HintUTP
// when it used uTP. Zero for a session that reached nobody.
func (o *Observation) Hints() discovery.Hints {
	var h discovery.Hints
	if o.Encryption == EncryptionHeader || o.Encryption == EncryptionRC4 ||
		(o.Direction == Incoming && o.Flags.PrefersEncryption) {
		h |= discovery.HintEncryption
	}
	if o.Transport == TransportUTP {
		h |= discovery.HintUTP
	}
	return h
}

// attempt is one way of opening a session.
type attempt struct {
	utp, mse bool
}

// plan orders the ways to try t: transports major (uTP first on a uTP hint), then the
// encryptions in the policy's order (MSE first on an encryption hint when both are allowed).
func (p *Prober) plan(t Target) (out [4]attempt, n int) {
	encs := [2]bool{false, true}
	nEnc := 2
	switch p.cfg.Encryption {
	case DisableEncrypted:
		nEnc = 1
	case RequireEncrypted:
		encs, nEnc = [2]bool{true}, 1
	case PreferEncrypted:
		encs = [2]bool{true, false}
	default:
		if t.Hints&discovery.HintEncryption != 0 {
			encs = [2]bool{true, false}
		}
	}
	trs := [2]bool{false, true}
	nTr := 1
	if p.cfg.UTP != nil {
		nTr = 2
		if t.Hints&discovery.HintUTP != 0 {
			trs = [2]bool{true, false}
		}
	}
	for _, u := range trs[:nTr] {
		for _, e := range encs[:nEnc] {
			out[n] = attempt{utp: u, mse: e}
			n++
		}
	}
	return out, n
}

// Probe dials t.Addr, exchanges handshakes and reads the peer's progress until it has been
// quiet for the quiet window, or a cap is reached. It never fails: every ending is an
// Outcome in the returned Observation. It returns early when ctx is done.
//
// The first connection uses the transport and encryption the policy and t.Hints choose.
// When it fails the way a peer that only speaks the other kind fails, Probe tries again at
// once on a new connection: the other transport when TCP is refused or times out (or the
// connection is closed before any byte came back), the other encryption when the peer hangs
// up on our handshake or never answers it. A TCP connection the peer resets (RST) before a
// byte came back tries the other transport before the other encryption: the peer dropped
// what we sent unread, as one that takes no TCP at all does. The Observation is that of the connection that
// ended the contact (the first one when every way failed), with Fallbacks counting the
// retries.
func (p *Prober) Probe(ctx context.Context, t Target) Observation {
	p.active.Add(1)
	defer p.active.Add(-1)
	if t.Pieces <= 0 || t.Pieces > wire.MaxPieces || !t.Addr.IsValid() || t.Addr.Port() == 0 {
		o := p.newOutgoing(t)
		o.Outcome = OutcomeLocalError
		o.Err = fmt.Errorf("probe: bad target %v with %d pieces", t.Addr, t.Pieces)
		return o
	}
	plan, n := p.plan(t)
	var fb Fallbacks
	var o, first Observation
	skipUTP, skipTCP := false, false
	for k := 0; k < n; k++ {
		a := plan[k]
		if (a.utp && skipUTP) || (!a.utp && skipTCP) {
			continue
		}
		if first.Outcome != 0 {
			prev := o.Transport == TransportUTP
			switch {
			case a.utp && !prev:
				fb.ToUTP++
			case !a.utp && prev:
				fb.ToTCP++
			case a.mse:
				fb.ToEncrypted++
			default:
				fb.ToPlaintext++
			}
		}
		var retry retryKind
		o, retry = p.try(ctx, t, a)
		o.Fallbacks = fb
		if first.Outcome == 0 {
			first = o
		}
		if retry == retryNone || (retry == retryEncryptionOnly && k+1 < n && plan[k+1].utp != a.utp) {
			// Done: reached, a failure no other way fixes, or a handshake that timed out,
			// which is only worth another try in the other encryption on the same
			// transport (an MSE-only peer may wait for 96 key bytes in silence), not a
			// reason to try uTP.
			if retry == retryNone {
				return o
			}
			break
		}
		switch retry {
		case retryOtherTransport:
			if a.utp {
				skipUTP = true
			} else {
				skipTCP = true
			}
		case retryOtherTransportFirst:
			otherTransportFirst(plan[k+1:n], a.utp)
		}
	}
	// Every way failed: report the first, the policy's own choice (a refused TCP connect
	// says more than the uTP timeout after it), with the retries counted.
	first.Fallbacks = fb
	return first
}

// retryKind says whether a failed try is worth another way.
type retryKind uint8

const (
	retryNone           retryKind = iota // done: reached, or a failure no other way fixes
	retryNext                            // the next way in the plan
	retryOtherTransport                  // not this transport at all
	retryEncryptionOnly                  // the other encryption on this transport only
	// The peer reset the TCP connection without reading what we sent: it refuses TCP
	// itself, not our encryption (a libtorrent with incoming TCP off closes every accepted
	// socket at once; a peer that requires encryption reads our handshake and closes with
	// a FIN). The other transport's ways come next, this one's stay after them.
	retryOtherTransportFirst
)

// otherTransportFirst reorders the ways left so that those on the other transport than
// utp come first, each group in its order.
func otherTransportFirst(rest []attempt, utp bool) {
	var buf [4]attempt
	n := 0
	for _, x := range rest {
		if x.utp != utp {
			buf[n] = x
			n++
		}
	}
	for _, x := range rest {
		if x.utp == utp {
			buf[n] = x
			n++
		}
	}
	copy(rest, buf[:n])
}

func (p *Prober) newOutgoing(t Target) Observation {
	return Observation{
		Torrent: t.Torrent, Addr: t.Addr, ListenPort: t.Addr.Port(), Direction: Outgoing,
		Source: t.Source, Start: time.Now(), NumPieces: t.Pieces, CompleteAgo: -1,
	}
}

// try opens one connection the way a says and runs the session over it.
func (p *Prober) try(ctx context.Context, t Target, a attempt) (Observation, retryKind) {
	o := p.newOutgoing(t)
	o.Transport = TransportTCP
	if a.utp {
		o.Transport = TransportUTP
	}
	conn, err := p.dial(ctx, t, a.utp)
	o.Timings.Connect = time.Since(o.Start)
	if err != nil {
		o.Outcome, o.Err = dialOutcome(ctx, err), err
		o.Timings.Total = o.Timings.Connect
		if localErrno(err) {
			p.cfg.Watch.Shed() // held connections give way to new sessions
		}
		if o.Outcome == OutcomeRefused || o.Outcome == OutcomeConnectTimeout || o.Outcome == OutcomeUnreachable {
			return o, retryOtherTransport
		}
		return o, retryNone
	}
	defer conn.Close()
	cc := &countingConn{Conn: conn}
	var sc net.Conn = cc
	o.Encryption = EncryptionNone
	if a.mse {
		if ctx.Done() != nil {
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
		}
		var enc Encryption
		sc, enc, err = initiateMSE(cc, t.Torrent, time.Now().Add(p.cfg.HandshakeTimeout))
		if err != nil {
			o.Outcome, o.Err = mseOutcome(ctx, err), err
			o.Encryption = 0
			o.Timings.Total = time.Since(o.Start)
			return o, p.retryAfterHandshake(ctx, &o, cc)
		}
		o.Encryption = enc
	}
	p.runTarget(ctx, sc, &o, nil, &t)
	if o.Timings.Handshake > 0 || o.Outcome.Reached() {
		return o, retryNone
	}
	return o, p.retryAfterHandshake(ctx, &o, cc)
}

// retryAfterHandshake decides whether a connection that failed before the peer's handshake
// is worth another way: when nothing at all came back from the peer, or bytes that are not
// BitTorrent came back to our plaintext handshake.
func (p *Prober) retryAfterHandshake(ctx context.Context, o *Observation, cc *countingConn) retryKind {
	if ctx.Err() != nil {
		return retryNone
	}
	if o.Outcome == OutcomeNotBitTorrent && o.Encryption == EncryptionNone {
		// An MSE receiver sends its 96-byte key at once, whatever we sent (anacrolix/torrent
		// requiring encryption does): the other encryption may well work.
		return retryEncryptionOnly
	}
	if cc.read.Load() > 0 {
		return retryNone
	}
	switch o.Outcome {
	case OutcomeReset:
		if o.Transport == TransportTCP && (errors.Is(o.Err, syscall.ECONNRESET) || errors.Is(o.Err, syscall.EPIPE)) {
			return retryOtherTransportFirst
		}
		return retryNext
	case OutcomeHandshakeTimeout:
		return retryEncryptionOnly
	}
	return retryNone
}

// mseOutcome maps a failed MSE handshake to an Outcome.
func mseOutcome(ctx context.Context, err error) Outcome {
	switch {
	case ctx.Err() != nil:
		return OutcomeLocalError
	case errors.Is(err, os.ErrDeadlineExceeded):
		return OutcomeHandshakeTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return OutcomeReset
	case localErrno(err):
		return OutcomeLocalError
	}
	return OutcomeNotBitTorrent // the peer answered, but not in MSE
}

// dial opens a TCP or uTP connection to t.Addr within the dial timeout.
func (p *Prober) dial(ctx context.Context, t Target, useUTP bool) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	switch {
	case useUTP:
		return p.cfg.UTP.DialContext(dctx, "udp", t.Addr.String())
	case p.cfg.Dial != nil:
		return p.cfg.Dial(dctx, "tcp", t.Addr.String())
	}
	// Not DialTCP with a zero local AddrPort: that binds every socket to 0.0.0.0:0
	// before connect, and at thousands of sessions the kernel's port search in bind
	// took 90 % of btda's CPU and then failed with EADDRINUSE (BENCHMARKS.md, daemon
	// contacts). Connect picks the ephemeral port itself, per destination.
	return p.dialer.DialContext(dctx, "tcp", t.Addr.String())
}

// countingConn counts the bytes read, to tell a peer that hung up on our handshake without
// a word from one that answered.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}
