package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// PeerFlags are facts about one peer identity, kept as a bit set in its record.
type PeerFlags uint16

// The peer flags.
const (
	FlagHasPoint    PeerFlags = 1 << iota // at least one progress point is stored
	FlagBelowSeen                         // a point strictly below the threshold was seen
	FlagSeed                              // first seen at or above the threshold
	FlagPartialSeed                       // announced upload_only while below the threshold (BEP 21)
	FlagRegressed                         // a later point was lower than an earlier one
	FlagConfirmed                         // crossed the threshold (CrossedAt is set)
	FlagCounted                           // the crossing was counted as a confirmed download
	FlagUploadOnly                        // the last session announced upload_only
	FlagRDNSDone                          // reverse DNS was resolved (Domain may still be empty)
	FlagGeoDone                           // GeoIP enrichment ran for this record
)

// Point is a piece count read on the wire at a given time.
type Point struct {
	Pieces uint32
	At     time.Time
}

// Peer is the stored state of one peer identity (torrent, IP, listen port). It holds no raw
// IP unless the operator asked for it (Addr is then valid).
type Peer struct {
	Flags       PeerFlags
	Sources     uint8 // bit (1 << discovery.Source) for every source that led to this peer
	Contacts    uint32
	FirstSeen   time.Time
	LastContact time.Time
	NumPieces   uint32
	First       Point // the first progress point ever stored
	Prev        Point // the point before Last
	Last        Point // the latest progress point
	LastBelow   time.Time
	CrossedAt   time.Time // first point at or above the threshold after a point below it
	WindowStart time.Time // the last point below the threshold before CrossedAt
	MaxSpeed    float64   // bytes per second
	Client      string    // client family
	Country     string    // ISO 3166-1 alpha-2, "ZZ" unknown
	Continent   string    // two-letter continent code, "ZZ" unknown
	City        string
	ASN         uint32
	Org         string
	Domain      string       // registered domain from reverse DNS
	Network     netip.Prefix // anonymized network (/24, /48), or the full address when anonymization is off
	NetLabel    string       // the network bucket the peer is counted under in the top-N table
	Addr        netip.Addr   // raw address, only when the operator keeps raw IPs
	// Torrent is the torrent the identity belongs to (its key is a one-way hash of it);
	// zero in records written before record version 2.
	Torrent metainfo.Hash
}

// Has reports whether every flag in f is set.
func (p *Peer) Has(f PeerFlags) bool { return p.Flags&f == f }

// recordVersion is the version written; version 1 (no torrent field) is still read.
const recordVersion = 2

// maxString bounds every string field so a record stays small and a corrupt one cannot
// claim a huge allocation.
const maxString = 255

func putTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func putString(b []byte, s string) []byte {
	if len(s) > maxString {
		s = s[:maxString]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func putPoint(b []byte, p Point) []byte {
	b = binary.AppendUvarint(b, uint64(p.Pieces))
	return putTime(b, p.At)
}

// MarshalBinary encodes the record: a version byte, then varints and length-prefixed
// strings. Compact because it is written for every observation.
func (p *Peer) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 128)
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(p.Flags))
	b = append(b, p.Sources)
	b = binary.AppendUvarint(b, uint64(p.Contacts))
	b = putTime(b, p.FirstSeen)
	b = putTime(b, p.LastContact)
	b = binary.AppendUvarint(b, uint64(p.NumPieces))
	b = putPoint(b, p.First)
	b = putPoint(b, p.Prev)
	b = putPoint(b, p.Last)
	b = putTime(b, p.LastBelow)
	b = putTime(b, p.CrossedAt)
	b = putTime(b, p.WindowStart)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.MaxSpeed))
	b = putString(b, p.Client)
	b = putString(b, p.Country)
	b = putString(b, p.Continent)
	b = putString(b, p.City)
	b = binary.AppendUvarint(b, uint64(p.ASN))
	b = putString(b, p.Org)
	b = putString(b, p.Domain)
	b = putPrefix(b, p.Network)
	b = putString(b, p.NetLabel)
	b = putAddr(b, p.Addr)
	b = append(b, p.Torrent[:]...)
	return b, nil
}

func putAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, 0)
	}
	s := a.AsSlice()
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func putPrefix(b []byte, p netip.Prefix) []byte {
	b = putAddr(b, p.Addr())
	if p.IsValid() {
		b = append(b, byte(p.Bits()))
	}
	return b
}

// decoder reads a record, remembering the first error so callers check once.
type decoder struct {
	b   []byte
	err error
	f   string // the field being read, for the error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("peer record: field %s: %s", d.f, what)
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if v > limit {
		d.fail("value out of range")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.byte1()
	return string(d.bytes(int(n)))
}

func (d *decoder) point() Point {
	return Point{Pieces: uint32(d.uvarint(math.MaxUint32)), At: d.time()}
}

func (d *decoder) addr() netip.Addr {
	n := d.byte1()
	if d.err != nil || n == 0 {
		return netip.Addr{}
	}
	if n != 4 && n != 16 {
		d.fail(fmt.Sprintf("address length %d", n))
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.bytes(int(n)))
	return a
}

func (d *decoder) prefix() netip.Prefix {
	a := d.addr()
	if d.err != nil || !a.IsValid() {
		return netip.Prefix{}
	}
	bits := int(d.byte1())
	if d.err != nil {
		return netip.Prefix{}
	}
	if bits > a.BitLen() {
		d.fail(fmt.Sprintf("prefix length %d for a %d-bit address", bits, a.BitLen()))
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, bits)
}

// errTrailing marks a record with bytes after its last field.
var errTrailing = errors.New("peer record: trailing bytes")

// UnmarshalBinary decodes a record written by MarshalBinary.
func (p *Peer) UnmarshalBinary(b []byte) error {
	d := &decoder{b: b}
	d.f = "version"
	ver := d.byte1()
	if d.err == nil && ver != 1 && ver != recordVersion {
		return fmt.Errorf("peer record: unknown record version %d", ver)
	}
	var q Peer
	d.f = "flags"
	q.Flags = PeerFlags(d.uvarint(math.MaxUint16))
	d.f = "sources"
	q.Sources = d.byte1()
	d.f = "contacts"
	q.Contacts = uint32(d.uvarint(math.MaxUint32))
	d.f = "first_seen"
	q.FirstSeen = d.time()
	d.f = "last_contact"
	q.LastContact = d.time()
	d.f = "num_pieces"
	q.NumPieces = uint32(d.uvarint(math.MaxUint32))
	d.f = "first"
	q.First = d.point()
	d.f = "prev"
	q.Prev = d.point()
	d.f = "last"
	q.Last = d.point()
	d.f = "last_below"
	q.LastBelow = d.time()
	d.f = "crossed_at"
	q.CrossedAt = d.time()
	d.f = "window_start"
	q.WindowStart = d.time()
	d.f = "max_speed"
	if s := d.bytes(8); s != nil {
		q.MaxSpeed = math.Float64frombits(binary.BigEndian.Uint64(s))
		if math.IsNaN(q.MaxSpeed) || math.IsInf(q.MaxSpeed, 0) || q.MaxSpeed < 0 {
			d.fail("not a finite non-negative speed")
		}
	}
	d.f = "client"
	q.Client = d.string()
	d.f = "country"
	q.Country = d.string()
	d.f = "continent"
	q.Continent = d.string()
	d.f = "city"
	q.City = d.string()
	d.f = "asn"
	q.ASN = uint32(d.uvarint(math.MaxUint32))
	d.f = "org"
	q.Org = d.string()
	d.f = "domain"
	q.Domain = d.string()
	d.f = "network"
	q.Network = d.prefix()
	d.f = "net_label"
	q.NetLabel = d.string()
	d.f = "addr"
	q.Addr = d.addr()
	if ver >= 2 {
		d.f = "torrent"
		copy(q.Torrent[:], d.bytes(len(q.Torrent)))
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errTrailing
	}
	*p = q
	return nil
}
