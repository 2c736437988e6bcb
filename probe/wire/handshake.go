package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Protocol is the BEP 3 protocol string.
const Protocol = "BitTorrent protocol"

// HandshakeLen is the length of a BEP 3 handshake.
const HandshakeLen = 1 + len(Protocol) + 8 + 20 + 20

// Reserved bits btda uses.
const (
	reservedExtByte  = 5
	reservedExtBit   = 0x10 // BEP 10 extension protocol
	reservedFastByte = 7
	reservedFastBit  = 0x04 // BEP 6 Fast extension
	reservedDHTBit   = 0x01 // BEP 5 DHT (byte 7)
)

// Reserved is the 8-byte reserved field of a handshake.
type Reserved [8]byte

// OurReserved is what btda sends: extension protocol, Fast and DHT.
var OurReserved = Reserved{0, 0, 0, 0, 0, reservedExtBit, 0, reservedFastBit | reservedDHTBit}

// Extended reports the BEP 10 extension-protocol bit.
func (r Reserved) Extended() bool { return r[reservedExtByte]&reservedExtBit != 0 }

// Fast reports the BEP 6 Fast-extension bit.
func (r Reserved) Fast() bool { return r[reservedFastByte]&reservedFastBit != 0 }

// DHT reports the BEP 5 DHT bit.
func (r Reserved) DHT() bool { return r[reservedFastByte]&reservedDHTBit != 0 }

// Handshake is a BEP 3 handshake.
type Handshake struct {
	Reserved Reserved
	InfoHash [20]byte // a metainfo.Hash; plain bytes keep wire free of other packages
	PeerID   [20]byte
}

// ErrNotBitTorrent is returned by ReadHandshake when the first 20 bytes are not the BEP 3
// protocol header: garbage, another protocol, or an MSE-encrypted handshake.
var ErrNotBitTorrent = errors.New("not a BitTorrent handshake (bad protocol header)")

var header = append([]byte{byte(len(Protocol))}, Protocol...)

// AppendHandshake appends h in wire form to dst.
func AppendHandshake(dst []byte, h Handshake) []byte {
	dst = append(dst, header...)
	dst = append(dst, h.Reserved[:]...)
	dst = append(dst, h.InfoHash[:]...)
	return append(dst, h.PeerID[:]...)
}

// ReadHandshake reads one handshake from r. It checks the 20-byte protocol header before
// waiting for the rest, so garbage is recognised as soon as it arrives. buf, if at least
// HandshakeLen bytes, is used as scratch space so the call does not allocate.
func ReadHandshake(r io.Reader, buf []byte) (Handshake, error) {
	var h Handshake
	if len(buf) < HandshakeLen {
		buf = make([]byte, HandshakeLen)
	}
	buf = buf[:HandshakeLen]
	if _, err := io.ReadFull(r, buf[:len(header)]); err != nil {
		return h, err
	}
	if !bytes.Equal(buf[:len(header)], header) {
		return h, ErrNotBitTorrent
	}
	if _, err := io.ReadFull(r, buf[len(header):]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, fmt.Errorf("handshake: %w", err)
	}
	b := buf[len(header):]
	copy(h.Reserved[:], b[:8])
	copy(h.InfoHash[:], b[8:28])
	copy(h.PeerID[:], b[28:48])
	return h, nil
}

// Errors of Exchange that are not the connection's own.
var (
	// ErrInfoHashMismatch: the peer's handshake names another torrent than ours.
	ErrInfoHashMismatch = errors.New("peer answered for another info hash")
	// ErrSendHandshake wraps the write error when sending our handshake failed.
	ErrSendHandshake = errors.New("sending our handshake")
)

// Exchange runs the BEP 3 handshake on a connection: it sends ours to w, then reads the
// peer's from r (which may buffer w's connection) and checks that it names ours.InfoHash.
// We always send first: an outgoing peer may wait for our info hash before answering. For
// an incoming connection the caller has already read the peer's handshake (to route it)
// and passes it as peer; Exchange then only answers and checks it. buf, if at least
// HandshakeLen bytes, is scratch space so the call does not allocate.
//
// A failed write is wrapped with ErrSendHandshake, a foreign info hash is
// ErrInfoHashMismatch; other errors are ReadHandshake's. The caller sets the deadlines.
func Exchange(w io.Writer, r io.Reader, ours Handshake, peer *Handshake, buf []byte) (Handshake, error) {
	if len(buf) < HandshakeLen {
		buf = make([]byte, HandshakeLen)
	}
	if _, err := w.Write(AppendHandshake(buf[:0], ours)); err != nil {
		return Handshake{}, fmt.Errorf("%w: %w", ErrSendHandshake, err)
	}
	var hs Handshake
	if peer != nil {
		hs = *peer
	} else {
		var err error
		if hs, err = ReadHandshake(r, buf); err != nil {
			return hs, err
		}
	}
	if hs.InfoHash != ours.InfoHash {
		return hs, fmt.Errorf("%w: %x", ErrInfoHashMismatch, hs.InfoHash)
	}
	return hs, nil
}
