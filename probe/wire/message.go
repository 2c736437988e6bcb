package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Type is a peer wire message id.
//
//go:generate go tool stringer -type=Type -linecomment
type Type uint8

// Message ids (BEP 3, BEP 5, BEP 6, BEP 10).
const (
	Choke         Type = 0    // choke
	Unchoke       Type = 1    // unchoke
	Interested    Type = 2    // interested
	NotInterested Type = 3    // not_interested
	Have          Type = 4    // have
	Bitfield      Type = 5    // bitfield
	Request       Type = 6    // request
	Piece         Type = 7    // piece
	Cancel        Type = 8    // cancel
	Port          Type = 9    // port
	Suggest       Type = 0x0D // suggest
	HaveAll       Type = 0x0E // have_all
	HaveNone      Type = 0x0F // have_none
	Reject        Type = 0x10 // reject
	AllowedFast   Type = 0x11 // allowed_fast
	Extended      Type = 20   // extended

	// KeepAlive is not a wire id: it stands for the zero-length message.
	KeepAlive Type = 0xFF // keep_alive
)

// Caps on variable-length messages.
const (
	// BlockSize is the request size every client uses. btda never requests, so a piece
	// message is unexpected; it is tolerated (and ignored) up to this size plus its header.
	BlockSize = 16 << 10
	// MaxPieceLen is the largest piece message length prefix accepted.
	MaxPieceLen = 9 + BlockSize
	// DefaultMaxExtendedLen caps an extended message's length prefix: a ut_metadata data
	// message is a 16 KiB block plus a small dict; handshakes and PEX are far smaller.
	DefaultMaxExtendedLen = 1 << 20
)

// Message is one decoded peer wire message. Which fields are set depends on Type:
// Index for have, suggest, allowed_fast; Index/Begin/Length for request, cancel, reject;
// Index/Begin and Payload (the block) for piece; Payload (the bits) for bitfield; Port for
// port; ExtendedID and Payload for extended.
type Message struct {
	Type       Type
	Index      uint32
	Begin      uint32
	Length     uint32
	Port       uint16
	ExtendedID uint8
	// Payload aliases the decoder's buffer and is valid until the next call to Next.
	Payload []byte
}

// Body buffers. A body is read into a buffer that starts at firstChunk bytes (or the body's
// length, if smaller) and doubles as the bytes arrive, so a length prefix alone costs at
// most firstChunk bytes, and a peer must send n bytes to make us hold about 2n. Buffers up
// to smallBody (every message of a normal session: a 16 KiB block or ut_metadata piece
// plus its header, a bitfield of up to 139,000 pieces) are the decoder's own and kept for
// the next message; larger ones are charged to the decoder's Budget and dropped at the next
// call.
const (
	firstChunk = 4 << 10
	smallBody  = BlockSize + 1<<10
)

// Decoder reads length-prefixed messages. It checks every length prefix against the cap
// for its message type before reading the body, grows the body's buffer only as its bytes
// arrive, and reuses one small buffer for bodies.
type Decoder struct {
	r              io.Reader
	numPieces      int
	maxExtendedLen int
	skip           func(Type) bool
	budget         *Budget
	hdr            [5]byte
	buf            []byte // bodies up to smallBody; kept
	big            []byte // a larger body, charged to budget until the next call
	partial        bool
}

// PiecesUnknown, as a decoder's piece count, accepts any bitfield up to MaxPieces and any
// have index below MaxPieces: for magnet sessions before the metadata is known.
const PiecesUnknown = -1

// NewDecoder returns a decoder for a torrent of numPieces pieces (or PiecesUnknown)
// reading from r.
func NewDecoder(r io.Reader, numPieces int) *Decoder {
	d := &Decoder{}
	d.Reset(r, numPieces)
	return d
}

// Reset points the decoder at a new stream and piece count, keeping its small buffer and
// its settings (extended cap, skip, budget). It gives back any budget held, so a decoder
// that is done should be Reset (to a nil reader) to release it.
func (d *Decoder) Reset(r io.Reader, numPieces int) {
	d.dropBig()
	d.r, d.numPieces, d.partial = r, numPieces, false
	if d.maxExtendedLen == 0 {
		d.maxExtendedLen = DefaultMaxExtendedLen
	}
}

// BufferCap is the capacity of the body buffer the decoder keeps between messages. It
// never exceeds 17 KiB: larger bodies use a budgeted buffer that is dropped after use.
func (d *Decoder) BufferCap() int { return cap(d.buf) }

// SetMaxExtendedLen changes the cap on extended messages (default DefaultMaxExtendedLen).
func (d *Decoder) SetMaxExtendedLen(n int) { d.maxExtendedLen = n }

