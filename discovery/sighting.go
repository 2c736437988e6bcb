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
}
