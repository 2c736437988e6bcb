package swarmtest

import (
	"fmt"
	"sort"
	"time"
)

// Profile names a behaviour modelled on a real client (REFERENCE.md §3, §4).
type Profile string

// The profiles. Each one's wire behaviour is described by its Behaviour.
const (
	// Libtorrent: Fast have_all/have_none, otherwise bitfield; no `p`;
	// lt_donthave; 120 s idle timeout.
	Libtorrent Profile = "libtorrent"
	// Transmission: Fast, `p`, `reqq`, `metadata_size`, `upload_only: 0`, PEX.
	Transmission Profile = "transmission"
	// Rtorrent: no Fast; sends nothing when it has nothing; 240 s idle.
	Rtorrent Profile = "rtorrent"
	// LazySeed: a seed whose bitfield leaves some pieces out, then sends
	// haves for them at once.
	LazySeed Profile = "lazy_seed"
	// SuperSeed: a seed in BEP 16 super-seeding that shows have_none and
	// trickles haves; never upload_only.
	SuperSeed Profile = "super_seed"
	// PartialSeed: upload_only (BEP 21) below the threshold, never moves.
	PartialSeed Profile = "partial_seed"
	// AlwaysZero: reports have_none / an empty bitfield forever (fake
	// progress clients).
	AlwaysZero Profile = "always_zero"
	// AcceptClose: accepts the TCP connection and closes it at once.
	AcceptClose Profile = "accept_close"
	// Silent: accepts and never sends a byte.
	Silent Profile = "silent"
	// Garbage: answers with random bytes, like an MSE-encrypted handshake.
	Garbage Profile = "garbage"
	// Refuse: nothing listens on its address.
	Refuse Profile = "refuse"
)

// AllProfiles lists every profile in a stable order.
var AllProfiles = []Profile{Libtorrent, Transmission, Rtorrent, LazySeed, SuperSeed,
	PartialSeed, AlwaysZero, AcceptClose, Silent, Garbage, Refuse}

// Behaviour is what a profile does on the wire.
type Behaviour struct {
	Talks       bool   // completes a BitTorrent handshake
	Extensions  bool   // reserved bit 0x10 of byte 5 and the BEP 10 handshake
	Fast        bool   // reserved bit 0x04 of byte 7 (BEP 6)
	DHT         bool   // reserved bit 0x01 of byte 7
	SendPort    bool   // `p` in the extension handshake
	ReqQ        bool   // `reqq` in the extension handshake
	MetaSize    bool   // `metadata_size` and ut_metadata in `m`
	UploadOnly  int    // -1: no field, else its value
	PEX         bool   // sends one ut_pex message naming swarm peers
	DontHave    bool   // lt_donthave in `m`, sends it on regression
	Lazy        bool   // bitfield leaves pieces out, haves follow at once
	Super       bool   // have_none (or nothing) plus trickled haves
	PeerPrefix  string // Azureus-style peer_id prefix
	Version     string // `v`
	IdleTimeout time.Duration
	KeepAlive   time.Duration
}

var behaviours = map[Profile]Behaviour{
	Libtorrent:   {Talks: true, Extensions: true, Fast: true, DHT: true, ReqQ: true, MetaSize: true, UploadOnly: -1, PEX: true, DontHave: true, PeerPrefix: "-lt20A0-", Version: "libtorrent/2.0.10", IdleTimeout: 120 * time.Second, KeepAlive: 60 * time.Second},
	Transmission: {Talks: true, Extensions: true, Fast: true, SendPort: true, ReqQ: true, MetaSize: true, UploadOnly: 0, PEX: true, PeerPrefix: "-TR3000-", Version: "Transmission 3.00", IdleTimeout: 120 * time.Second, KeepAlive: 100 * time.Second},
	Rtorrent:     {Talks: true, Extensions: true, SendPort: true, ReqQ: true, MetaSize: true, UploadOnly: -1, PeerPrefix: "-lt0D80-", Version: "rtorrent/0.9.8", IdleTimeout: 240 * time.Second, KeepAlive: 120 * time.Second},
	LazySeed:     {Talks: true, Extensions: true, SendPort: true, MetaSize: true, UploadOnly: -1, Lazy: true, PeerPrefix: "-UT2210-", Version: "uTorrent 2.2.1", IdleTimeout: 120 * time.Second, KeepAlive: 60 * time.Second},
	SuperSeed:    {Talks: true, Extensions: true, Fast: true, DHT: true, ReqQ: true, MetaSize: true, UploadOnly: -1, Super: true, PeerPrefix: "-lt20A0-", Version: "libtorrent/2.0.10", IdleTimeout: 120 * time.Second, KeepAlive: 60 * time.Second},
	PartialSeed:  {Talks: true, Extensions: true, Fast: true, SendPort: true, ReqQ: true, MetaSize: true, UploadOnly: 1, PEX: true, PeerPrefix: "-TR3000-", Version: "Transmission 3.00", IdleTimeout: 120 * time.Second, KeepAlive: 100 * time.Second},
	AlwaysZero:   {Talks: true, Extensions: true, Fast: true, ReqQ: true, UploadOnly: -1, PeerPrefix: "-XL0012-", Version: "Xunlei 0.0.1.2", IdleTimeout: 120 * time.Second, KeepAlive: 60 * time.Second},
	AcceptClose:  {},
	Silent:       {IdleTimeout: 120 * time.Second},
	Garbage:      {IdleTimeout: 30 * time.Second},
	Refuse:       {},
}

// Behaviour returns the profile's wire behaviour.
func (p Profile) Behaviour() Behaviour { return behaviours[p] }

// Valid reports whether p is a known profile.
func (p Profile) Valid() bool { _, ok := behaviours[p]; return ok }

// ReportsProgress reports whether a reader can learn this profile's progress.
func (p Profile) ReportsProgress() bool { return behaviours[p].Talks }

// DefaultMix is the profile mix used when Config.Mix is empty: mostly
// leechers, a few of every odd case.
func DefaultMix() map[Profile]float64 {
	return map[Profile]float64{
		Libtorrent: 40, Transmission: 20, Rtorrent: 10, LazySeed: 3, SuperSeed: 2,
		PartialSeed: 5, AlwaysZero: 5, AcceptClose: 4, Silent: 4, Garbage: 4, Refuse: 3,
	}
}

// apportion splits n items over weighted keys by largest remainder, so the
// shares are exact and deterministic.
func apportion[K comparable](n int, keys []K, weight func(K) float64) (map[K]int, error) {
	total := 0.0
	for _, k := range keys {
		w := weight(k)
		if w < 0 {
			return nil, fmt.Errorf("negative weight %v for %v", w, k)
		}
		total += w
	}
	if total <= 0 {
		return nil, fmt.Errorf("weights sum to zero")
	}
	out := make(map[K]int, len(keys))
	type rem struct {
		i int
		r float64
	}
	rs := make([]rem, len(keys))
	used := 0
	for i, k := range keys {
		exact := float64(n) * weight(k) / total
		out[k] = int(exact)
		used += int(exact)
		rs[i] = rem{i, exact - float64(int(exact))}
	}
	sort.SliceStable(rs, func(a, b int) bool { return rs[a].r > rs[b].r })
	for i := 0; used < n; i++ {
		out[keys[rs[i%len(rs)].i]]++
		used++
	}
	return out, nil
}
