package swarmtest

// An independent, minimal peer-wire reader for the tests. It deliberately
// shares no code with the peer side (no readMessage, no handshake type) so
// that a bug in one is not mirrored in the other.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/bencode"
)

type testReader struct {
	t        *testing.T
	conn     net.Conn
	npieces  int
	reserved [8]byte
	peerID   [20]byte
	have     []bool
	count    int
	first    string // first progress message kind: bitfield, have_all, have_none, have
	ext      map[string]any
	extM     map[string]int
	pex      []netip.AddrPort
	meta     map[int][]byte
	metaRej  int
	keeps    int
	msgs     int
	closed   bool
	deferExt bool // dialReader leaves the extension handshake to the test
}

const (
	rdExtMeta = 3
	rdExtPEX  = 4
	rdExtDont = 5
)

// dialReader connects to addr and does the BEP 3 handshake, then the BEP 10
// handshake if the peer supports it.
func dialReader(t *testing.T, addr netip.AddrPort, hash [20]byte, npieces int, fast bool) (*testReader, error) {
	t.Helper()
	return dialReaderT(t, addr, hash, npieces, fast, true)
}

func dialReaderT(t *testing.T, addr netip.AddrPort, hash [20]byte, npieces int, fast, cleanup bool, opts ...func(*testReader)) (r *testReader, err error) {
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	r = &testReader{t: t, conn: c, npieces: npieces, have: make([]bool, npieces), meta: map[int][]byte{}}
	for _, o := range opts {
		o(r)
	}
	if cleanup {
		t.Cleanup(func() { c.Close() })
	} else {
		defer func() {
			if err != nil {
				c.Close()
			}
		}()
	}
	hs := []byte{19}
	hs = append(hs, "BitTorrent protocol"...)
	res := make([]byte, 8)
	res[5] = 0x10
	if fast {
		res[7] = 0x04
	}
	hs = append(hs, res...)
	hs = append(hs, hash[:]...)
	hs = append(hs, "-RD0001-abcdefghijkl"...)
	if _, err := c.Write(hs); err != nil {
		return r, err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 68)
	if _, err := io.ReadFull(c, got); err != nil {
		return r, fmt.Errorf("read handshake: %w", err)
	}
	if !bytes.Equal(got[:20], hs[:20]) {
		return r, fmt.Errorf("bad protocol string %q", got[:20])
	}
	if !bytes.Equal(got[28:48], hash[:]) {
		return r, fmt.Errorf("info hash %x, want %x", got[28:48], hash)
	}
	copy(r.reserved[:], got[20:28])
	copy(r.peerID[:], got[48:68])
	if r.reserved[5]&0x10 != 0 && !r.deferExt {
		r.sendExt()
	}
	return r, nil
}

// sendExt sends the reader's BEP 10 handshake.
func (r *testReader) sendExt() error {
	c := r.conn
	{
		d, _ := bencode.EncodeBytes(map[string]any{
			"m": map[string]int{"ut_metadata": rdExtMeta, "ut_pex": rdExtPEX, "lt_donthave": rdExtDont},
			"v": "test reader",
		})
		msg := binary.BigEndian.AppendUint32(nil, uint32(2+len(d)))
		msg = append(msg, 20, 0)
		if _, err := c.Write(append(msg, d...)); err != nil {
			return err
		}
	}
	return nil
}

