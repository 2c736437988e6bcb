package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func msgBytes(t Type, body ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	b = append(b, byte(t))
	return append(b, body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func TestDecoderTable(t *testing.T) {
	const n = 20 // 3-byte bitfield, 4 spare bits
	cases := []struct {
		name string
		in   []byte
		want Message
		kind string // violation kind, "" for success
		err  error  // other expected error
	}{
		{"keepalive", []byte{0, 0, 0, 0}, Message{Type: KeepAlive}, "", nil},
		{"choke", msgBytes(Choke), Message{Type: Choke}, "", nil},
		{"unchoke", msgBytes(Unchoke), Message{Type: Unchoke}, "", nil},
		{"interested", msgBytes(Interested), Message{Type: Interested}, "", nil},
		{"not interested", msgBytes(NotInterested), Message{Type: NotInterested}, "", nil},
		{"have", msgBytes(Have, u32(19)...), Message{Type: Have, Index: 19}, "", nil},
		{"have index = N", msgBytes(Have, u32(20)...), Message{}, KindHaveIndex, nil},
		{"have index huge", msgBytes(Have, u32(0xFFFFFFFF)...), Message{}, KindHaveIndex, nil},
		{"have short", msgBytes(Have, 0, 0, 1), Message{}, KindMessageSize, nil},
		{"have long", msgBytes(Have, 0, 0, 0, 1, 0), Message{}, KindMessageSize, nil},
		{"bitfield", msgBytes(Bitfield, 0xFF, 0x0F, 0xF0), Message{Type: Bitfield, Payload: []byte{0xFF, 0x0F, 0xF0}}, "", nil},
		{"bitfield spare bits", msgBytes(Bitfield, 0xFF, 0xFF, 0xF8), Message{}, KindBitfieldSpareBits, nil},
		{"bitfield short", msgBytes(Bitfield, 0xFF, 0xFF), Message{}, KindBitfieldSize, nil},
		{"bitfield long", msgBytes(Bitfield, 0xFF, 0xFF, 0, 0), Message{}, KindBitfieldSize, nil},
		{"request", msgBytes(Request, append(append(u32(1), u32(2)...), u32(3)...)...), Message{Type: Request, Index: 1, Begin: 2, Length: 3}, "", nil},
		{"cancel", msgBytes(Cancel, append(append(u32(1), u32(2)...), u32(3)...)...), Message{Type: Cancel, Index: 1, Begin: 2, Length: 3}, "", nil},
		{"reject", msgBytes(Reject, append(append(u32(1), u32(2)...), u32(3)...)...), Message{Type: Reject, Index: 1, Begin: 2, Length: 3}, "", nil},
		{"piece", msgBytes(Piece, append(append(u32(1), u32(0)...), 'x', 'y')...), Message{Type: Piece, Index: 1, Payload: []byte("xy")}, "", nil},
		{"piece too large", append(u32(MaxPieceLen+1), byte(Piece)), Message{}, KindLengthTooLarge, nil},
		{"port", msgBytes(Port, 0x1A, 0xE1), Message{Type: Port, Port: 6881}, "", nil},
		{"suggest", msgBytes(Suggest, u32(3)...), Message{Type: Suggest, Index: 3}, "", nil},
		{"suggest out of range", msgBytes(Suggest, u32(30)...), Message{}, KindHaveIndex, nil},
		{"have_all", msgBytes(HaveAll), Message{Type: HaveAll}, "", nil},
		{"have_none", msgBytes(HaveNone), Message{Type: HaveNone}, "", nil},
		{"have_all with body", msgBytes(HaveAll, 0), Message{}, KindMessageSize, nil},
		{"allowed_fast", msgBytes(AllowedFast, u32(4)...), Message{Type: AllowedFast, Index: 4}, "", nil},
		{"extended", msgBytes(Extended, 0, 'd', 'e'), Message{Type: Extended, ExtendedID: 0, Payload: []byte("de")}, "", nil},
		{"extended empty", msgBytes(Extended), Message{}, KindMessageSize, nil},
		{"extended too large", append(u32(DefaultMaxExtendedLen+1), byte(Extended)), Message{}, KindLengthTooLarge, nil},
		{"4 GiB prefix", u32(0xFFFFFFFF), Message{}, KindLengthTooLarge, nil},
		{"unknown id", msgBytes(42, 1, 2), Message{}, KindUnknownMessage, nil},
		{"empty stream", nil, Message{}, "", io.EOF},
		{"truncated prefix", []byte{0, 0}, Message{}, "", io.ErrUnexpectedEOF},
		{"truncated body", u32(5), Message{}, "", io.ErrUnexpectedEOF},
		{"truncated have", msgBytes(Have, 0, 0, 0, 1)[:7], Message{}, "", io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(c.in), n)
			var m Message
			err := d.Next(&m)
			var v *Violation
			switch {
			case c.kind != "":
				if !errors.As(err, &v) || v.Kind != c.kind {
					t.Fatalf("err = %v, want violation %s", err, c.kind)
				}
			case c.err != nil:
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Payload) == 0 {
					m.Payload = nil
				}
				if !reflect.DeepEqual(m, c.want) {
					t.Fatalf("got %+v, want %+v", m, c.want)
				}
				// The encoder writes back exactly what was read.
				if got := AppendMessage(nil, m); !bytes.Equal(got, c.in) {
					t.Fatalf("re-encoded %x, want %x", got, c.in)
				}
			}
		})
	}
}

