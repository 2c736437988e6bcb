package metainfo

import (
	"encoding/hex"
	"fmt"
)

// Hash is the 20-byte info hash that peers put in the BEP 3 handshake: the SHA-1 of a v1
// info dictionary, or the first 20 bytes of a v2 SHA-256 (BEP 52). btda keys every torrent
// by the Hash peers use on the wire.
type Hash [20]byte

// HashV2 is the full SHA-256 info hash of a v2 or hybrid torrent (BEP 52).
type HashV2 [32]byte

// String returns the lower-case hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zero bytes (no hash).
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns the lower-case hex form.
func (h HashV2) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zero bytes (no hash).
func (h HashV2) IsZero() bool { return h == HashV2{} }

// Truncate returns the 20-byte form v2 peers use on the wire.
func (h HashV2) Truncate() (t Hash) {
	copy(t[:], h[:20])
	return t
}

// ParseHash decodes a 40-character hex info hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 40 {
		return h, fmt.Errorf("info hash %q: want 40 hex characters, got %d", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("info hash %q: %w", s, err)
	}
	return h, nil
}
