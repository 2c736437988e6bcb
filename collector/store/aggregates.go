package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// TorrentAgg counts peer identities of one torrent.
type TorrentAgg struct {
	Peers        uint64 // distinct peer identities first seen
	Seeds        uint64 // identities first seen at or above the threshold
	PartialSeeds uint64 // identities that announced upload_only below the threshold
	Confirmed    uint64 // confirmed downloads counted
}

// ConfirmedKey splits confirmed downloads by torrent and place.
type ConfirmedKey struct {
	Torrent   metainfo.Hash
	Country   string // ISO 3166-1 alpha-2 or "ZZ"
	Continent string // two-letter continent code or "ZZ"
}

// CountryAgg is the pair of counters behind the mean-speed maps: bytes peers gained while
// observed, and the seconds they were observed.
type CountryAgg struct {
	Bytes   uint64
	Seconds float64
}

// NetworkAgg counts peers and confirmed downloads of one network (ASN organisation or
// registered domain) for the top-N table. Signed, because a delta moves a peer from the
// "unknown" network to its domain once reverse DNS answers.
type NetworkAgg struct {
	Peers     int64
	Confirmed int64
}

// Aggregates are the counters kept next to the peer records. The collector builds one per
// batch as a delta, writes it in the batch's transaction, and adds it to its in-memory copy
// only after the commit succeeded.
type Aggregates struct {
	Torrents  map[metainfo.Hash]TorrentAgg
	Confirmed map[ConfirmedKey]uint64
	Countries map[string]CountryAgg
	Networks  map[string]NetworkAgg
}

// NewAggregates returns empty aggregates.
func NewAggregates() *Aggregates {
	return &Aggregates{
		Torrents:  map[metainfo.Hash]TorrentAgg{},
		Confirmed: map[ConfirmedKey]uint64{},
		Countries: map[string]CountryAgg{},
		Networks:  map[string]NetworkAgg{},
	}
}

// Add adds every counter of d to a.
func (a *Aggregates) Add(d *Aggregates) {
	for k, v := range d.Torrents {
		t := a.Torrents[k]
		t.Peers += v.Peers
		t.Seeds += v.Seeds
		t.PartialSeeds += v.PartialSeeds
		t.Confirmed += v.Confirmed
		a.Torrents[k] = t
	}
	for k, v := range d.Confirmed {
		a.Confirmed[k] += v
	}
	for k, v := range d.Countries {
		c := a.Countries[k]
		c.Bytes += v.Bytes
		c.Seconds += v.Seconds
		a.Countries[k] = c
	}
	for k, v := range d.Networks {
		n := a.Networks[k]
		n.Peers += v.Peers
		n.Confirmed += v.Confirmed
		a.Networks[k] = n
	}
}

// Empty reports whether a holds no counter.
func (a *Aggregates) Empty() bool {
	return len(a.Torrents) == 0 && len(a.Confirmed) == 0 && len(a.Countries) == 0 && len(a.Networks) == 0
}

// Host marks, per (torrent, IP), which confirmed downloads were counted, so that an
// incoming peer without a known listen port is not counted twice against the same client
// found with its port (see the collector's rule).
type Host struct {
	KnownCounted   uint32 // crossings counted for identities with a known port
	UnknownCounted bool   // the unknown-port identity's crossing was counted
	Claimed        bool   // a known-port crossing was merged into the unknown-port count

	// The known-port identities at (torrent, IP), so that an incoming session without a
	// port can be given the one it belongs to (host record version 1; older records read
	// as none known).
	KnownPorts uint32  // known-port identities stored
	Port       uint16  // the first one's port
	PeerID     [8]byte // a keyed hash of the peer_id its last session showed (zero: none)

	// UnknownPeerID is a keyed hash of the peer_id the unknown-port identity's last session
	// showed (zero: none, or no such identity), so that it can be merged into the
	// known-port identity that appears after it (host record version 2; older records
	// read as none).
	UnknownPeerID [8]byte
}

func (h Host) marshal() []byte {
	b := binary.BigEndian.AppendUint32(nil, h.KnownCounted)
	var f byte
	if h.UnknownCounted {
		f |= 1
	}
	if h.Claimed {
		f |= 2
	}
	b = append(b, f)
	b = binary.BigEndian.AppendUint32(b, h.KnownPorts)
	b = binary.BigEndian.AppendUint16(b, h.Port)
	b = append(b, h.PeerID[:]...)
	return append(b, h.UnknownPeerID[:]...)
}

// The sizes of a host record: now (version 2, with the unknown-port identity's peer_id),
// version 1 (the known ports) and version 0.
const (
	hostLenV0 = 5
	hostLenV1 = hostLenV0 + 4 + 2 + 8
	hostLen   = hostLenV1 + 8
)

