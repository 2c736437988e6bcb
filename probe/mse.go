package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/mse"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// Message Stream Encryption (BEP 8, "MSE/PE"): the obfuscated handshake many clients
// prefer or require. The cipher and handshake are anacrolix/torrent's mse package; this
// file decides when to use it and wraps its stream as a net.Conn.

// EncryptionPolicy is how outgoing sessions use MSE (the `peer.encryption` key).
type EncryptionPolicy string

// The encryption policies. Incoming connections are accepted either way whatever the
// policy: a measurement wants every peer that calls.
const (
	PreferPlaintext  EncryptionPolicy = "prefer_plaintext" // plaintext first, MSE when the peer hangs up on it
	PreferEncrypted  EncryptionPolicy = "prefer_encrypted" // MSE first, plaintext when the peer does not speak it
	RequireEncrypted EncryptionPolicy = "require"          // MSE only
	DisableEncrypted EncryptionPolicy = "disable"          // plaintext only
)

// DefaultEncryption is the default outgoing policy: most peers take plaintext, and those
// that insist on MSE hang up at once, so trying plaintext first costs them one round trip.
const DefaultEncryption = PreferPlaintext

// Valid reports whether p is one of the policies.
func (p EncryptionPolicy) Valid() bool {
	switch p {
	case PreferPlaintext, PreferEncrypted, RequireEncrypted, DisableEncrypted:
		return true
	}
	return false
}

// Encryption is what a session's stream used. Its String form is the `encryption` label.
type Encryption uint8

// The encryptions of a session.
const (
	EncryptionNone   Encryption = iota + 1 // plain BitTorrent, no MSE handshake
	EncryptionHeader                       // MSE handshake, then plaintext (crypto_select 0x01)
	EncryptionRC4                          // MSE handshake, then RC4 on the whole stream
)

// Encryptions lists every Encryption, for pre-creating metric series.
var Encryptions = []Encryption{EncryptionNone, EncryptionHeader, EncryptionRC4}

func (e Encryption) String() string {
	switch e {
	case EncryptionNone:
		return "none"
	case EncryptionHeader:
		return "header"
	case EncryptionRC4:
		return "rc4"
	}
	return "unknown"
}

func encryptionOf(m mse.CryptoMethod) Encryption {
	if m == mse.CryptoMethodRC4 {
		return EncryptionRC4
	}
	return EncryptionHeader
}

// errMSE marks a failed MSE handshake: the peer did not speak MSE, or not with our keys.
var errMSE = errors.New("MSE handshake failed")

// streamConn is a connection whose reads and writes go through an MSE stream; deadlines
// and addresses are the underlying connection's.
type streamConn struct {
	net.Conn
	rw     io.ReadWriter
	broken atomic.Bool
}

func (c *streamConn) Read(b []byte) (int, error) { return c.rw.Read(b) }

// Write fails for good after a short write: mse's RC4 writer drops its cipher then (the
// stream position is lost) and would panic on the next Write, which a held connection's
// keep-alive could try before the session sees the connection end.
func (c *streamConn) Write(b []byte) (int, error) {
	if c.broken.Load() {
		return 0, errBrokenStream
	}
	n, err := c.rw.Write(b)
	if err != nil || n != len(b) {
		c.broken.Store(true)
	}
	return n, err
}

var errBrokenStream = fmt.Errorf("MSE stream: %w after a failed write", net.ErrClosed)

// initiateMSE runs the initiator's MSE handshake on conn for torrent (the info hash is the
// shared secret, SKEY), offering plaintext and RC4 and letting the peer choose. It is
// bounded by deadline; on success the session runs over the returned connection.
func initiateMSE(conn net.Conn, torrent metainfo.Hash, deadline time.Time) (net.Conn, Encryption, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, 0, err
	}
	// The context is not used to end the handshake (a cancelled session closes conn, which
	// ends it); the deadline bounds it.
	rw, method, err := mse.InitiateHandshakeContext(context.Background(), conn, torrent[:], nil, mse.AllSupportedCrypto)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errMSE, err)
	}
	if method == mse.CryptoMethodPlaintext {
		return conn, EncryptionHeader, nil
	}
	return &streamConn{Conn: conn, rw: rw}, encryptionOf(method), nil
}

// protocolPrefix starts every plaintext BitTorrent handshake.
const protocolPrefix = "\x13BitTorrent protocol"

// sniffResult is what acceptStream learned about an incoming connection.
type sniffResult struct {
	conn net.Conn
	enc  Encryption
}

// Why acceptStream turned a connection away.
var (
	errMSEUnknownInfoHash = errors.New("MSE handshake for no watched torrent")
	errSniff              = errors.New("connection closed or timed out before its first bytes")
)

// acceptStream reads the first bytes of an incoming connection: a plaintext handshake goes
// on as it is; anything else is taken for an MSE handshake, answered with the watched info
// hashes as the secret keys (skeys), and the session runs over the decrypted stream. The
// caller's read deadline bounds it; the library enforces the spec's padding limits (512
// bytes before the synchronisation hashes).
func acceptStream(conn net.Conn, skeys func() []metainfo.Hash) (sniffResult, error) {
	var head [len(protocolPrefix)]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return sniffResult{}, fmt.Errorf("%w: %w", errSniff, err)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{io.MultiReader(bytes.NewReader(head[:]), conn), conn}
	if string(head[:]) == protocolPrefix {
		return sniffResult{conn: &streamConn{Conn: conn, rw: rw}, enc: EncryptionNone}, nil
	}
	if skeys == nil {
		return sniffResult{}, fmt.Errorf("%w: %w", wire.ErrNotBitTorrent, errMSE)
	}
	hashes := skeys()
	iter := func(yield func(skey []byte) bool) {
		for i := range hashes {
			if !yield(hashes[i][:]) {
				return
			}
		}
	}
	ret, method, err := mse.ReceiveHandshake(context.Background(), rw, iter, mse.DefaultCryptoSelector)
	switch {
	case errors.Is(err, mse.ErrNoSecretKeyMatch):
		return sniffResult{}, errMSEUnknownInfoHash
	case err != nil:
		return sniffResult{}, fmt.Errorf("%w: %w", errMSE, err)
	}
	return sniffResult{conn: &streamConn{Conn: conn, rw: ret}, enc: encryptionOf(method)}, nil
}
