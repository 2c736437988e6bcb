package daemon

import (
	"encoding/binary"
	"fmt"

	"github.com/btda/btda/discovery/metainfo"
)

// Shard selects the torrents one btda instance watches when several split a watch list
// (--shard k/n): those whose primary info hash, read as a big-endian integer, is k modulo
// n. The zero Shard keeps every torrent.
type Shard struct{ k, n uint64 }

// ParseShard reads "k/n" with 0 ≤ k < n.
func ParseShard(s string) (Shard, error) {
	var sh Shard
	if _, err := fmt.Sscanf(s, "%d/%d", &sh.k, &sh.n); err != nil || fmt.Sprintf("%d/%d", sh.k, sh.n) != s {
		return sh, fmt.Errorf("%q is not k/n", s)
	}
	if sh.n == 0 || sh.k >= sh.n {
		return sh, fmt.Errorf("%q: want 0 ≤ k < n", s)
	}
	return sh, nil
}

// String is the k/n form ("0/1" for the zero Shard).
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.k, max(s.n, 1)) }

// Keep reports whether the torrent with primary hash h belongs to this shard. The first
// eight bytes of a SHA-1/SHA-256 are uniform, so shards are balanced.
func (s Shard) Keep(h metainfo.Hash) bool {
	return s.n <= 1 || binary.BigEndian.Uint64(h[:8])%s.n == s.k
}
