// Package wire is the BitTorrent peer wire protocol as btda speaks it: the BEP 3 handshake
// with the extension (BEP 10), Fast (BEP 6) and DHT (BEP 5) bits and Exchange, the one
// handshake sequence every caller uses; a length-prefixed message decoder that bounds every
// length before it reads, grows body buffers only as bytes arrive and draws large ones from
// a shared Budget; an encoder, the BEP 10 extension
// handshake, and the extension messages ut_metadata (BEP 9), ut_pex (BEP 11) and
// lt_donthave (BEP 54). It also has PieceSet, the exact-size bitset progress is kept in.
//
// Nothing here dials or sets deadlines: callers own the connection and bound blocking
// reads with conn deadlines derived from their context.
package wire

import "fmt"

// Violation is a protocol violation by the peer: a malformed, oversized or out-of-range
// message. Kind is a short, bounded snake_case name fit for a metric label; Detail says
// what exactly was wrong (for logs only).
type Violation struct {
	Kind   string
	Detail string
}

func (v *Violation) Error() string {
	if v.Detail == "" {
		return "peer wire protocol violation: " + v.Kind
	}
	return "peer wire protocol violation: " + v.Kind + ": " + v.Detail
}

func violation(kind, format string, args ...any) error {
	return &Violation{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// The violation kinds the decoder and parsers report.
const (
	KindLengthTooLarge    = "length_too_large"    // a length prefix above the cap for its type
	KindMessageSize       = "message_size"        // a fixed-size message with the wrong length
	KindUnknownMessage    = "unknown_message"     // a message id we do not know
	KindBitfieldSize      = "bitfield_size"       // bitfield not exactly ceil(N/8) bytes
	KindBitfieldSpareBits = "bitfield_spare_bits" // bits set past piece N-1
	KindHaveIndex         = "have_index"          // have / suggest / allowed_fast index >= N
	KindDontHaveIndex     = "donthave_index"      // lt_donthave index >= N
	KindExtHandshake      = "ext_handshake"       // undecodable BEP 10 handshake
	KindPEX               = "pex"                 // undecodable ut_pex message
	KindMetadata          = "ut_metadata"         // undecodable ut_metadata message
	KindDontHave          = "donthave"            // lt_donthave payload not 4 bytes
	KindBencode           = "bencode"             // malformed bencoding
)