func TestDecoderStreamAndPartial(t *testing.T) {
	var in []byte
	in = append(in, msgBytes(Have, u32(1)...)...)
	in = append(in, 0, 0, 0, 0)
	in = append(in, msgBytes(Bitfield, 0x80)...)
	d := NewDecoder(bytes.NewReader(in), 3)
	var m Message
	for _, want := range []Type{Have, KeepAlive, Bitfield} {
		if err := d.Next(&m); err != nil || m.Type != want {
			t.Fatalf("got %v %v, want %v", m.Type, err, want)
		}
	}
	if err := d.Next(&m); err != io.EOF || d.Partial() {
		t.Fatalf("end: %v partial=%v", err, d.Partial())
	}
	d.Reset(bytes.NewReader([]byte{0, 0, 0, 5, 4}), 3)
	if err := d.Next(&m); err != io.ErrUnexpectedEOF || !d.Partial() {
		t.Fatalf("mid-message: %v partial=%v", err, d.Partial())
	}
}

func TestDecoderPiecesUnknown(t *testing.T) {
	var in []byte
	in = append(in, msgBytes(Bitfield, 0xFF, 0x01)...) // any size, spare bits unknowable
	in = append(in, msgBytes(Have, u32(MaxPieces-1)...)...)
	in = append(in, msgBytes(Have, u32(MaxPieces)...)...)
	d := NewDecoder(bytes.NewReader(in), PiecesUnknown)
	var m Message
	if err := d.Next(&m); err != nil || m.Type != Bitfield || len(m.Payload) != 2 {
		t.Fatalf("bitfield: %v %+v", err, m)
	}
	if err := d.Next(&m); err != nil || m.Index != MaxPieces-1 {
		t.Fatalf("have: %v %+v", err, m)
	}
	var v *Violation
	if err := d.Next(&m); !errors.As(err, &v) || v.Kind != KindHaveIndex {
		t.Fatalf("have past MaxPieces: %v", err)
	}
	d.Reset(bytes.NewReader(append(u32(uint32(2+BitfieldLen(MaxPieces))), byte(Bitfield))), PiecesUnknown)
	if err := d.Next(&m); !errors.As(err, &v) || v.Kind != KindLengthTooLarge {
		t.Fatalf("huge bitfield: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	h := Handshake{Reserved: OurReserved}
	copy(h.InfoHash[:], "01234567890123456789")
	copy(h.PeerID[:], "-BD0001-abcdefghijkl")
	b := AppendHandshake(nil, h)
	if len(b) != HandshakeLen {
		t.Fatalf("len %d", len(b))
	}
	got, err := ReadHandshake(bytes.NewReader(b), nil)
	if err != nil || got != h {
		t.Fatalf("got %+v %v", got, err)
	}
	if !got.Reserved.Extended() || !got.Reserved.Fast() || !got.Reserved.DHT() {
		t.Fatal("reserved bits lost")
	}
	if (Reserved{}).Fast() || (Reserved{}).Extended() || (Reserved{}).DHT() {
		t.Fatal("zero reserved has bits")
	}
	if _, err := ReadHandshake(strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), nil); err != ErrNotBitTorrent {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := ReadHandshake(bytes.NewReader(b[:40]), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ReadHandshake(bytes.NewReader(nil), nil); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
}

func TestPieceSet(t *testing.T) {
	s := NewPieceSet(10)
	if s.Count() != 0 || s.Full() || len(s.Bytes()) != 2 {
		t.Fatal("new set")
	}
	if !s.Set(0) || s.Set(0) || !s.Set(9) || s.Set(10) || s.Set(-1) {
		t.Fatal("set")
	}
	if s.Count() != 2 || !s.Has(0) || !s.Has(9) || s.Has(1) || s.Has(10) {
		t.Fatalf("count %d", s.Count())
	}
	// BEP 3 bit order: piece 0 is the high bit of byte 0 (the 2015 tool got this wrong).
	if !bytes.Equal(s.Bytes(), []byte{0x80, 0x40}) {
		t.Fatalf("bits %x", s.Bytes())
	}
	if !s.Clear(0) || s.Clear(0) || s.Count() != 1 {
		t.Fatal("clear")
	}
	s.SetAll()
	if !s.Full() || !bytes.Equal(s.Bytes(), []byte{0xFF, 0xC0}) {
		t.Fatalf("all %x", s.Bytes())
	}
	s.ClearAll()
	if err := s.Merge([]byte{0x0F, 0x00}); err != nil || s.Count() != 4 {
		t.Fatal(err, s.Count())
	}
	if err := s.Merge([]byte{0x11, 0x80}); err != nil || s.Count() != 6 {
		t.Fatal(err, s.Count())
	}
	if err := s.Merge([]byte{0, 0x20}); err == nil {
		t.Fatal("spare bit accepted")
	}
	if err := s.Replace([]byte{0x01, 0x00}); err != nil || s.Count() != 1 {
		t.Fatal(err)
	}
	if err := s.Replace([]byte{1}); err == nil {
		t.Fatal("short accepted")
	}
	// Every piece set one by one gives the full count (256/256, not 130).
	s.Reset(256)
	for i := range 256 {
		s.Set(i)
	}
	if s.Count() != 256 || Popcount(s.Bytes()) != 256 {
		t.Fatal(s.Count())
	}
	var z PieceSet
	if z.Full() || z.Has(0) || z.Set(0) {
		t.Fatal("zero set")
	}
}

func TestExtHandshake(t *testing.T) {
	in := ExtHandshake{
		M: map[string]int{"ut_metadata": 3, "ut_pex": 1, "lt_donthave": 7}, V: "qBittorrent/4.5.0",
		P: 6881, Reqq: 500, UploadOnly: true, MetadataSize: 31337,
		YourIP: netip.MustParseAddr("127.0.0.9"), CompleteAgo: 0, ShareMode: true,
	}
	b, err := AppendExtHandshake(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseExtHandshake(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip\n got %+v\nwant %+v", out, in)
	}
	// Wrong types are ignored field by field; absent ints are -1.
	out, err = ParseExtHandshake([]byte("d1:md6:ut_pex3:abc11:ut_metadatai2ee1:pi99999e1:vi3e6:yourip3:abc12:complete_agoi-5ee"))
	if err != nil {
		t.Fatal(err)
	}
	if out.M["ut_metadata"] != 2 || len(out.M) != 1 || out.P != -1 || out.V != "" || out.YourIP.IsValid() || out.CompleteAgo != -1 || out.Reqq != -1 || out.MetadataSize != -1 {
		t.Fatalf("lenient parse: %+v", out)
	}
	for _, bad := range []string{"", "le", "d", "i3e", "d1:m", "d3:abci1e", "d1:pi1ee trailing-is-ok", "9999999999:x"} {
		_, err := ParseExtHandshake([]byte(bad))
		var v *Violation
		if bad == "d1:pi1ee trailing-is-ok" {
			if err != nil {
				t.Errorf("%q: %v", bad, err)
			}
			continue
		}
		if !errors.As(err, &v) || v.Kind != KindExtHandshake {
			t.Errorf("%q: err %v, want ext_handshake violation", bad, err)
		}
	}
}

func TestMetadataMsg(t *testing.T) {
	data := bytes.Repeat([]byte("d"), 100)
	for _, m := range []MetadataMsg{
		{Type: MetadataRequest, Piece: 2, TotalSize: -1},
		{Type: MetadataReject, Piece: 0, TotalSize: -1},
		{Type: MetadataData, Piece: 1, TotalSize: 16484, Data: data},
		// Data that itself looks like bencode must stay data.
		{Type: MetadataData, Piece: 0, TotalSize: 7, Data: []byte("d1:ai1ee")},
	} {
		b := AppendMetadataMsg(nil, m)
		got, err := ParseMetadataMsg(b)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("got %+v want %+v", got, m)
		}
	}
	for _, bad := range []string{
		"d8:msg_typei0ee",                        // no piece
		"d8:msg_typei5e5:piecei0ee",              // unknown type
		"d8:msg_typei1e5:piecei0ee",              // data without total_size
		"d8:msg_typei0e5:piecei0eexx",            // request with trailing bytes
		"d8:msg_typei0e5:piecei-1ee",             // negative piece
		"d8:msg_typei1e5:piecei0e10:total_sizei", // truncated
		"",
	} {
		if _, err := ParseMetadataMsg([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	big := AppendMetadataMsg(nil, MetadataMsg{Type: MetadataData, TotalSize: 1 << 20, Data: make([]byte, MetadataBlock+1)})
	if _, err := ParseMetadataMsg(big); err == nil {
		t.Error("oversized block accepted")
	}
}

func TestPEX(t *testing.T) {
	in := PEX{
		Added:      []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:6881"), netip.MustParseAddrPort("[::1]:51413"), netip.MustParseAddrPort("127.0.0.3:1")},
		AddedFlags: []byte{0x10, 0x02, 0x01},
		Dropped:    []netip.AddrPort{netip.MustParseAddrPort("127.0.0.4:80")},
	}
	b, err := AppendPEX(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParsePEX(b)
	if err != nil {
		t.Fatal(err)
	}
	// v4 entries come first, then v6.
	want := PEX{
		Added:      []netip.AddrPort{in.Added[0], in.Added[2], in.Added[1]},
		AddedFlags: []byte{0x10, 0x01, 0x02},
		Dropped:    in.Dropped,
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %+v want %+v", out, want)
	}
	// Too many entries are cut at MaxPEXPeers; port 0 is skipped; bad lengths are errors.
	many := bytes.Repeat([]byte{127, 0, 0, 1, 0, 1}, MaxPEXPeers+50)
	p, err := ParsePEX([]byte("d5:added" + itoa(len(many)) + ":" + string(many) + "e"))
	if err != nil || len(p.Added) != MaxPEXPeers {
		t.Fatalf("cap: %d %v", len(p.Added), err)
	}
	p, err = ParsePEX([]byte("d5:added6:\x7f\x00\x00\x01\x00\x00e"))
	if err != nil || len(p.Added) != 0 {
		t.Fatalf("port 0: %+v %v", p, err)
	}
	for _, bad := range []string{"d5:added5:12345e", "d5:addedi1ee", "l", "d6:added618:" + strings.Repeat("x", 17) + "e"} {
		if _, err := ParsePEX([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDontHave(t *testing.T) {
	i, err := ParseDontHave(AppendDontHave(nil, 77))
	if err != nil || i != 77 {
		t.Fatal(i, err)
	}
	if _, err := ParseDontHave([]byte{1, 2, 3}); err == nil {
		t.Fatal("short accepted")
	}
}

// A hostile length prefix is refused before anything of its size is allocated.
func TestDecoderHugePrefixAllocatesNothingBig(t *testing.T) {
	for _, prefix := range []uint32{0xFFFFFFFF, DefaultMaxExtendedLen + 2, MaxPieceLen + 1} {
		in := append(u32(prefix), byte(Extended), 0)
		if prefix == MaxPieceLen+1 {
			in[4] = byte(Piece)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d := NewDecoder(bytes.NewReader(in), 1000)
		var m Message
		err := d.Next(&m)
		runtime.ReadMemStats(&after)
		var v *Violation
		if !errors.As(err, &v) || v.Kind != KindLengthTooLarge {
			t.Fatalf("prefix %d: %v", prefix, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 16<<10 {
			t.Fatalf("prefix %d: allocated %d bytes", prefix, got)
		}
	}
}

func TestPEXFlagsStayPaired(t *testing.T) {
	// added: a port-0 entry (skipped) between two peers; added6 without added6.f.
	a4 := []byte{127, 0, 0, 2, 0x1a, 0xe1, 127, 0, 0, 3, 0, 0, 127, 0, 0, 4, 0x1a, 0xe2}
	a6 := append(make([]byte, 15), 1, 0x1a, 0xe3)
	payload := "d5:added18:" + string(a4) + "7:added.f3:\x01\x02\x056:added618:" + string(a6) + "e"
	p, err := ParsePEX([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Added) != 3 || !reflect.DeepEqual(p.AddedFlags, []byte{0x01, 0x05, 0}) {
		t.Fatalf("added %v flags %v, want 3 peers with flags [1 5 0]", p.Added, p.AddedFlags)
	}
	p, err = ParsePEX([]byte("d5:added6:" + string(a4[:6]) + "e"))
	if err != nil || p.AddedFlags != nil {
		t.Fatalf("no flags in the message: got %v, %v", p.AddedFlags, err)
	}
}

func TestExtHandshakeE(t *testing.T) {
	for payload, want := range map[string]bool{"d1:ei1ee": true, "d1:ei0ee": false, "de": false, "d1:e1:xe": false} {
		h, err := ParseExtHandshake([]byte(payload))
		if err != nil || h.E != want {
			t.Errorf("%q: E = %v, %v; want %v", payload, h.E, err, want)
		}
	}
}