func (h *Host) unmarshal(b []byte) error {
	if (len(b) != hostLenV0 && len(b) != hostLenV1 && len(b) != hostLen) || b[4]&^3 != 0 {
		return fmt.Errorf("host record: %d bytes, want %d, %d or %d with flags 0-3", len(b), hostLenV0, hostLenV1, hostLen)
	}
	h.KnownCounted = binary.BigEndian.Uint32(b)
	h.UnknownCounted = b[4]&1 != 0
	h.Claimed = b[4]&2 != 0
	if len(b) >= hostLenV1 {
		h.KnownPorts = binary.BigEndian.Uint32(b[5:])
		h.Port = binary.BigEndian.Uint16(b[9:])
		copy(h.PeerID[:], b[11:hostLenV1])
	}
	if len(b) == hostLen {
		copy(h.UnknownPeerID[:], b[hostLenV1:])
	}
	return nil
}

// Download is one confirmed download in the log bucket, for reports.
type Download struct {
	At          time.Time // the crossing time (first point at or above the threshold)
	WindowStart time.Time // the last point below the threshold before it
	Peer        PeerKey
	Torrent     metainfo.Hash
	Country     string
	Continent   string
	Speed       float64      // bytes/s over the crossing window
	MaxSpeed    float64      // the peer's highest speed seen up to the crossing
	Network     netip.Prefix // anonymized network
	NetLabel    string       // ASN organisation or registered domain, "" unknown

	// The audit fields (download log version 1; entries written before read as zero).
	Below     uint32 // pieces at the point before the crossing (at WindowStart when nothing came between)
	Above     uint32 // pieces at At, at or above it
	NumPieces uint32 // the torrent's piece count
	Source    uint8  // discovery.Source of the crossing session
	Direction uint8  // probe.Direction of the crossing session
}

// downloadVersion follows the version-0 fields of a download log entry. Version 0 entries
// end after net_label; later versions append the version byte and their fields, so a
// reader of any version reads every older entry.
const downloadVersion = 1

func (d *Download) key() []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 24), uint64(d.At.UnixNano()))
	return append(k, d.Peer[:]...)
}

func (d *Download) marshal() []byte {
	b := make([]byte, 0, 96)
	b = append(b, d.Torrent[:]...)
	b = putString(b, d.Country)
	b = putString(b, d.Continent)
	b = putTime(b, d.WindowStart)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.Speed))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.MaxSpeed))
	b = putPrefix(b, d.Network)
	b = putString(b, d.NetLabel)
	b = append(b, downloadVersion)
	b = binary.AppendUvarint(b, uint64(d.Below))
	b = binary.AppendUvarint(b, uint64(d.Above))
	b = binary.AppendUvarint(b, uint64(d.NumPieces))
	return append(b, d.Source, d.Direction)
}

// UnmarshalDownload decodes a download log entry from its key and value.
func UnmarshalDownload(k, v []byte) (Download, error) {
	var d Download
	if len(k) != 24 {
		return d, fmt.Errorf("download log: key of %d bytes, want 24", len(k))
	}
	d.At = time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()
	copy(d.Peer[:], k[8:])
	dec := &decoder{b: v, f: "torrent"}
	copy(d.Torrent[:], dec.bytes(20))
	dec.f = "country"
	d.Country = dec.string()
	dec.f = "continent"
	d.Continent = dec.string()
	dec.f = "window_start"
	d.WindowStart = dec.time()
	dec.f = "speed"
	if s := dec.bytes(16); s != nil {
		d.Speed = math.Float64frombits(binary.BigEndian.Uint64(s))
		d.MaxSpeed = math.Float64frombits(binary.BigEndian.Uint64(s[8:]))
	}
	dec.f = "network"
	d.Network = dec.prefix()
	dec.f = "net_label"
	d.NetLabel = dec.string()
	if dec.err == nil && len(dec.b) > 0 {
		dec.f = "version"
		if v := dec.byte1(); v != downloadVersion {
			return Download{}, fmt.Errorf("download log: unknown entry version %d", v)
		}
		dec.f = "below"
		d.Below = uint32(dec.uvarint(math.MaxUint32))
		dec.f = "above"
		d.Above = uint32(dec.uvarint(math.MaxUint32))
		dec.f = "num_pieces"
		d.NumPieces = uint32(dec.uvarint(math.MaxUint32))
		dec.f = "source"
		d.Source = dec.byte1()
		dec.f = "direction"
		d.Direction = dec.byte1()
	}
	if dec.err != nil {
		return Download{}, fmt.Errorf("download log: %w", dec.err)
	}
	if len(dec.b) != 0 {
		return Download{}, fmt.Errorf("download log: %d trailing bytes", len(dec.b))
	}
	return d, nil
}
