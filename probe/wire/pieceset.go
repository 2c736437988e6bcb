package wire

import (
	"fmt"
	"math/bits"
)

// MaxPieces bounds the piece count btda accepts for a torrent (a 512 KiB bitfield). Real
// torrents stay far below it; the bound keeps a bogus count from sizing huge buffers.
const MaxPieces = 1 << 22

// BitfieldLen is the exact length of a bitfield for n pieces.
func BitfieldLen(n int) int { return (n + 7) / 8 }

// CheckBitfield reports whether b is a valid bitfield for n pieces: exactly ceil(n/8)
// bytes with every spare bit after piece n-1 clear.
func CheckBitfield(b []byte, n int) error {
	if len(b) != BitfieldLen(n) {
		return violation(KindBitfieldSize, "%d bytes for %d pieces, want %d", len(b), n, BitfieldLen(n))
	}
	if n%8 != 0 && b[len(b)-1]&(0xFF>>(n%8)) != 0 {
		return violation(KindBitfieldSpareBits, "last byte %#02x has bits set past piece %d", b[len(b)-1], n-1)
	}
	return nil
}

// PieceSet is the set of pieces a peer has, for a torrent of a fixed piece count, in BEP 3
// bit order (piece 0 is the high bit of byte 0). It keeps its count up to date.
// The zero value is an empty set of 0 pieces; use Reset to size it.
type PieceSet struct {
	bits  []byte
	n     int
	count int
}

// NewPieceSet returns an empty set for n pieces.
func NewPieceSet(n int) *PieceSet {
	s := &PieceSet{}
	s.Reset(n)
	return s
}

// Reset empties the set and sizes it for n pieces, reusing its memory where it can.
func (s *PieceSet) Reset(n int) {
	if n < 0 {
		n = 0
	}
	l := BitfieldLen(n)
	if cap(s.bits) >= l {
		s.bits = s.bits[:l]
		clear(s.bits)
	} else {
		s.bits = make([]byte, l)
	}
	s.n, s.count = n, 0
}

// Len is the number of pieces the set is sized for.
func (s *PieceSet) Len() int { return s.n }

// Count is the number of pieces in the set.
func (s *PieceSet) Count() int { return s.count }

// Full reports whether every piece is in the set (false for a 0-piece set).
func (s *PieceSet) Full() bool { return s.n > 0 && s.count == s.n }

// Has reports whether piece i is in the set; out-of-range i is never in it.
func (s *PieceSet) Has(i int) bool {
	if i < 0 || i >= s.n {
		return false
	}
	return s.bits[i>>3]&(0x80>>(i&7)) != 0
}

// Set adds piece i. It reports whether the set changed; out-of-range i is ignored.
func (s *PieceSet) Set(i int) bool {
	if i < 0 || i >= s.n {
		return false
	}
	m := byte(0x80 >> (i & 7))
	if s.bits[i>>3]&m != 0 {
		return false
	}
	s.bits[i>>3] |= m
	s.count++
	return true
}

// Clear removes piece i. It reports whether the set changed.
func (s *PieceSet) Clear(i int) bool {
	if !s.Has(i) {
		return false
	}
	s.bits[i>>3] &^= 0x80 >> (i & 7)
	s.count--
	return true
}

// SetAll adds every piece.
func (s *PieceSet) SetAll() {
	for i := range s.bits {
		s.bits[i] = 0xFF
	}
	if r := s.n % 8; r != 0 {
		s.bits[len(s.bits)-1] = byte(0xFF << (8 - r))
	}
	s.count = s.n
}

// ClearAll removes every piece.
func (s *PieceSet) ClearAll() {
	clear(s.bits)
	s.count = 0
}

// Replace makes the set equal to bitfield b, which must pass CheckBitfield.
func (s *PieceSet) Replace(b []byte) error {
	if err := CheckBitfield(b, s.n); err != nil {
		return err
	}
	copy(s.bits, b)
	s.count = popcount(s.bits)
	return nil
}

// Merge adds every piece of bitfield b (a union), which must pass CheckBitfield.
func (s *PieceSet) Merge(b []byte) error {
	if err := CheckBitfield(b, s.n); err != nil {
		return err
	}
	for i, c := range b {
		s.bits[i] |= c
	}
	s.count = popcount(s.bits)
	return nil
}

// Bytes returns the set as a bitfield. It aliases the set's memory.
func (s *PieceSet) Bytes() []byte { return s.bits }

// Clone returns a copy of the bitfield that does not alias the set.
func (s *PieceSet) Clone() []byte { return append([]byte(nil), s.bits...) }

func (s *PieceSet) String() string { return fmt.Sprintf("%d/%d pieces", s.count, s.n) }

func popcount(b []byte) int {
	n := 0
	for len(b) >= 8 {
		n += bits.OnesCount64(uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]))
		b = b[8:]
	}
	for _, c := range b {
		n += bits.OnesCount8(c)
	}
	return n
}

// Popcount is the number of set bits in a bitfield.
func Popcount(b []byte) int { return popcount(b) }
