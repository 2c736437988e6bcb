// Package status holds the views of a running btda and of its store that the HTTP API
// serves, the status pages render, and `btda export` and `btda report` read: one JSON
// schema for all of them, converted here from the store's records.
package status

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

// Torrent is one watched torrent (GET /api/v1/torrents).
type Torrent struct {
	InfoHash    string `json:"infohash"` // the registry ID: the v1 hash, or the truncated v2 hash
	InfoHashV2  string `json:"infohash_v2,omitempty"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`  // v1, v2, hybrid, magnet
	State       string `json:"state"` // active, pending_metadata
	Origin      string `json:"origin,omitempty"`
	Pieces      int    `json:"pieces"`
	PieceLength int64  `json:"piece_length"`

	Peers        uint64 `json:"peers"`         // peer identities observed (stored)
	Seeds        uint64 `json:"seeds"`         // identities first seen complete
	PartialSeeds uint64 `json:"partial_seeds"` // identities that announced upload_only below the threshold
	Confirmed    uint64 `json:"confirmed_downloads"`

	// Sightings counts the peer addresses each source reported for the torrent since start
	// (repeats included): trackers, dht, pex, incoming, magnet.
	Sightings map[string]uint64 `json:"sightings_by_source"`
	Scrapes   []Scrape          `json:"scrapes"` // the trackers' last scrape figures
}

// Scrape is one tracker's last scrape of one torrent.
type Scrape struct {
	Tracker    string `json:"tracker"`
	Seeders    int64  `json:"seeders"`
	Leechers   int64  `json:"leechers"`
	Downloaded int64  `json:"downloaded"`
}

// TorrentDetail is GET /api/v1/torrents/{infohash}.
type TorrentDetail struct {
	Torrent
	ConfirmedByCountry []CountryCount `json:"confirmed_by_country"`
	// Progress counts the stored peers of the torrent by their last progress, in tenths
	// (bin i holds [i/10, (i+1)/10); bin 10 holds complete peers).
	Progress [11]uint64 `json:"progress_histogram"`
	Trackers []Tracker  `json:"trackers"` // the torrent's tracker hosts' last results
	DHT      *DHT       `json:"dht,omitempty"`
}

// CountryCount is the confirmed downloads of one country.
type CountryCount struct {
	Country   string `json:"country"`
	Continent string `json:"continent"`
	Confirmed uint64 `json:"confirmed_downloads"`
}

// Sources is GET /api/v1/sources: the peer sources' health.
type Sources struct {
	Trackers []Tracker `json:"trackers"`
	DHT      *DHT      `json:"dht"` // nil when the DHT is off
}

// Tracker is one tracker host.
type Tracker struct {
	Host            string            `json:"host"`
	LastSuccess     time.Time         `json:"last_success,omitzero"`
	IntervalSeconds float64           `json:"interval_seconds"`
	Announces       uint64            `json:"announces"`
	Scrapes         uint64            `json:"scrapes"`
	PeersReceived   uint64            `json:"peers_received"`
	Failures        map[string]uint64 `json:"failures_by_reason"` // announce and scrape failures, non-zero reasons only
}

// DHT is the embedded DHT node's health.
type DHT struct {
	Nodes         uint64            `json:"routing_table_nodes"`
	GoodNodes     uint64            `json:"routing_table_good_nodes"`
	LastSuccess   time.Time         `json:"last_success,omitzero"`
	Lookups       uint64            `json:"lookups"`
	Failures      map[string]uint64 `json:"failures_by_reason"`
	PeersReceived uint64            `json:"peers_received"`
	Watched       uint64            `json:"watched_torrents"`
}

// Probe is one probe session in the recent-probes history.
type Probe struct {
	At        time.Time `json:"at"`
	Torrent   string    `json:"torrent"`
	Direction string    `json:"direction"`
	Source    string    `json:"source"`
	Outcome   string    `json:"outcome"`
	Seconds   float64   `json:"duration_seconds"`
	Error     string    `json:"error,omitempty"`
	Client    string    `json:"client,omitempty"`
	// Address is the peer's anonymized network (/24, /48), or its address when the
	// operator keeps raw IPs.
	Address  string `json:"address"`
	Pieces   int    `json:"pieces,omitempty"` // pieces the peer had at the end, when known
	Of       int    `json:"of,omitempty"`     // the torrent's piece count
	Messages int    `json:"messages"`
}

// Point is a progress reading.
type Point struct {
	Pieces uint32    `json:"pieces"`
	At     time.Time `json:"at,omitzero"`
}

