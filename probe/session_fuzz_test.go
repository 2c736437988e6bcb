package probe

import (
	"bytes"
	"net"
	"testing"
	"time"

	"context"

	"github.com/btda/btda/probe/wire"
)

// memConn is a net.Conn that reads a fixed script and discards writes, so a fuzzed session
// runs without sockets or timers.
type memConn struct{ r *bytes.Reader }

func (c *memConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSession runs the whole session logic on arbitrary peer bytes after a valid handshake:
// it must never panic, and the Observation must stay consistent.
func FuzzSession(f *testing.F) {
	msgs := func(ms ...wire.Message) []byte {
		var b []byte
		for _, m := range ms {
			b = wire.AppendMessage(b, m)
		}
		return b
	}
	ext, _ := wire.AppendExtHandshake(nil, wire.ExtHandshake{M: map[string]int{"ut_metadata": 2}, UploadOnly: true, P: 1, Reqq: -1, MetadataSize: -1, CompleteAgo: 3})
	f.Add(msgs(wire.Message{Type: wire.HaveAll}), true)
	f.Add(msgs(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 1, 2)}, have(3), have(99)), false)
	f.Add(msgs(wire.Message{Type: wire.HaveNone}, have(1), wire.Message{Type: wire.Extended, ExtendedID: wire.OurDontHaveID, Payload: u32(1)}), true)
	f.Add(msgs(wire.Message{Type: wire.Extended, Payload: ext}, wire.Message{Type: wire.Extended, ExtendedID: wire.OurMetadataID,
		Payload: wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataRequest})}), true)
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, false)
	f.Add(wire.AppendMessage(nil, wire.Message{Type: wire.Extended, ExtendedID: wire.OurPEXID, Payload: make([]byte, 40<<10)}), false)
	// A small budget, so large messages end sessions with local_error; it must be whole
	// again after every session.
	p, err := NewProber(SessionConfig{MaxMessages: 50, Budget: wire.NewBudget(32 << 10)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, incoming bool) {
		hs := wire.Handshake{Reserved: fastExt, InfoHash: testHash}
		o := Observation{Torrent: testHash, NumPieces: n, Direction: Outgoing, CompleteAgo: -1}
		var conn *memConn
		var peer *wire.Handshake
		if incoming {
			o.Direction = Incoming
			peer = &hs
			conn = &memConn{bytes.NewReader(in)}
		} else {
			conn = &memConn{bytes.NewReader(append(wire.AppendHandshake(nil, hs), in...))}
		}
		p.run(context.Background(), conn, &o, peer)
		if o.Outcome == 0 || o.Messages > 50 {
			t.Fatalf("outcome %v messages %d", o.Outcome, o.Messages)
		}
		if o.Known != (o.Bitfield != nil) {
			t.Fatalf("known %v bitfield %x", o.Known, o.Bitfield)
		}
		if o.Known {
			if len(o.Bitfield) != wire.BitfieldLen(n) || wire.Popcount(o.Bitfield) != o.Last.Pieces || o.Last.Pieces > n {
				t.Fatalf("bitfield %x last %+v", o.Bitfield, o.Last)
			}
			if wire.CheckBitfield(o.Bitfield, n) != nil {
				t.Fatal("spare bits in the result")
			}
		}
		if o.Outcome == OutcomeProtocolViolation && o.Violation == "" {
			t.Fatal("violation without a kind")
		}
		if u := p.cfg.Budget.Used(); u != 0 {
			t.Fatalf("%d budget bytes held after the session", u)
		}
	})
}
