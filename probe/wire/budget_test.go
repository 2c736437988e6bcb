package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// countingReader records the largest buffer a caller read into, so a test can see how
// large the decoder's buffer grew.
type countingReader struct {
	r      io.Reader
	maxBuf int // the largest buffer passed to Read
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.maxBuf = max(c.maxBuf, len(p))
	return c.r.Read(p)
}

// TestDecoderGrowsAsBytesArrive: a length prefix alone costs one small chunk; the buffer
// doubles only as the body's bytes arrive.
func TestDecoderGrowsAsBytesArrive(t *testing.T) {
	const declared = 1 << 20
	for _, tc := range []struct {
		name    string
		sent    int // body bytes actually sent (of declared-1)
		maxRead int // the largest buffer the decoder may have read into
	}{
		{"header only", 0, firstChunk},
		{"10 KiB of 1 MiB", 10 << 10, 16 << 10},
		{"100 KiB of 1 MiB", 100 << 10, 128 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(u32(declared), byte(Extended))
			in = append(in, make([]byte, tc.sent)...)
			cr := &countingReader{r: bytes.NewReader(in)}
			b := NewBudget(1 << 30)
			d := NewDecoder(cr, PiecesUnknown)
			d.SetBudget(b)
			var m Message
			if err := d.Next(&m); !errors.Is(err, io.ErrUnexpectedEOF) || !d.Partial() {
				t.Fatalf("got %v (partial %v), want io.ErrUnexpectedEOF mid-message", err, d.Partial())
			}
			// The buffer read into is the current one minus what it already holds, so
			// its size bounds the allocation from above by a factor of 2.
			if cr.maxBuf > tc.maxRead {
				t.Errorf("read into a %d-byte buffer after %d body bytes, want at most %d", cr.maxBuf, tc.sent, tc.maxRead)
			}
			if d.BufferCap() > smallBody {
				t.Errorf("kept a %d-byte buffer, want at most %d", d.BufferCap(), smallBody)
			}
			if b.Used() != 0 {
				t.Errorf("budget %d bytes in use after the error, want 0", b.Used())
			}
		})
	}
}

// TestDecoderBudget: large bodies are charged while their payload is live and released at
// the next call; a body that does not fit fails with ErrBudget and holds nothing.
func TestDecoderBudget(t *testing.T) {
	big := msgBytes(Extended, append([]byte{7}, bytes.Repeat([]byte{'x'}, 100<<10)...)...)
	small := msgBytes(Extended, append([]byte{7}, bytes.Repeat([]byte{'y'}, smallBody-1)...)...)
	b := NewBudget(256 << 10)
	var in []byte
	in = append(in, big...)
	in = append(in, small...)
	in = append(in, big...)
	d := NewDecoder(bufio.NewReader(bytes.NewReader(in)), PiecesUnknown)
	d.SetBudget(b)
	var m Message
	if err := d.Next(&m); err != nil || len(m.Payload) != 100<<10 {
		t.Fatalf("big message: %v, %d bytes", err, len(m.Payload))
	}
	if b.Used() == 0 || b.Used() > 2*(100<<10) {
		t.Errorf("budget in use %d while the payload is live, want (0, 200 KiB]", b.Used())
	}
	if err := d.Next(&m); err != nil || len(m.Payload) != smallBody-1 || m.Payload[0] != 'y' {
		t.Fatalf("small message: %v, %d bytes", err, len(m.Payload))
	}
	if b.Used() != 0 {
		t.Errorf("budget in use %d during a small message, want 0", b.Used())
	}
	// Another decoder holds most of the budget: the big message no longer fits.
	if !b.acquire(200 << 10) {
		t.Fatal("could not take budget")
	}
	if err := d.Next(&m); !errors.Is(err, ErrBudget) || !d.Partial() {
		t.Fatalf("over budget: %v (partial %v), want ErrBudget", err, d.Partial())
	}
	b.release(200 << 10)
	if b.Used() != 0 {
		t.Errorf("budget in use %d after the failure, want 0", b.Used())
	}
	// Reset gives back what a live payload holds.
	d.Reset(bufio.NewReader(bytes.NewReader(big)), PiecesUnknown)
	if err := d.Next(&m); err != nil {
		t.Fatal(err)
	}
	d.Reset(nil, 0)
	if b.Used() != 0 {
		t.Errorf("budget in use %d after Reset, want 0", b.Used())
	}
	// A nil budget is unlimited.
	d = NewDecoder(bytes.NewReader(big), PiecesUnknown)
	if err := d.Next(&m); err != nil || len(m.Payload) != 100<<10 {
		t.Fatalf("nil budget: %v", err)
	}
}