// Peer is one stored peer identity (GET /api/v1/peers, `btda export peers`).
type Peer struct {
	Key         string    `json:"key"`     // pseudonymous key (hex)
	Torrent     string    `json:"torrent"` // "" in records older than record version 2
	Network     string    `json:"network"`
	Address     string    `json:"address,omitempty"` // only with storage.store_raw_ips
	Country     string    `json:"country"`
	Continent   string    `json:"continent"`
	City        string    `json:"city,omitempty"`
	ASN         uint32    `json:"asn,omitempty"`
	Org         string    `json:"org,omitempty"`
	Domain      string    `json:"domain,omitempty"`
	Client      string    `json:"client,omitempty"`
	NumPieces   uint32    `json:"num_pieces"`
	FirstSeen   time.Time `json:"first_seen,omitzero"`
	LastContact time.Time `json:"last_contact,omitzero"`
	First       Point     `json:"first"`
	Prev        Point     `json:"prev"`
	Last        Point     `json:"last"`
	CrossedAt   time.Time `json:"crossed_at,omitzero"`
	WindowStart time.Time `json:"window_start,omitzero"`
	Contacts    uint32    `json:"contacts"`
	MaxSpeed    float64   `json:"max_speed_bytes_per_second"`
	Sources     []string  `json:"sources"`
	Flags       []string  `json:"flags"`
}

// Download is one confirmed download (GET /api/v1/downloads, `btda export downloads`).
type Download struct {
	At          time.Time `json:"at"`
	WindowStart time.Time `json:"window_start,omitzero"`
	Torrent     string    `json:"torrent"`
	Peer        string    `json:"peer"`
	Country     string    `json:"country"`
	Continent   string    `json:"continent"`
	Speed       float64   `json:"speed_bytes_per_second"`
	MaxSpeed    float64   `json:"max_speed_bytes_per_second"`
	Network     string    `json:"network"`
	NetLabel    string    `json:"net_label,omitempty"`
}

var flagNames = []string{"has_point", "below_seen", "seed", "partial_seed", "regressed",
	"confirmed", "counted", "upload_only", "rdns_done", "geo_done"}

