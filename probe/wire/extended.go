package wire

import (
	"encoding/binary"
	"math"
	"net/netip"
	"strconv"

	zeebo "github.com/zeebo/bencode"

	"github.com/btda/btda/internal/bencode"
)

// Extension names (BEP 10 `m` keys) btda speaks.
const (
	ExtMetadata = "ut_metadata" // BEP 9
	ExtPEX      = "ut_pex"      // BEP 11
	ExtDontHave = "lt_donthave" // BEP 54
)

// Our local extended message ids: peers send these extensions to us with these ids.
// Id 0 is the extension handshake itself.
const (
	OurPEXID      uint8 = 1
	OurMetadataID uint8 = 2
	OurDontHaveID uint8 = 3
)

// OurExtensions is the `m` dict btda sends.
var OurExtensions = map[string]int{ExtPEX: int(OurPEXID), ExtMetadata: int(OurMetadataID), ExtDontHave: int(OurDontHaveID)}

// ExtHandshake is the BEP 10 extension handshake: the fields btda reads and sends.
// Integer fields are -1 when absent (so an explicit 0 is told apart).
type ExtHandshake struct {
	M            map[string]int // extension name → the sender's message id (0 = disabled)
	V            string         // client name and version
	P            int            // the sender's TCP listen port, -1 absent
	Reqq         int            // request queue length, -1 absent
	UploadOnly   bool           // BEP 21 partial seed
	MetadataSize int            // BEP 9 info dict size, -1 absent, at most MaxInt32 (larger values clamp)
	YourIP       netip.Addr     // our address as the sender sees it (invalid when absent)
	CompleteAgo  int            // libtorrent: seconds since a full copy was seen, -1 absent
	ShareMode    bool           // libtorrent share mode
}

// dictOptions are the rules for extension message dicts. 32 levels is far more than any
// extension message nests; trailing bytes are allowed because a ut_metadata data message
// carries its raw piece after the dict.
var dictOptions = bencode.Options{Limits: bencode.Limits{MaxDepth: 32}, Trailing: bencode.TrailingAny}

// decodeDict checks that b starts with one well-formed dict and splits it into raw values,
// so one field of an unexpected type does not lose the others. It returns the number of
// bytes the dict used.
func decodeDict(b []byte) (map[string]bencode.Raw, int, error) {
	m, doc, err := bencode.DecodeDict(b, dictOptions)
	if err != nil {
		return nil, 0, violation(KindBencode, "%v", err)
	}
	return m, doc.Len, nil
}

// Caps on extension handshake contents, to keep a hostile peer's dict small in memory.
const (
	maxExtNames = 64
	maxVLen     = 128
)

// ParseExtHandshake decodes a BEP 10 handshake payload (after the extended id 0). A field
// of the wrong type is ignored rather than failing the whole handshake; a payload that is
// not a bencoded dict is a *Violation.
func ParseExtHandshake(payload []byte) (ExtHandshake, error) {
	h := ExtHandshake{P: -1, Reqq: -1, MetadataSize: -1, CompleteAgo: -1}
	d, _, err := decodeDict(payload)
	if err != nil {
		return h, violation(KindExtHandshake, "%v", err)
	}
	if raw, ok := d["m"]; ok && len(raw) > 0 && raw[0] == 'd' {
		if m, _, err := bencode.DecodeDict(raw, dictOptions); err == nil {
			h.M = make(map[string]int, min(len(m), maxExtNames))
			for k, v := range m {
				if len(h.M) >= maxExtNames || len(k) > 64 {
					continue
				}
				if id, ok := v.Int(); ok && id > 0 && id <= 255 {
					h.M[k] = int(id)
				}
			}
		}
	}
	if v, ok := d["v"].Bytes(); ok {
		if len(v) > maxVLen {
			v = v[:maxVLen]
		}
		h.V = string(v)
	}
	if p, ok := d["p"].Int(); ok && p > 0 && p <= 65535 {
		h.P = int(p)
	}
	if q, ok := d["reqq"].Int(); ok && q >= 0 && q <= 1<<30 {
		h.Reqq = int(q)
	}
	if u, ok := d["upload_only"].Int(); ok {
		h.UploadOnly = u != 0
	}
	if s, ok := d["share_mode"].Int(); ok {
		h.ShareMode = s != 0
	}
	// A size too large to fetch is kept (clamped to int32) rather than dropped, so the
	// caller reports it as too large instead of as missing.
	if s, ok := d["metadata_size"].Int(); ok && s >= 0 {
		h.MetadataSize = int(min(s, math.MaxInt32))
	}
	if c, ok := d["complete_ago"].Int(); ok && c >= 0 && c <= 1<<31-1 {
		h.CompleteAgo = int(c)
	}
	if ip, ok := d["yourip"].Bytes(); ok {
		if a, ok := netip.AddrFromSlice(ip); ok {
			h.YourIP = a.Unmap()
		}
	}
	return h, nil
}

