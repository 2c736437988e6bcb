package main

import (
	"encoding/binary"
	"fmt"

	"github.com/btda/btda/discovery/metainfo"
)

// shard selects the torrents one btda instance watches when several split a watch list
// (--shard k/n): those whose info hash, read as a big-endian integer, is k modulo n.
type shard struct{ k, n uint64 }

func parseShard(s string) (shard, error) {
	var sh shard
	if _, err := fmt.Sscanf(s, "%d/%d", &sh.k, &sh.n); err != nil || fmt.Sprintf("%d/%d", sh.k, sh.n) != s {
		return sh, fmt.Errorf("%q is not k/n", s)
	}
	if sh.n == 0 || sh.k >= sh.n {
		return sh, fmt.Errorf("%q: want 0 ≤ k < n", s)
	}
	return sh, nil
}

// keep reports whether the torrent with primary hash h belongs to this shard. The first
// eight bytes of a SHA-1/SHA-256 are uniform, so shards are balanced.
func (s shard) keep(h metainfo.Hash) bool {
	return s.n <= 1 || binary.BigEndian.Uint64(h[:8])%s.n == s.k
}
