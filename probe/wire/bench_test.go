package wire

import (
	"net/netip"
	"testing"
)

// loopReader replays one buffer forever without allocating, so benchmarks measure the
// decoder, not the source.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off += n
	if r.off == len(r.b) {
		r.off = 0
	}
	return n, nil
}

func benchDecode(b *testing.B, pieces int, msgs ...Message) {
	var stream []byte
	for range 64 {
		for _, m := range msgs {
			stream = AppendMessage(stream, m)
		}
	}
	d := NewDecoder(&loopReader{b: stream}, pieces)
	var m Message
	b.SetBytes(int64(len(stream) / (64 * len(msgs))))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for range msgs {
			if err := d.Next(&m); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkDecodeHave(b *testing.B) {
	benchDecode(b, 4096, Message{Type: Have, Index: 4095})
}

func BenchmarkDecodeKeepAlive(b *testing.B) {
	benchDecode(b, 4096, Message{Type: KeepAlive})
}

func BenchmarkDecodeBitfield4096(b *testing.B) {
	s := NewPieceSet(4096)
	for i := 0; i < 4096; i += 3 {
		s.Set(i)
	}
	benchDecode(b, 4096, Message{Type: Bitfield, Payload: s.Clone()})
}

func BenchmarkDecodeMixed(b *testing.B) {
	benchDecode(b, 1000, Message{Type: HaveAll}, Message{Type: Have, Index: 7}, Message{Type: KeepAlive},
		Message{Type: Unchoke}, Message{Type: Extended, ExtendedID: 3, Payload: []byte{0, 0, 0, 7}})
}

func BenchmarkPieceSetMerge(b *testing.B) {
	s := NewPieceSet(100000)
	o := NewPieceSet(100000)
	o.SetAll()
	bf := o.Clone()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Merge(bf); err != nil {
			b.Fatal(err)
		}
	}
}

// A libtorrent-like extension handshake: the bencode path every connection takes once.
var benchExtHandshake = []byte("d12:complete_agoi-1e1:md11:lt_donthavei7e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e11:upload_onlyi0e1:v16:libtorrent/2.0.96:yourip4:\x7f\x00\x00\x01e")

func BenchmarkParseExtHandshake(b *testing.B) {
	b.SetBytes(int64(len(benchExtHandshake)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseExtHandshake(benchExtHandshake); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMetadataMsg(b *testing.B) {
	p := AppendMetadataMsg(nil, MetadataMsg{Type: MetadataData, Piece: 3, TotalSize: 5 * MetadataBlock, Data: make([]byte, MetadataBlock)})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMetadataMsg(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePEX(b *testing.B) {
	var pex PEX
	for i := range 50 {
		pex.Added = append(pex.Added, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 3, 0, byte(i + 1)}), uint16(1000+i)))
	}
	p, err := AppendPEX(nil, pex)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePEX(p); err != nil {
			b.Fatal(err)
		}
	}
}