// AppendExtHandshake appends the bencoded payload of h (without the extended id) to dst.
// Fields at their "absent" value are left out; UploadOnly and ShareMode only when true.
func AppendExtHandshake(dst []byte, h ExtHandshake) ([]byte, error) {
	type wireHS struct {
		M            map[string]int `bencode:"m"`
		V            string         `bencode:"v,omitempty"`
		P            int            `bencode:"p,omitempty"`
		Reqq         int            `bencode:"reqq,omitempty"`
		UploadOnly   int            `bencode:"upload_only,omitempty"`
		MetadataSize int            `bencode:"metadata_size,omitempty"`
		YourIP       []byte         `bencode:"yourip,omitempty"`
		CompleteAgo  *int           `bencode:"complete_ago,omitempty"`
		ShareMode    int            `bencode:"share_mode,omitempty"`
	}
	w := wireHS{M: h.M, V: h.V}
	if w.M == nil {
		w.M = map[string]int{}
	}
	if h.P > 0 {
		w.P = h.P
	}
	if h.Reqq > 0 {
		w.Reqq = h.Reqq
	}
	if h.UploadOnly {
		w.UploadOnly = 1
	}
	if h.ShareMode {
		w.ShareMode = 1
	}
	if h.MetadataSize > 0 {
		w.MetadataSize = h.MetadataSize
	}
	if h.YourIP.IsValid() {
		w.YourIP = h.YourIP.AsSlice()
	}
	if h.CompleteAgo >= 0 {
		c := h.CompleteAgo
		w.CompleteAgo = &c
	}
	b, err := zeebo.EncodeBytes(w)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// ut_metadata message types (BEP 9).
const (
	MetadataRequest = 0
	MetadataData    = 1
	MetadataReject  = 2
)

// MetadataBlock is the size of every ut_metadata piece but the last.
const MetadataBlock = 16 << 10

// MetadataMsg is one ut_metadata message.
type MetadataMsg struct {
	Type      int    // MetadataRequest, MetadataData or MetadataReject
	Piece     int    // the metadata piece index
	TotalSize int    // data messages: the info dict size (-1 when absent)
	Data      []byte // data messages: the piece bytes (aliases the parsed payload)
}

// ParseMetadataMsg decodes a ut_metadata payload: a bencoded dict, followed for a data
// message by at most 16 KiB of raw piece data.
func ParseMetadataMsg(payload []byte) (MetadataMsg, error) {
	m := MetadataMsg{TotalSize: -1}
	d, n, err := decodeDict(payload)
	if err != nil {
		return m, violation(KindMetadata, "%v", err)
	}
	t, ok := d["msg_type"].Int()
	if !ok || t < MetadataRequest || t > MetadataReject {
		return m, violation(KindMetadata, "missing or unknown msg_type")
	}
	p, ok := d["piece"].Int()
	if !ok || p < 0 || p > 1<<20 {
		return m, violation(KindMetadata, "missing or out-of-range piece")
	}
	m.Type, m.Piece = int(t), int(p)
	rest := payload[n:]
	switch m.Type {
	case MetadataData:
		ts, ok := d["total_size"].Int()
		if !ok || ts <= 0 || ts > 1<<30 {
			return m, violation(KindMetadata, "data message without a valid total_size")
		}
		if len(rest) > MetadataBlock {
			return m, violation(KindMetadata, "data block of %d bytes exceeds %d", len(rest), MetadataBlock)
		}
		m.TotalSize, m.Data = int(ts), rest
	default:
		if len(rest) != 0 {
			return m, violation(KindMetadata, "%d trailing bytes after a msg_type %d dict", len(rest), m.Type)
		}
	}
	return m, nil
}

// AppendMetadataMsg appends m's ut_metadata payload (without the extended id) to dst:
// the dict, then m.Data for a data message.
func AppendMetadataMsg(dst []byte, m MetadataMsg) []byte {
	// Built by hand (keys in sorted order) because the raw data must follow the dict.
	dst = append(dst, "d8:msg_typei"...)
	dst = strconv.AppendInt(dst, int64(m.Type), 10)
	dst = append(dst, "e5:piecei"...)
	dst = strconv.AppendInt(dst, int64(m.Piece), 10)
	dst = append(dst, 'e')
	if m.Type == MetadataData {
		dst = append(dst, "10:total_sizei"...)
		dst = strconv.AppendInt(dst, int64(m.TotalSize), 10)
		dst = append(dst, 'e', 'e')
		return append(dst, m.Data...)
	}
	return append(dst, 'e')
}

// PEX limits: BEP 11 allows 50 added peers per message, libtorrent sends up to 100.
// Entries past MaxPEXPeers per list are ignored, not an error.
const MaxPEXPeers = 200

// PEX is one ut_pex message.
type PEX struct {
	Added      []netip.AddrPort // added and added6
	AddedFlags []byte           // added.f then added6.f, one per Added entry when present
	Dropped    []netip.AddrPort // dropped and dropped6
}

// ParsePEX decodes a ut_pex payload. Compact lists whose length is not a multiple of the
// entry size are a *Violation; entries with port 0 or an unspecified address are skipped.
func ParsePEX(payload []byte) (PEX, error) {
	var p PEX
	d, _, err := decodeDict(payload)
	if err != nil {
		return p, violation(KindPEX, "%v", err)
	}
	var n4, n6 int
	if p.Added, n4, err = compactList(d, "added", 6, nil); err != nil {
		return p, err
	}
	if p.Added, n6, err = compactList(d, "added6", 18, p.Added); err != nil {
		return p, err
	}
	f4, _ := d["added.f"].Bytes()
	f6, _ := d["added6.f"].Bytes()
	if (len(f4) > 0 || len(f6) > 0) && len(f4) >= n4 && len(f6) >= n6 {
		p.AddedFlags = make([]byte, 0, n4+n6)
		p.AddedFlags = append(p.AddedFlags, f4[:n4]...)
		p.AddedFlags = append(p.AddedFlags, f6[:n6]...)
	}
	if p.Dropped, _, err = compactList(d, "dropped", 6, nil); err != nil {
		return p, err
	}
	if p.Dropped, _, err = compactList(d, "dropped6", 18, p.Dropped); err != nil {
		return p, err
	}
	if p.AddedFlags != nil && len(p.AddedFlags) != len(p.Added) {
		p.AddedFlags = nil // skipped entries broke the pairing; flags are only a hint
	}
	return p, nil
}

// compactList appends the valid entries of compact list key to dst. It returns the number
// of raw entries it took (for pairing with flags).
func compactList(d map[string]bencode.Raw, key string, size int, dst []netip.AddrPort) ([]netip.AddrPort, int, error) {
	raw, ok := d[key]
	if !ok {
		return dst, 0, nil
	}
	b, ok := raw.Bytes()
	if !ok {
		return dst, 0, violation(KindPEX, "%s is not a string", key)
	}
	if len(b)%size != 0 {
		return dst, 0, violation(KindPEX, "%s is %d bytes, not a multiple of %d", key, len(b), size)
	}
	n := min(len(b)/size, MaxPEXPeers)
	for i := range n {
		e := b[i*size : (i+1)*size]
		a, _ := netip.AddrFromSlice(e[:size-2])
		port := binary.BigEndian.Uint16(e[size-2:])
		if port == 0 || a.IsUnspecified() {
			continue
		}
		dst = append(dst, netip.AddrPortFrom(a.Unmap(), port))
	}
	return dst, n, nil
}

// AppendPEX appends a ut_pex payload for p (without the extended id) to dst. Used by tests
// and fake peers; btda itself does not gossip peers.
func AppendPEX(dst []byte, p PEX) ([]byte, error) {
	var a4, a6, d4, d6, f4, f6 []byte
	for i, ap := range p.Added {
		var f byte
		if i < len(p.AddedFlags) {
			f = p.AddedFlags[i]
		}
		if ap.Addr().Is4() {
			a4 = appendCompact(a4, ap)
			f4 = append(f4, f)
		} else {
			a6 = appendCompact(a6, ap)
			f6 = append(f6, f)
		}
	}
	for _, ap := range p.Dropped {
		if ap.Addr().Is4() {
			d4 = appendCompact(d4, ap)
		} else {
			d6 = appendCompact(d6, ap)
		}
	}
	type wirePEX struct {
		Added    []byte `bencode:"added"`
		AddedF   []byte `bencode:"added.f"`
		Added6   []byte `bencode:"added6"`
		Added6F  []byte `bencode:"added6.f"`
		Dropped  []byte `bencode:"dropped"`
		Dropped6 []byte `bencode:"dropped6"`
	}
	b, err := zeebo.EncodeBytes(wirePEX{a4, f4, a6, f6, d4, d6})
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func appendCompact(dst []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	if a.Is4() {
		b := a.As4()
		dst = append(dst, b[:]...)
	} else {
		b := a.As16()
		dst = append(dst, b[:]...)
	}
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// ParseDontHave decodes an lt_donthave payload: a 4-byte piece index. The caller checks
// the index against the piece count.
func ParseDontHave(payload []byte) (uint32, error) {
	if len(payload) != 4 {
		return 0, violation(KindDontHave, "payload of %d bytes, want 4", len(payload))
	}
	return binary.BigEndian.Uint32(payload), nil
}

// AppendDontHave appends an lt_donthave payload for piece i.
func AppendDontHave(dst []byte, i uint32) []byte { return binary.BigEndian.AppendUint32(dst, i) }