// TestDecoderSkip: skipped types (keep-alives and unknown ids included) are passed over
// with only the frame length bounded; the rest are checked as usual.
func TestDecoderSkip(t *testing.T) {
	onlyExt := func(t Type) bool { return t != Extended }
	var in []byte
	in = append(in, 0, 0, 0, 0)
	in = append(in, msgBytes(Bitfield, bytes.Repeat([]byte{0xFF}, 100<<10)...)...) // unchecked size
	in = append(in, msgBytes(Have, 1, 2)...)                                       // wrong size, skipped
	in = append(in, msgBytes(0x42, 'z', 'z', 'z')...)                              // unknown id, skipped
	in = append(in, msgBytes(Extended, 3, 'h', 'i')...)
	in = append(in, msgBytes(Extended)...) // no extended id
	cr := &countingReader{r: bytes.NewReader(in)}
	d := NewDecoder(cr, PiecesUnknown)
	d.SetSkip(onlyExt)
	var m Message
	if err := d.Next(&m); err != nil || m.Type != Extended || m.ExtendedID != 3 || string(m.Payload) != "hi" {
		t.Fatalf("got %v %+v, want extended 3 \"hi\"", err, m)
	}
	if d.BufferCap() > 64 {
		t.Errorf("skipped bodies were buffered: buffer of %d bytes", d.BufferCap())
	}
	var v *Violation
	if err := d.Next(&m); !errors.As(err, &v) || v.Kind != KindMessageSize {
		t.Fatalf("empty extended: %v, want %s", err, KindMessageSize)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		kind string
		err  error
	}{
		{"skipped frame above the cap", append(u32(DefaultMaxExtendedLen+1), byte(Bitfield)), KindLengthTooLarge, nil},
		{"skipped frame cut short", msgBytes(Bitfield, 1, 2, 3)[:6], "", io.ErrUnexpectedEOF},
		{"clean end after a skipped frame", msgBytes(Bitfield, 1), "", io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(tc.in), PiecesUnknown)
			d.SetSkip(onlyExt)
			err := d.Next(&m)
			if tc.kind != "" {
				if !errors.As(err, &v) || v.Kind != tc.kind {
					t.Fatalf("got %v, want %s", err, tc.kind)
				}
				return
			}
			if err != tc.err {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

// rw is one side of a handshake exchange: reads from a script, records writes.
type rw struct {
	r    io.Reader
	w    bytes.Buffer
	werr error
}

func (c *rw) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *rw) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	return c.w.Write(p)
}

func TestExchange(t *testing.T) {
	ours := Handshake{Reserved: OurReserved, InfoHash: [20]byte{1}, PeerID: [20]byte{'-', 'D', 'A'}}
	theirs := Handshake{Reserved: Reserved{5: 0x10}, InfoHash: [20]byte{1}, PeerID: [20]byte{'-', 'T', 'R'}}
	other := theirs
	other.InfoHash = [20]byte{2}
	writeErr := errors.New("broken pipe")
	for _, tc := range []struct {
		name  string
		in    []byte
		peer  *Handshake
		werr  error
		want  error // errors.Is target; nil for success
		wrote bool
	}{
		{"outgoing", AppendHandshake(nil, theirs), nil, nil, nil, true},
		{"incoming, already read", nil, &theirs, nil, nil, true},
		{"other torrent", AppendHandshake(nil, other), nil, nil, ErrInfoHashMismatch, true},
		{"incoming, other torrent", nil, &other, nil, ErrInfoHashMismatch, true},
		{"garbage", bytes.Repeat([]byte{'x'}, HandshakeLen), nil, nil, ErrNotBitTorrent, true},
		{"closed early", AppendHandshake(nil, theirs)[:30], nil, nil, io.ErrUnexpectedEOF, true},
		{"write fails", AppendHandshake(nil, theirs), nil, writeErr, ErrSendHandshake, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &rw{r: bytes.NewReader(tc.in), werr: tc.werr}
			var buf [HandshakeLen]byte
			hs, err := Exchange(c, c, ours, tc.peer, buf[:])
			if tc.want == nil {
				if err != nil || hs != theirs {
					t.Fatalf("got %+v %v, want their handshake", hs, err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.werr != nil && !errors.Is(err, tc.werr) {
				t.Errorf("write error %v lost from %v", tc.werr, err)
			}
			if got := bytes.Equal(c.w.Bytes(), AppendHandshake(nil, ours)); got != tc.wrote {
				t.Errorf("sent %x, want our handshake sent: %v", c.w.Bytes(), tc.wrote)
			}
		})
	}
	// With a scratch buffer the exchange does not allocate.
	msg := AppendHandshake(nil, theirs)
	r := bytes.NewReader(msg)
	c := &rw{r: r}
	var buf [HandshakeLen]byte
	if a := testing.AllocsPerRun(100, func() {
		r.Reset(msg)
		c.w.Reset()
		if _, err := Exchange(c, c, ours, nil, buf[:]); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per exchange, want 0", a)
	}
}
