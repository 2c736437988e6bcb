package tracker

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

// Event is the announce event.
//
//go:generate go tool stringer -type=Event -linecomment
type Event uint8

// Announce events (values are the BEP 15 codes).
const (
	EventNone      Event = 0 // none
	EventCompleted Event = 1 // completed
	EventStarted   Event = 2 // started
	EventStopped   Event = 3 // stopped
)

// AnnounceRequest is one announce. Uploaded and Downloaded are always 0 and Left is the
// torrent's length: btda announces as a leecher that has nothing.
type AnnounceRequest struct {
	Hash      metainfo.Hash
	PeerID    [20]byte
	Key       uint32
	Port      uint16
	Left      int64
	Event     Event
	NumWant   int32
	TrackerID string // the `tracker id` a tracker gave before (HTTP only)
}

// AnnounceResponse is a decoded announce reply. Zero durations mean "not sent"; counts
// are -1 when the tracker did not send them.
type AnnounceResponse struct {
	Interval    time.Duration
	MinInterval time.Duration
	TrackerID   string
	Warning     string
	Seeders     int64
	Leechers    int64
	Peers       []netip.AddrPort
}

// ScrapeResponse is one torrent's scrape figures.
type ScrapeResponse struct {
	Seeders    int64 // complete
	Leechers   int64 // incomplete
	Downloaded int64 // downloaded (completed)
}

// Result is the outcome of one announce round (and the scrapes that follow, if any) against
// one tracker URL. A hybrid torrent is announced under each of its wire hashes (v1 and
// truncated v2); Hashes holds each hash's requests, and the fields above it merge them:
// Announce by mergeAnnounces (peers of both swarms, each once), Scrape by mergeScrapes (the
// larger figures), AnnounceErr and ScrapeErr set only when every hash's request failed.
// Announce and Scrape are nil when those requests failed or were not made.
type Result struct {
	URL         string        // as configured; may carry a passkey: print Redact(URL)
	Tracker     string        // metric label (host name)
	Torrent     metainfo.Hash // the torrent's first hash (its ID)
	Event       Event         // started when any hash announced started
	Announce    *AnnounceResponse
	AnnounceErr error
	Scrape      *ScrapeResponse
	ScrapeErr   error // nil with Scrape == nil means no scrape was attempted
	Hashes      []HashResult
}

// HashResult is one wire hash's part of a Result.
type HashResult struct {
	Hash        metainfo.Hash
	Announce    *AnnounceResponse
	AnnounceErr error
	Scrape      *ScrapeResponse
	ScrapeErr   error
}

// mergeScrapes combines the scrapes of one torrent's hashes: each figure is the larger. A
// hybrid's swarm is split in two at the tracker (v1-only clients under the v1 hash, v2-only
// ones under the v2 hash, v2-capable ones under both), so a sum would count the
// v2-capable peers twice; the larger figure is the lower bound that counts nobody twice.
func mergeScrapes(rs []*ScrapeResponse) *ScrapeResponse {
	if len(rs) == 1 {
		return rs[0]
	}
	m := &ScrapeResponse{Seeders: -1, Leechers: -1, Downloaded: -1}
	for _, r := range rs {
		m.Seeders = max(m.Seeders, r.Seeders)
		m.Leechers = max(m.Leechers, r.Leechers)
		m.Downloaded = max(m.Downloaded, r.Downloaded)
	}
	return m
}

// unknownLeft is `left` for a torrent of unknown length (a magnet without metadata):
// never 0, which would present btda as a seed; 16 KiB as libtorrent sends.
const unknownLeft = 16 << 10

func left(t discovery.TorrentInfo) int64 {
	if t.Length <= 0 {
		return unknownLeft
	}
	return t.Length
}

// NewPeerID returns "-BD0001-" followed by 12 random alphanumerics: btda's honest
// Azureus-style client prefix.
func NewPeerID() [20]byte {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var id [20]byte
	copy(id[:], "-BD0001-")
	var r [12]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on supported platforms
	for i, b := range r {
		id[8+i] = alphabet[int(b)%len(alphabet)]
	}
	return id
}

// NewKey returns a random announce key.
func NewKey() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
