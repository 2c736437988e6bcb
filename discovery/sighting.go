// Package discovery finds the peers of watched torrents: it imports torrents (metainfo,
// magnets), asks trackers and the DHT, and turns every peer address it learns into a
// Sighting for the scheduler.
package discovery

import (
	"net/netip"

	"github.com/btda/btda/discovery/metainfo"
)

// Source says where a peer address came from. Its String form is the `source` label.
//
//go:generate go tool stringer -type=Source -linecomment
type Source uint8

// The sources of peer addresses. Zero is deliberately invalid.
const (
	SourceTracker  Source = iota + 1 // tracker
	SourceDHT                        // dht
	SourcePEX                        // pex
	SourceIncoming                   // incoming
	// SourceMagnet: a magnet link's x.pe peer
	SourceMagnet // magnet
)

// Sources lists every valid Source, for pre-creating metric series.
var Sources = []Source{SourceTracker, SourceDHT, SourcePEX, SourceIncoming, SourceMagnet}

// Sighting is one peer address learned by one source for one torrent. Trackers and the DHT
// send theirs into one channel; the daemon reads it and passes every sighting (those, PEX
// peers from probe sessions and a magnet's x.pe peers alike) through one filter stage (ID
// rewrite, shard, pending-magnet split) to the scheduler. The scheduler's clock times it.
type Sighting struct {
	Torrent metainfo.Hash // the torrent's wire hash (v1, or truncated v2)
	Addr    netip.AddrPort
	Source  Source
	Hints   Hints // how the source says the peer is best reached (PEX flags); 0: no hint
}

// Hints are what a source says about how to reach a peer. The values are the BEP 11
// `added.f` bits btda uses, so PEX flags convert by masking with HintsMask.
type Hints uint8

// The hints btda acts on.
const (
	HintEncryption Hints = 0x01 // the peer prefers encryption: open with an MSE handshake
	HintUTP        Hints = 0x04 // the peer supports uTP: dial uTP first

	HintsMask = HintEncryption | HintUTP

	// HintOtherHash: the peer was found under the torrent's other wire hash (a hybrid's
	// truncated v2 hash when its ID is the v1 hash, or the reverse), not under its ID, so
	// the handshake uses that hash: a v2-only client knows no other (libtorrent dials the
	// peers it learned under the v2 hash with it). The daemon's route sets it; once set
	// for a peer it stays.
	HintOtherHash Hints = 0x80
)