// SetBudget makes bodies above 17 KiB take their buffer from b, shared with other
// decoders; nil (the default) is unlimited. See Budget.
func (d *Decoder) SetBudget(b *Budget) { d.budget = b }

// SetSkip makes Next pass over every message whose type skip reports true for, keep-alives
// (KeepAlive) and ids it does not know included: their bodies are discarded unread, with
// only the length prefix checked against the largest any message may have. It is for
// callers that need a few message types and cannot check the others, like a metadata fetch
// that does not know the piece count. nil (the default) returns every message.
func (d *Decoder) SetSkip(skip func(Type) bool) { d.skip = skip }

// Partial reports whether the last failed Next had already read part of a message, so a
// read error there means the stream broke mid-message.
func (d *Decoder) Partial() bool { return d.partial }

// dropBig gives back the large buffer and its budget.
func (d *Decoder) dropBig() {
	if d.big != nil {
		d.budget.release(cap(d.big))
		d.big = nil
	}
}

// maxLen is the largest length prefix any message type may have.
func (d *Decoder) maxLen() int {
	return max(d.maxExtendedLen, MaxPieceLen, 1+BitfieldLen(d.pieceLimit()))
}

// lenRange returns the largest and smallest acceptable length prefix for a message type
// (the prefix counts the id byte).
func (d *Decoder) lenRange(t Type) (lo, hi int, ok bool) {
	switch t {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return 1, 1, true
	case Have, Suggest, AllowedFast:
		return 5, 5, true
	case Request, Cancel, Reject:
		return 13, 13, true
	case Port:
		return 3, 3, true
	case Bitfield:
		if d.numPieces < 0 {
			return 1, 1 + BitfieldLen(MaxPieces), true
		}
		n := 1 + BitfieldLen(d.numPieces)
		return n, n, true
	case Piece:
		return 9, MaxPieceLen, true
	case Extended:
		return 2, d.maxExtendedLen, true
	}
	return 0, 0, false
}

// Next reads the next message into m. It returns io.EOF only when the stream ended
// cleanly between messages, io.ErrUnexpectedEOF when it ended inside one, a *Violation
// for a malformed message, ErrBudget when a large body does not fit the decoder's Budget,
// or the reader's error.
func (d *Decoder) Next(m *Message) error {
	d.dropBig() // the previous payload is no longer valid
	for {
		skipped, err := d.next(m)
		if err != nil {
			d.dropBig()
			return err
		}
		if !skipped {
			return nil
		}
	}
}

// next reads one message; it reports a message passed over by the skip function.
func (d *Decoder) next(m *Message) (skipped bool, err error) {
	d.partial = false
	*m = Message{}
	n, err := io.ReadFull(d.r, d.hdr[:4])
	if err != nil {
		d.partial = n > 0
		return false, err
	}
	l := binary.BigEndian.Uint32(d.hdr[:4])
	if l == 0 {
		m.Type = KeepAlive
		return d.skip != nil && d.skip(KeepAlive), nil
	}
	if uint64(l) > uint64(d.maxLen()) {
		return false, violation(KindLengthTooLarge, "length prefix %d, no message may exceed %d", l, d.maxLen())
	}
	d.partial = true
	if _, err := io.ReadFull(d.r, d.hdr[4:5]); err != nil {
		return false, eofUnexpected(err)
	}
	t := Type(d.hdr[4])
	if d.skip != nil && d.skip(t) {
		if err := d.discard(int(l) - 1); err != nil {
			return false, eofUnexpected(err)
		}
		d.partial = false
		return true, nil
	}
	lo, hi, ok := d.lenRange(t)
	if !ok {
		return false, violation(KindUnknownMessage, "message id %d (length %d)", uint8(t), l)
	}
	if uint64(l) > uint64(hi) {
		if lo == hi && t != Bitfield {
			return false, violation(KindMessageSize, "%s with length %d, want %d", t, l, lo)
		}
		if t == Bitfield && d.numPieces >= 0 {
			return false, violation(KindBitfieldSize, "bitfield of %d bytes for %d pieces, want %d", l-1, d.numPieces, BitfieldLen(d.numPieces))
		}
		return false, violation(KindLengthTooLarge, "%s with length %d, cap %d", t, l, hi)
	}
	if int(l) < lo {
		if t == Bitfield {
			return false, violation(KindBitfieldSize, "bitfield of %d bytes for %d pieces, want %d", l-1, d.numPieces, BitfieldLen(d.numPieces))
		}
		return false, violation(KindMessageSize, "%s with length %d, want at least %d", t, l, lo)
	}
	b, err := d.readBody(t, int(l)-1)
	if err != nil {
		return false, err
	}
	d.partial = false
	m.Type = t
	switch t {
	case Have, Suggest, AllowedFast:
		m.Index = binary.BigEndian.Uint32(b)
		if limit := d.pieceLimit(); uint64(m.Index) >= uint64(limit) {
			return false, violation(KindHaveIndex, "%s index %d, torrent has %d pieces", t, m.Index, limit)
		}
	case Request, Cancel, Reject:
		m.Index = binary.BigEndian.Uint32(b)
		m.Begin = binary.BigEndian.Uint32(b[4:])
		m.Length = binary.BigEndian.Uint32(b[8:])
	case Piece:
		m.Index = binary.BigEndian.Uint32(b)
		m.Begin = binary.BigEndian.Uint32(b[4:])
		m.Payload = b[8:]
	case Port:
		m.Port = binary.BigEndian.Uint16(b)
	case Bitfield:
		if d.numPieces >= 0 {
			if err := CheckBitfield(b, d.numPieces); err != nil {
				return false, err
			}
		}
		m.Payload = b
	case Extended:
		m.ExtendedID = b[0]
		m.Payload = b[1:]
	}
	return false, nil
}