// FlagNames names the flags set in f.
func FlagNames(f store.PeerFlags) []string {
	out := []string{}
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// SourceNames names the sources in a record's source bit set.
func SourceNames(bits uint8) []string {
	out := []string{}
	for _, s := range discovery.Sources {
		if bits&(1<<s) != 0 {
			out = append(out, s.String())
		}
	}
	return out
}

func hashString(h metainfo.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

func prefixString[T interface {
	IsValid() bool
	String() string
}](p T) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// PeerOf converts a stored record.
func PeerOf(k store.PeerKey, p *store.Peer) Peer {
	return Peer{Key: hex.EncodeToString(k[:]), Torrent: hashString(p.Torrent),
		Network: prefixString(p.Network), Address: prefixString(p.Addr),
		Country: p.Country, Continent: p.Continent, City: p.City, ASN: p.ASN, Org: p.Org,
		Domain: p.Domain, Client: p.Client, NumPieces: p.NumPieces, FirstSeen: p.FirstSeen,
		LastContact: p.LastContact, First: Point(p.First), Prev: Point(p.Prev), Last: Point(p.Last),
		CrossedAt: p.CrossedAt, WindowStart: p.WindowStart, Contacts: p.Contacts,
		MaxSpeed: p.MaxSpeed, Sources: SourceNames(p.Sources), Flags: FlagNames(p.Flags)}
}

// DownloadOf converts a log entry.
func DownloadOf(d *store.Download) Download {
	return Download{At: d.At, WindowStart: d.WindowStart, Torrent: hashString(d.Torrent),
		Peer: hex.EncodeToString(d.Peer[:]), Country: d.Country, Continent: d.Continent,
		Speed: d.Speed, MaxSpeed: d.MaxSpeed, Network: prefixString(d.Network), NetLabel: d.NetLabel}
}

// Progress returns a peer's last progress as a fraction (0 when unknown).
func (p *Peer) Progress() float64 {
	if p.NumPieces == 0 {
		return 0
	}
	return float64(p.Last.Pieces) / float64(p.NumPieces)
}

// ProgressBin is the histogram bin of a progress fraction (see TorrentDetail.Progress).
func ProgressBin(f float64) int {
	return min(10, max(0, int(f*10)))
}

// Has reports whether the peer has flag name.
func (p *Peer) Has(name string) bool {
	for _, f := range p.Flags {
		if f == name {
			return true
		}
	}
	return false
}

// ParseInfoHash parses a torrent path argument: 40 hex digits (a v1 or truncated v2 wire
// hash) or 64 (a full v2 hash, truncated to its wire form). Anything else is refused.
func ParseInfoHash(s string) (metainfo.Hash, error) {
	var h metainfo.Hash
	switch len(s) {
	case 40:
		return metainfo.ParseHash(strings.ToLower(s))
	case 64:
		var v2 metainfo.HashV2
		if _, err := hex.Decode(v2[:], []byte(strings.ToLower(s))); err != nil {
			return h, fmt.Errorf("info hash %q: not hex", clip(s))
		}
		return v2.Truncate(), nil
	}
	return h, fmt.Errorf("info hash %q: want 40 or 64 hex digits, got %d characters", clip(s), len(s))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// FormatTime is the CSV form of a time: RFC 3339 with nanoseconds in UTC, "" for zero.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func formatFloat(f float64) string             { return strconv.FormatFloat(f, 'g', -1, 64) }
func formatUint[T uint32 | uint64](u T) string { return strconv.FormatUint(uint64(u), 10) }

// PeerColumns are the CSV columns of the peers table, in order.
var PeerColumns = []string{"key", "torrent", "network", "address", "country", "continent", "city",
	"asn", "org", "domain", "client", "num_pieces", "first_seen", "last_contact",
	"first_pieces", "first_at", "prev_pieces", "prev_at", "last_pieces", "last_at",
	"crossed_at", "window_start", "contacts", "max_speed_bytes_per_second", "sources", "flags"}

// Row is the peer's CSV row (PeerColumns).
func (p *Peer) Row() []string {
	asn := ""
	if p.ASN != 0 {
		asn = formatUint(p.ASN)
	}
	return []string{p.Key, p.Torrent, p.Network, p.Address, p.Country, p.Continent, p.City,
		asn, p.Org, p.Domain, p.Client, formatUint(p.NumPieces), FormatTime(p.FirstSeen), FormatTime(p.LastContact),
		formatUint(p.First.Pieces), FormatTime(p.First.At), formatUint(p.Prev.Pieces), FormatTime(p.Prev.At),
		formatUint(p.Last.Pieces), FormatTime(p.Last.At), FormatTime(p.CrossedAt), FormatTime(p.WindowStart),
		formatUint(p.Contacts), formatFloat(p.MaxSpeed), strings.Join(p.Sources, " "), strings.Join(p.Flags, " ")}
}

// DownloadColumns are the CSV columns of the downloads table.
var DownloadColumns = []string{"at", "window_start", "torrent", "peer", "country", "continent",
	"speed_bytes_per_second", "max_speed_bytes_per_second", "network", "net_label"}

// Row is the download's CSV row (DownloadColumns).
func (d *Download) Row() []string {
	return []string{FormatTime(d.At), FormatTime(d.WindowStart), d.Torrent, d.Peer, d.Country, d.Continent,
		formatFloat(d.Speed), formatFloat(d.MaxSpeed), d.Network, d.NetLabel}
}

// TorrentColumns are the CSV columns of the torrents table.
var TorrentColumns = []string{"infohash", "infohash_v2", "name", "kind", "state", "pieces", "piece_length",
	"peers", "seeds", "partial_seeds", "confirmed_downloads", "scrape_downloaded_max"}

// Row is the torrent's CSV row (TorrentColumns); scrape_downloaded_max is the highest
// `downloaded` among its trackers' scrapes ("" when none).
func (t *Torrent) Row() []string {
	sd := ""
	if n, ok := t.ScrapeDownloaded(); ok {
		sd = strconv.FormatInt(n, 10)
	}
	return []string{t.InfoHash, t.InfoHashV2, t.Name, t.Kind, t.State, strconv.Itoa(t.Pieces),
		strconv.FormatInt(t.PieceLength, 10), formatUint(t.Peers), formatUint(t.Seeds),
		formatUint(t.PartialSeeds), formatUint(t.Confirmed), sd}
}

// ScrapeDownloaded is the highest `downloaded` among the torrent's trackers' last scrapes.
func (t *Torrent) ScrapeDownloaded() (int64, bool) {
	best, ok := int64(0), false
	for _, s := range t.Scrapes {
		if s.Downloaded >= 0 && (!ok || s.Downloaded > best) {
			best, ok = s.Downloaded, true
		}
	}
	return best, ok
}

// FromStore builds the torrents table of a store that no btda runs (no names, states or
// source figures: only what the store keeps).
func FromStore(a *store.Aggregates) []Torrent {
	out := make([]Torrent, 0, len(a.Torrents))
	for h, t := range a.Torrents {
		out = append(out, Torrent{InfoHash: h.String(), Kind: "unknown", State: "stored",
			Peers: t.Peers, Seeds: t.Seeds, PartialSeeds: t.PartialSeeds, Confirmed: t.Confirmed,
			Sightings: map[string]uint64{}, Scrapes: []Scrape{}})
	}
	SortTorrents(out)
	return out
}

// SortTorrents orders torrents by info hash.
func SortTorrents(ts []Torrent) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].InfoHash < ts[j-1].InfoHash; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// ByCountry lists a torrent's confirmed downloads by country, most first (zero hash: all
// torrents).
func ByCountry(a *store.Aggregates, h metainfo.Hash) []CountryCount {
	m := map[[2]string]uint64{}
	for k, n := range a.Confirmed {
		if h.IsZero() || k.Torrent == h {
			m[[2]string{k.Country, k.Continent}] += n
		}
	}
	out := make([]CountryCount, 0, len(m))
	for k, n := range m {
		out = append(out, CountryCount{Country: k[0], Continent: k[1], Confirmed: n})
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].Confirmed > out[j-1].Confirmed ||
			out[j].Confirmed == out[j-1].Confirmed && out[j].Country < out[j-1].Country); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
