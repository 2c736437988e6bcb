package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Type is a peer wire message id.
type Type uint8

// Message ids (BEP 3, BEP 5, BEP 6, BEP 10).
const (
	Choke         Type = 0
	Unchoke       Type = 1
	Interested    Type = 2
	NotInterested Type = 3
	Have          Type = 4
	Bitfield      Type = 5
	Request       Type = 6
	Piece         Type = 7
	Cancel        Type = 8
	Port          Type = 9
	Suggest       Type = 0x0D
	HaveAll       Type = 0x0E
	HaveNone      Type = 0x0F
	Reject        Type = 0x10
	AllowedFast   Type = 0x11
	Extended      Type = 20

	// KeepAlive is not a wire id: it stands for the zero-length message.
	KeepAlive Type = 0xFF
)

func (t Type) String() string {
	switch t {
	case Choke:
		return "choke"
	case Unchoke:
		return "unchoke"
	case Interested:
		return "interested"
	case NotInterested:
		return "not_interested"
	case Have:
		return "have"
	case Bitfield:
		return "bitfield"
	case Request:
		return "request"
	case Piece:
		return "piece"
	case Cancel:
		return "cancel"
	case Port:
		return "port"
	case Suggest:
		return "suggest"
	case HaveAll:
		return "have_all"
	case HaveNone:
		return "have_none"
	case Reject:
		return "reject"
	case AllowedFast:
		return "allowed_fast"
	case Extended:
		return "extended"
	case KeepAlive:
		return "keep_alive"
	}
	return fmt.Sprintf("type_%d", uint8(t))
}

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

// Decoder reads length-prefixed messages. It checks every length prefix against the cap
// for its message type before reading the body, so a hostile length never allocates, and
// reuses one buffer for bodies.
type Decoder struct {
	r              io.Reader
	numPieces      int
	maxExtendedLen int
	hdr            [5]byte
	buf            []byte
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

// Reset points the decoder at a new stream and piece count, keeping its buffer.
func (d *Decoder) Reset(r io.Reader, numPieces int) {
	d.r, d.numPieces, d.partial = r, numPieces, false
	if d.maxExtendedLen == 0 {
		d.maxExtendedLen = DefaultMaxExtendedLen
	}
}

// BufferCap is the capacity of the decoder's body buffer (it grows to the largest message
// seen), so pooled decoders that met a huge message can be dropped.
func (d *Decoder) BufferCap() int { return cap(d.buf) }

// SetMaxExtendedLen changes the cap on extended messages (default DefaultMaxExtendedLen).
func (d *Decoder) SetMaxExtendedLen(n int) { d.maxExtendedLen = n }

// Partial reports whether the last failed Next had already read part of a message, so a
// read error there means the stream broke mid-message.
func (d *Decoder) Partial() bool { return d.partial }

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
// for a malformed message, or the reader's error.
func (d *Decoder) Next(m *Message) error {
	d.partial = false
	*m = Message{}
	n, err := io.ReadFull(d.r, d.hdr[:4])
	if err != nil {
		d.partial = n > 0
		return err
	}
	l := binary.BigEndian.Uint32(d.hdr[:4])
	if l == 0 {
		m.Type = KeepAlive
		return nil
	}
	if uint64(l) > uint64(d.maxLen()) {
		return violation(KindLengthTooLarge, "length prefix %d, no message may exceed %d", l, d.maxLen())
	}
	d.partial = true
	if _, err := io.ReadFull(d.r, d.hdr[4:5]); err != nil {
		return eofUnexpected(err)
	}
	t := Type(d.hdr[4])
	lo, hi, ok := d.lenRange(t)
	if !ok {
		return violation(KindUnknownMessage, "message id %d (length %d)", uint8(t), l)
	}
	if uint64(l) > uint64(hi) {
		if lo == hi && t != Bitfield {
			return violation(KindMessageSize, "%s with length %d, want %d", t, l, lo)
		}
		if t == Bitfield && d.numPieces >= 0 {
			return violation(KindBitfieldSize, "bitfield of %d bytes for %d pieces, want %d", l-1, d.numPieces, BitfieldLen(d.numPieces))
		}
		return violation(KindLengthTooLarge, "%s with length %d, cap %d", t, l, hi)
	}
	if int(l) < lo {
		if t == Bitfield {
			return violation(KindBitfieldSize, "bitfield of %d bytes for %d pieces, want %d", l-1, d.numPieces, BitfieldLen(d.numPieces))
		}
		return violation(KindMessageSize, "%s with length %d, want at least %d", t, l, lo)
	}
	body := int(l) - 1
	if cap(d.buf) < body {
		d.buf = make([]byte, body)
	}
	b := d.buf[:body]
	if _, err := io.ReadFull(d.r, b); err != nil {
		return eofUnexpected(err)
	}
	d.partial = false
	m.Type = t
	switch t {
	case Have, Suggest, AllowedFast:
		m.Index = binary.BigEndian.Uint32(b)
		if limit := d.pieceLimit(); uint64(m.Index) >= uint64(limit) {
			return violation(KindHaveIndex, "%s index %d, torrent has %d pieces", t, m.Index, limit)
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
				return err
			}
		}
		m.Payload = b
	case Extended:
		m.ExtendedID = b[0]
		m.Payload = b[1:]
	}
	return nil
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
