package daemon

import (
	"testing"

	"github.com/btda/btda/discovery/metainfo"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		k, n    uint64
		display string
	}{
		{"0/1", true, 0, 1, "0/1"},
		{"1/2", true, 1, 2, "1/2"},
		{"3/4", true, 3, 4, "3/4"},
		{"2/2", false, 0, 0, ""},
		{"0/0", false, 0, 0, ""},
		{"-1/2", false, 0, 0, ""},
		{"1/2x", false, 0, 0, ""},
		{" 1/2", false, 0, 0, ""},
		{"01/2", false, 0, 0, ""},
		{"a/b", false, 0, 0, ""},
	}
	for _, tt := range tests {
		sh, err := ParseShard(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseShard(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (sh.k != tt.k || sh.n != tt.n || sh.String() != tt.display) {
			t.Errorf("ParseShard(%q) = %+v (%s)", tt.in, sh, sh)
		}
	}
}

func TestShardKeep(t *testing.T) {
	var h metainfo.Hash
	h[7] = 5 // big-endian uint64 of the first 8 bytes: 5
	tests := []struct {
		shard Shard
		want  bool
	}{
		{Shard{}, true},
		{Shard{0, 1}, true},
		{Shard{1, 2}, true},
		{Shard{0, 2}, false},
		{Shard{2, 3}, true},
		{Shard{1, 3}, false},
	}
	for _, tt := range tests {
		if got := tt.shard.Keep(h); got != tt.want {
			t.Errorf("%s.Keep = %v, want %v", tt.shard, got, tt.want)
		}
	}
	// Every hash lands in exactly one of n shards.
	for i := range 64 {
		var x metainfo.Hash
		x[0], x[7] = byte(i*37), byte(i)
		n := 0
		for k := range uint64(5) {
			if (Shard{k, 5}).Keep(x) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("hash %x kept by %d of 5 shards", x, n)
		}
	}
}