// readBody reads an n-byte body of a t message. The buffer doubles as the bytes arrive
// (see firstChunk), so memory follows what the peer really sent, not what it announced.
func (d *Decoder) readBody(t Type, n int) ([]byte, error) {
	if n <= cap(d.buf) {
		b := d.buf[:n]
		if _, err := io.ReadFull(d.r, b); err != nil {
			return nil, eofUnexpected(err)
		}
		return b, nil
	}
	if first := min(n, firstChunk); cap(d.buf) < first {
		d.buf = make([]byte, first)
	}
	b := d.buf[:cap(d.buf)]
	got := 0
	for {
		k, err := io.ReadFull(d.r, b[got:])
		got += k
		if err != nil {
			return nil, eofUnexpected(err)
		}
		if got == n {
			return b, nil
		}
		c := min(2*len(b), n)
		if c <= smallBody {
			d.buf = make([]byte, c)
			copy(d.buf, b[:got])
			b = d.buf
			continue
		}
		// The charge covers the new buffer; the old one (if large) is garbage after the copy.
		if !d.budget.acquire(c - cap(d.big)) {
			return nil, fmt.Errorf("%w: %s of %d bytes needs a %d-byte buffer, %d of %d bytes in use",
				ErrBudget, t, n+1, c, d.budget.Used(), d.budget.Limit())
		}
		nb := make([]byte, c)
		copy(nb, b[:got])
		d.big, b = nb, nb
	}
}

// discard passes over n body bytes without buffering them.
func (d *Decoder) discard(n int) error {
	if dr, ok := d.r.(interface{ Discard(int) (int, error) }); ok {
		_, err := dr.Discard(n)
		return err
	}
	_, err := io.CopyN(io.Discard, d.r, int64(n))
	return err
}

// pieceLimit is the exclusive bound on piece indexes.
func (d *Decoder) pieceLimit() int {
	if d.numPieces < 0 {
		return MaxPieces
	}
	return d.numPieces
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendMessage appends m in wire form to dst. Fields that do not belong to m.Type are
// ignored.
func AppendMessage(dst []byte, m Message) []byte {
	if m.Type == KeepAlive {
		return append(dst, 0, 0, 0, 0)
	}
	var body int
	switch m.Type {
	case Have, Suggest, AllowedFast:
		body = 4
	case Request, Cancel, Reject:
		body = 12
	case Piece:
		body = 8 + len(m.Payload)
	case Port:
		body = 2
	case Bitfield:
		body = len(m.Payload)
	case Extended:
		body = 1 + len(m.Payload)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+body))
	dst = append(dst, byte(m.Type))
	switch m.Type {
	case Have, Suggest, AllowedFast:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
	case Request, Cancel, Reject:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		dst = binary.BigEndian.AppendUint32(dst, m.Begin)
		dst = binary.BigEndian.AppendUint32(dst, m.Length)
	case Piece:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		dst = binary.BigEndian.AppendUint32(dst, m.Begin)
		dst = append(dst, m.Payload...)
	case Port:
		dst = binary.BigEndian.AppendUint16(dst, m.Port)
	case Bitfield:
		dst = append(dst, m.Payload...)
	case Extended:
		dst = append(dst, m.ExtendedID)
		dst = append(dst, m.Payload...)
	}
	return dst
}
