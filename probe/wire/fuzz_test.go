package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecoder feeds arbitrary streams to the decoder: it must never panic, never return a
// payload larger than its cap, and everything it accepts must re-encode to the same bytes.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, uint16(20))
	f.Add(msgBytes(Have, u32(3)...), uint16(20))
	f.Add(msgBytes(Bitfield, 0xFF, 0x0F, 0xF0), uint16(20))
	f.Add(msgBytes(Bitfield, 0xFF, 0x0F, 0xF8), uint16(20))
	f.Add(msgBytes(Extended, 0, 'd', 'e'), uint16(1))
	f.Add(append(msgBytes(HaveAll), msgBytes(Have, u32(0)...)...), uint16(1))
	f.Add(u32(0xFFFFFFFF), uint16(8))
	f.Add(msgBytes(Piece, append(u32(0), u32(0)...)...), uint16(8))
	f.Add(msgBytes(Bitfield, 0xFF, 0x01), uint16(0xFFFF))
	f.Add(append(msgBytes(Extended, make([]byte, 40<<10)...), msgBytes(Extended, make([]byte, 80<<10)...)...), uint16(0xFFFF))
	f.Fuzz(func(t *testing.T, in []byte, n uint16) {
		pieces := int(n)
		if n == 0xFFFF {
			pieces = PiecesUnknown
		}
		// The metadata fetch's mode: only extended messages, a small shared budget. The
		// budget must be whole again after every error and after Reset.
		b := NewBudget(64 << 10)
		sd := NewDecoder(bytes.NewReader(in), PiecesUnknown)
		sd.SetSkip(func(t Type) bool { return t != Extended })
		sd.SetBudget(b)
		var sm Message
		for range 1000 {
			err := sd.Next(&sm)
			if err != nil {
				var v *Violation
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &v) && !errors.Is(err, ErrBudget) {
					t.Fatalf("skip mode: unexpected error type %T %v", err, err)
				}
				if b.Used() != 0 {
					t.Fatalf("skip mode: %d budget bytes held after %v", b.Used(), err)
				}
				break
			}
			if sm.Type != Extended {
				t.Fatalf("skip mode returned a %s", sm.Type)
			}
			if used := b.Used(); used > 64<<10 || used > 0 && len(sm.Payload)+1 <= smallBody {
				t.Fatalf("skip mode: %d budget bytes for a %d-byte payload", used, len(sm.Payload))
			}
		}
		sd.Reset(nil, 0)
		if b.Used() != 0 || sd.BufferCap() > smallBody {
			t.Fatalf("after Reset: %d budget bytes held, buffer %d", b.Used(), sd.BufferCap())
		}

		d := NewDecoder(bytes.NewReader(in), pieces)
		var m Message
		for range 1000 {
			err := d.Next(&m)
			if err != nil {
				var v *Violation
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &v) {
					t.Fatalf("unexpected error type %T %v", err, err)
				}
				return
			}
			if len(m.Payload) > DefaultMaxExtendedLen {
				t.Fatalf("payload %d", len(m.Payload))
			}
			if m.Type == Bitfield && pieces >= 0 {
				if err := CheckBitfield(m.Payload, pieces); err != nil {
					t.Fatal(err)
				}
			}
			enc := AppendMessage(nil, m)
			d2 := NewDecoder(bytes.NewReader(enc), pieces)
			var m2 Message
			if err := d2.Next(&m2); err != nil || m2.Type != m.Type || !bytes.Equal(m2.Payload, m.Payload) || m2.Index != m.Index {
				t.Fatalf("re-decode %v: %+v vs %+v", err, m2, m)
			}
		}
	})
}

// FuzzExtHandshake: no panic on any payload; an accepted one re-encodes and re-parses equal.
func FuzzExtHandshake(f *testing.F) {
	f.Add([]byte("d1:md11:ut_metadatai3e6:ut_pexi1ee1:pi6881e1:v13:Transmission4e"))
	f.Add([]byte("d12:complete_agoi1e1:md11:lt_donthavei7ee4:reqqi500e11:upload_onlyi1e6:yourip4:\x7f\x00\x00\x01e"))
	f.Add([]byte("d1:mle1:pi-1e1:v0:e"))
	f.Add([]byte("d1:md6:ut_pexd1:xi1eeee"))
	f.Add([]byte("llllllllllllllllllllllllllllllllllllllllllllllllllllllll"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseExtHandshake(in)
		if err != nil {
			return
		}
		if len(h.M) > maxExtNames || len(h.V) > maxVLen {
			t.Fatalf("unbounded: %d names, v %d", len(h.M), len(h.V))
		}
		b, err := AppendExtHandshake(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := ParseExtHandshake(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if h2.P != h.P || h2.V != h.V || h2.UploadOnly != h.UploadOnly || len(h2.M) != len(h.M) || h2.CompleteAgo != h.CompleteAgo {
			t.Fatalf("round trip %+v vs %+v", h2, h)
		}
	})
}

// FuzzPEX: no panic; lists stay within MaxPEXPeers and hold only usable addresses.
func FuzzPEX(f *testing.F) {
	f.Add([]byte("d5:added6:\x7f\x00\x00\x02\x1a\xe17:added.f1:\x10e"))
	f.Add([]byte("d6:added618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe17:dropped0:e"))
	f.Add([]byte("d5:added5:12345e"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePEX(in)
		if err != nil {
			return
		}
		if len(p.Added) > 2*MaxPEXPeers || len(p.Dropped) > 2*MaxPEXPeers {
			t.Fatalf("unbounded: %d %d", len(p.Added), len(p.Dropped))
		}
		if p.AddedFlags != nil && len(p.AddedFlags) != len(p.Added) {
			t.Fatal("flags not paired")
		}
		for _, a := range append(p.Added, p.Dropped...) {
			if a.Port() == 0 || !a.Addr().IsValid() || a.Addr().IsUnspecified() {
				t.Fatalf("bad entry %v", a)
			}
		}
	})
}

// FuzzMetadataMsg: no panic; accepted messages re-encode and re-parse to the same value.
func FuzzMetadataMsg(f *testing.F) {
	f.Add([]byte("d8:msg_typei0e5:piecei0ee"))
	f.Add([]byte("d8:msg_typei2e5:piecei3ee"))
	f.Add([]byte("d8:msg_typei1e5:piecei0e10:total_sizei5eehello"))
	f.Add([]byte("d8:msg_typei1e5:piecei0e10:total_sizei5ee"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseMetadataMsg(in)
		if err != nil {
			return
		}
		if len(m.Data) > MetadataBlock {
			t.Fatalf("block %d", len(m.Data))
		}
		m2, err := ParseMetadataMsg(AppendMetadataMsg(nil, m))
		if err != nil || m2.Type != m.Type || m2.Piece != m.Piece || m2.TotalSize != m.TotalSize || !bytes.Equal(m2.Data, m.Data) {
			t.Fatalf("round trip %v: %+v vs %+v", err, m2, m)
		}
	})
}