// next reads one message (with a real-time deadline) and applies it.
func (r *testReader) next(deadline time.Time) error {
	_ = r.conn.SetReadDeadline(deadline)
	var lb [4]byte
	if _, err := io.ReadFull(r.conn, lb[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			r.closed = true
		}
		return err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 {
		r.keeps++
		return nil
	}
	if n > 1<<20 {
		return fmt.Errorf("message of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.conn, b); err != nil {
		return err
	}
	r.msgs++
	id, pl := b[0], b[1:]
	setFirst := func(k string) {
		if r.first == "" {
			r.first = k
		}
	}
	switch id {
	case 4: // have
		if len(pl) != 4 {
			return fmt.Errorf("have of %d bytes", len(pl))
		}
		i := int(binary.BigEndian.Uint32(pl))
		if i >= r.npieces {
			return fmt.Errorf("have %d >= %d pieces", i, r.npieces)
		}
		setFirst("have")
		if !r.have[i] {
			r.have[i] = true
			r.count++
		}
	case 5: // bitfield
		if len(pl) != (r.npieces+7)/8 {
			return fmt.Errorf("bitfield of %d bytes for %d pieces", len(pl), r.npieces)
		}
		if r.first != "" {
			return fmt.Errorf("bitfield after %s", r.first)
		}
		setFirst("bitfield")
		for i := 0; i < len(pl)*8; i++ {
			set := pl[i/8]&(0x80>>(i%8)) != 0
			if i >= r.npieces {
				if set {
					return fmt.Errorf("spare bit %d set", i)
				}
				continue
			}
			if set && !r.have[i] {
				r.have[i] = true
				r.count++
			}
		}
	case 0x0E:
		setFirst("have_all")
		for i := range r.have {
			r.have[i] = true
		}
		r.count = r.npieces
	case 0x0F:
		setFirst("have_none")
	case 20:
		if len(pl) < 1 {
			return fmt.Errorf("empty extended message")
		}
		return r.extended(pl[0], pl[1:])
	}
	return nil
}

func (r *testReader) extended(id byte, pl []byte) error {
	switch id {
	case 0:
		var d map[string]any
		if err := bencode.DecodeBytes(pl, &d); err != nil {
			return fmt.Errorf("extension handshake: %w", err)
		}
		r.ext = d
		r.extM = map[string]int{}
		if m, ok := d["m"].(map[string]any); ok {
			for k, v := range m {
				if n, ok := v.(int64); ok {
					r.extM[k] = int(n)
				}
			}
		}
	case rdExtDont:
		if len(pl) != 4 {
			return fmt.Errorf("lt_donthave of %d bytes", len(pl))
		}
		i := int(binary.BigEndian.Uint32(pl))
		if i >= r.npieces {
			return fmt.Errorf("lt_donthave %d out of range", i)
		}
		if r.have[i] {
			r.have[i] = false
			r.count--
		}
	case rdExtPEX:
		var d struct {
			Added string `bencode:"added"`
		}
		if err := bencode.DecodeBytes(pl, &d); err != nil {
			return fmt.Errorf("ut_pex: %w", err)
		}
		for a := []byte(d.Added); len(a) >= 6; a = a[6:] {
			r.pex = append(r.pex, netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), binary.BigEndian.Uint16(a[4:6])))
		}
	case rdExtMeta:
		// The dict is followed by raw data: find its end by decoding with
		// a decoder that reports how much it consumed.
		dec := bencode.NewDecoder(bytes.NewReader(pl))
		var d struct {
			MsgType int `bencode:"msg_type"`
			Piece   int `bencode:"piece"`
			Total   int `bencode:"total_size"`
		}
		if err := dec.Decode(&d); err != nil {
			return fmt.Errorf("ut_metadata: %w", err)
		}
		switch d.MsgType {
		case 1:
			r.meta[d.Piece] = pl[dec.BytesParsed():]
		case 2:
			r.metaRej++
		}
	}
	return nil
}

// readUntil reads until cond holds; it fails after a generous deadline.
func (r *testReader) readUntil(cond func() bool, what string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if err := r.next(deadline); err != nil {
			r.t.Fatalf("waiting for %s: %v (count %d, first %q)", what, err, r.count, r.first)
		}
	}
}

// quiet reads for d and fails on any progress change; keep-alives are fine.
func (r *testReader) quiet(d time.Duration) {
	r.t.Helper()
	before := r.count
	deadline := time.Now().Add(d)
	for {
		err := r.next(deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			r.t.Fatalf("during quiet window: %v", err)
		}
		if r.count != before {
			r.t.Fatalf("progress moved from %d to %d without the clock moving", before, r.count)
		}
	}
}

func (r *testReader) send(b []byte) {
	r.t.Helper()
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *testReader) requestMetadata(piece int) {
	d, _ := bencode.EncodeBytes(map[string]any{"msg_type": 0, "piece": piece})
	msg := binary.BigEndian.AppendUint32(nil, uint32(2+len(d)))
	msg = append(msg, 20, byte(r.extM["ut_metadata"]))
	r.send(append(msg, d...))
}
