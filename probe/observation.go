// Package probe reads a peer's download progress over the BitTorrent peer wire protocol.
// It dials peers (active sessions) and accepts them (the passive listener), fetches magnet
// metadata, and schedules whom to contact next. It returns Observations and never writes
// storage or metrics itself: the caller records them.
package probe

import (
	"net/netip"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

// Direction says who opened the connection.
//
//go:generate go tool stringer -type=Direction -linecomment
type Direction uint8

// Directions of a session.
const (
	// Outgoing: we dialled the peer
	Outgoing Direction = iota + 1 // outgoing
	// Incoming: the peer connected to our listener
	Incoming // incoming
)

// Outcome is how a session ended, from a fixed set. Its String form is the `outcome` label.
//
//go:generate go tool stringer -type=Outcome -linecomment
type Outcome uint8

// The outcomes of a probe session.
const (
	// OutcomeOK: progress was read and the session ended normally
	OutcomeOK Outcome = iota + 1 // ok
	// OutcomeNoProgress: handshake done, the peer stayed quiet: progress unknown
	OutcomeNoProgress // no_progress
	// OutcomeRefused: connection refused (nothing listening)
	OutcomeRefused // refused
	// OutcomeConnectTimeout: TCP connect did not finish in time
	OutcomeConnectTimeout // connect_timeout
	// OutcomeUnreachable: other dial failure (no route, host unreachable)
	OutcomeUnreachable // unreachable
	// OutcomeReset: connection reset or closed mid-message
	OutcomeReset // reset
	// OutcomeHandshakeTimeout: connected, but no complete handshake in time
	OutcomeHandshakeTimeout // handshake_timeout
	// OutcomeNotBitTorrent: garbage or an encrypted (MSE) handshake
	OutcomeNotBitTorrent // not_bittorrent
	// OutcomeInfoHashMismatch: the peer answered for another torrent
	OutcomeInfoHashMismatch // infohash_mismatch
	// OutcomeClosedBeforeProgress: the peer closed after the handshake, before any progress message
	OutcomeClosedBeforeProgress // closed_before_progress
	// OutcomeMessageCap: probe.message_cap ended the session (progress may be known)
	OutcomeMessageCap // message_cap
	// OutcomeProtocolViolation: a malformed or out-of-range message; see Observation.Violation
	OutcomeProtocolViolation // protocol_violation
	// OutcomeLocalError: our side failed (e.g. out of file descriptors); retry later
	OutcomeLocalError // local_error
	// OutcomeSelf: the peer was btda itself (a tracker or the DHT listed our own address)
	OutcomeSelf // self
	// OutcomeSessionCap: probe.session_cap (or the caller's deadline) ended the session (progress may be known)
	OutcomeSessionCap // session_cap
)

// Outcomes lists every Outcome, for pre-creating metric series.
var Outcomes = []Outcome{OutcomeOK, OutcomeNoProgress, OutcomeRefused, OutcomeConnectTimeout,
	OutcomeUnreachable, OutcomeReset, OutcomeHandshakeTimeout, OutcomeNotBitTorrent,
	OutcomeInfoHashMismatch, OutcomeClosedBeforeProgress, OutcomeMessageCap,
	OutcomeProtocolViolation, OutcomeLocalError, OutcomeSelf, OutcomeSessionCap}

// Reached reports whether the peer answered as a BitTorrent peer of this torrent, so a
// later failure to connect is not a reason to forget it.
func (o Outcome) Reached() bool {
	switch o {
	case OutcomeOK, OutcomeNoProgress, OutcomeClosedBeforeProgress, OutcomeMessageCap, OutcomeSessionCap, OutcomeProtocolViolation:
		return true
	}
	return false
}

// Point is the peer's piece count at one moment, with the time it was read on the wire.
type Point struct {
	Pieces int
	At     time.Time
}

// Flags are facts about the peer learned during a session.
type Flags struct {
	Seed             bool // at some point the peer had every piece (have_all or a full bitfield)
	HaveNone         bool // the peer sent have_none (an explicit 0, BEP 6)
	UploadOnly       bool // BEP 21 partial seed (`upload_only` in the extension handshake)
	ShareMode        bool // libtorrent share mode (`share_mode`)
	SuperSeedSuspect bool // looked like a BEP 16 super-seeder (have_none or nothing, then sparse haves)
	Regressed        bool // progress fell during the session (lt_donthave, a smaller later bitfield)
	Fast             bool // the peer set the Fast (BEP 6) bit
	Extended         bool // the peer set the extension-protocol (BEP 10) bit
	DHT              bool // the peer set the DHT (BEP 5) bit
	// PrefersEncryption: the peer's extension handshake said `e` = 1 (it prefers MSE).
	PrefersEncryption bool
}

// Client is what the peer says it is.
type Client struct {
	PeerID  [20]byte
	Family  string // decoded from the peer_id (e.g. "libtorrent (Rasterbar)", "Transmission"), "" if unknown
	Version string // decoded from the peer_id, "" if unknown
	V       string // the extension handshake's `v`, "" if absent
}

// Timings of one session, measured from Observation.Start.
type Timings struct {
	Connect       time.Duration // TCP connect (0 for incoming)
	Handshake     time.Duration // until the peer's BEP 3 handshake was complete
	FirstProgress time.Duration // until the first progress message (0 if none)
	Total         time.Duration // until the session ended
	MaxGap        time.Duration // the largest gap between two messages (the 2015 quiet-window data)
}

// Observation is the result of one probe session with one peer.
type Observation struct {
	Torrent    metainfo.Hash // the wire hash the session used
	Addr       netip.AddrPort
	ListenPort uint16 // the peer's listening port: the dialled port, or `p` for incoming (0 unknown)
	Direction  Direction
	Source     discovery.Source // what led to the session (set by the caller for outgoing ones)
	Start      time.Time

	// How the connection was made: zero when no connection was (a failed dial has its
	// Transport; Encryption is zero when an MSE handshake failed).
	Transport  Transport
	Encryption Encryption
	Fallbacks  Fallbacks // outgoing: the connections tried before this one

	Outcome   Outcome
	Violation string // the kind of protocol violation, for OutcomeProtocolViolation
	Err       error  // the underlying error, for logs only (never a label)

	// Progress. Known is false when no progress message was read: the count is then
	// unknown, never 0 (unless have_none arrived, which makes it known and 0).
	Known     bool
	NumPieces int    // the torrent's piece count the bitset is sized for
	Bitfield  []byte // the final piece set, BEP 3 bit order, nil when unknown
	First     Point  // at the first progress message
	Last      Point  // at the end of the session

	Flags       Flags
	Client      Client
	CompleteAgo int // libtorrent `complete_ago` in seconds, -1 when absent
	PEX         []netip.AddrPort
	PEXHints    []discovery.Hints // the PEX flags btda uses, one per PEX entry; nil when the peer sent none
	Held        bool              // the connection was held open to watch the peer download (Watcher)
	// Interim marks a held session's report at the start of its hold (Target.OnHold): its
	// progress, not a session of its own; the session's final Observation follows.
	Interim  bool
	Messages int // messages read in the session
	Timings  Timings
}
