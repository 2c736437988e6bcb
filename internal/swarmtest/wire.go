package swarmtest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/bencode"
)

// Peer wire message ids (BEP 3, BEP 6, BEP 10).
const (
	msgChoke         = 0
	msgUnchoke       = 1
	msgInterested    = 2
	msgNotInterested = 3
	msgHave          = 4
	msgBitfield      = 5
	msgRequest       = 6
	msgPiece         = 7
	msgCancel        = 8
	msgPort          = 9
	msgHaveAll       = 0x0E
	msgHaveNone      = 0x0F
	msgReject        = 0x10
	msgAllowedFast   = 0x11
	msgExtended      = 20
)

const (
	protocolString = "BitTorrent protocol"
	handshakeLen   = 68
	// maxMessage bounds what a peer accepts from a reader: the largest legal
	// thing a reader sends is a ut_metadata request or a block request, so
	// 128 KiB leaves ample room while refusing absurd lengths.
	maxMessage = 128 << 10
)

// Reserved bits (byte index, mask).
const (
	reservedExt  = 5
	maskExt      = 0x10
	reservedFast = 7
	maskFast     = 0x04
	maskDHT      = 0x01
)

type handshake struct {
	reserved [8]byte
	infoHash [20]byte
	peerID   [20]byte
}

func (h handshake) fast() bool       { return h.reserved[reservedFast]&maskFast != 0 }
func (h handshake) extensions() bool { return h.reserved[reservedExt]&maskExt != 0 }

func (h handshake) marshal() []byte {
	b := make([]byte, 0, handshakeLen)
	b = append(b, byte(len(protocolString)))
	b = append(b, protocolString...)
	b = append(b, h.reserved[:]...)
	b = append(b, h.infoHash[:]...)
	return append(b, h.peerID[:]...)
}

var errNotBitTorrent = errors.New("not a BitTorrent handshake")

// readHandshake reads the 48 bytes up to and including the info hash, then
// the peer id; callers may answer between the two (BEP 3 allows it).
func readHandshake(r io.Reader) (handshake, error) {
	var b [handshakeLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return handshake{}, fmt.Errorf("read handshake: %w", err)
	}
	if b[0] != byte(len(protocolString)) || string(b[1:20]) != protocolString {
		return handshake{}, errNotBitTorrent
	}
	var h handshake
	copy(h.reserved[:], b[20:28])
	copy(h.infoHash[:], b[28:48])
	copy(h.peerID[:], b[48:68])
	return h, nil
}

type message struct {
	keepAlive bool
	id        byte
	payload   []byte
}

// readMessage reads one length-prefixed message, refusing oversized ones.
func readMessage(r *bufio.Reader) (message, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return message{}, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 {
		return message{keepAlive: true}, nil
	}
	if n > maxMessage {
		return message{}, fmt.Errorf("message length %d exceeds %d", n, maxMessage)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return message{}, fmt.Errorf("read message body: %w", err)
	}
	return message{id: buf[0], payload: buf[1:]}, nil
}

func appendMessage(b []byte, id byte, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(payload)))
	b = append(b, id)
	return append(b, payload...)
}

func appendHave(b []byte, piece int) []byte {
	b = binary.BigEndian.AppendUint32(b, 5)
	b = append(b, msgHave)
	return binary.BigEndian.AppendUint32(b, uint32(piece))
}

func appendExtended(b []byte, extID byte, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(2+len(payload)))
	b = append(b, msgExtended, extID)
	return append(b, payload...)
}

// encodePEX builds a ut_pex payload: compact IPv4 peers in added, IPv6 in added6 (only
// when any).
func encodePEX(added, flags, added6, flags6 []byte) []byte {
	d := map[string]any{"added": string(added), "added.f": string(flags)}
	if len(added6) > 0 {
		d["added6"], d["added6.f"] = string(added6), string(flags6)
	}
	out, _ := bencode.EncodeBytes(d)
	return out
}
