package swarmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Window is a half-open interval [From, To) of swarm time.
type Window struct {
	From time.Duration `json:"from_ns"`
	To   time.Duration `json:"to_ns"`
}

// Contains reports whether t is in the window.
func (w Window) Contains(t time.Duration) bool { return t >= w.From && t < w.To }

// PeerTruth is everything btda could and should learn about one peer.
type PeerTruth struct {
	Index     int    `json:"index"`
	Torrent   string `json:"torrent"` // wire info hash, hex
	IP        string `json:"ip"`
	Port      uint16 `json:"port"`
	Profile   string `json:"profile"`
	Country   string `json:"country"`
	Continent string `json:"continent"`
	City      string `json:"city"`
	ASN       uint32 `json:"asn"`
	ASOrg     string `json:"as_org"`
	DialOut   bool   `json:"dial_out,omitempty"`
	// Reach options: what a reader needs to reach the peer (ReachConfig). RequireMSE: an
	// MSE handshake (RC4); UTPOnly: uTP; IPv6: IPv6 (the peer is on [::1]).
	RequireMSE bool `json:"require_mse,omitempty"`
	UTPOnly    bool `json:"utp_only,omitempty"`
	IPv6       bool `json:"ipv6,omitempty"`
	// Reports is false for peers whose progress cannot be read (they close,
	// stay silent, answer garbage or refuse).
	Reports     bool    `json:"reports"`
	Pieces      int     `json:"pieces"`
	PieceLength int64   `json:"piece_length"`
	Curve       Curve   `json:"curve"`
	Knots       []Knot  `json:"knots"` // pieces(t) is linear between knots at 1 piece per interval, or flat
	PiecesPerS  float64 `json:"pieces_per_second"`
	BytesPerS   float64 `json:"bytes_per_second"` // while progressing
	// Class explains how btda must treat the peer: "leecher", "seed"
	// (starts at or above the threshold), "partial_seed" (upload_only),
	// "super_seed", "lazy_seed", "always_zero", "unobservable".
	Class     string `json:"class"`
	Regresses bool   `json:"regresses,omitempty"`
	Threshold int    `json:"threshold"`
	// Crosses: the peer crosses the threshold from below during the truth
	// horizon, at CrossAt; Counted: btda must count it as a confirmed
	// download (Crosses and Reports, and not a super/partial seed).
	Crosses bool           `json:"crosses"`
	CrossAt *time.Duration `json:"cross_at_ns,omitempty"`
	Counted bool           `json:"counted"`
	// FirstContact is the swarm time of the peer's first completed handshake, when its
	// curve is anchored to it (Curve.Anchored) and it happened.
	FirstContact *time.Duration `json:"first_contact_ns,omitempty"`
}

// TorrentTruth describes one torrent.
type TorrentTruth struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	WireHash    string `json:"wire_hash"`
	InfoHashV1  string `json:"info_hash_v1,omitempty"`
	InfoHashV2  string `json:"info_hash_v2,omitempty"`
	Pieces      int    `json:"pieces"`
	PieceLength int64  `json:"piece_length"`
	Length      int64  `json:"length"`
	Peers       int    `json:"peers"`
	Threshold   int    `json:"threshold"`
}

// CrossingCount is the number of counted crossings of one torrent and
// country inside the window.
type CrossingCount struct {
	Torrent string `json:"torrent"`
	Country string `json:"country"`
	Count   int    `json:"count"`
}

// Truth is the ground truth for a window.
type Truth struct {
	Start     time.Time       `json:"start"`
	Threshold float64         `json:"threshold_fraction"`
	Window    Window          `json:"window"`
	Torrents  []TorrentTruth  `json:"torrents"`
	Peers     []PeerTruth     `json:"peers"`
	Crossings []CrossingCount `json:"crossings"` // counted crossings in Window, by torrent and country
	Total     int             `json:"total_crossings"`
	// Announce lists the tracker URLs in the torrents; DHTNodes the DHT
	// cluster's bootstrap addresses; GeoIP the database paths (if written).
	Announce []string `json:"announce,omitempty"`
	DHTNodes []string `json:"dht_nodes,omitempty"`
	GeoIP    struct {
		City string `json:"city,omitempty"`
		ASN  string `json:"asn,omitempty"`
	} `json:"geoip"`
}

// PeerTruth computes one peer's truth with the given horizon.
func (s *Swarm) PeerTruth(p *Peer, horizon time.Duration) PeerTruth {
	thr := Threshold(s.cfg.Threshold, p.Torrent.Pieces)
	pt := PeerTruth{Index: p.Index, Torrent: p.Torrent.WireHex(), IP: p.Addr.Addr().String(),
		Port: p.Addr.Port(), Profile: string(p.Profile), Country: p.Country, Continent: p.Continent,
		City: p.City, ASN: p.ASN, ASOrg: p.ASOrg, DialOut: p.DialOut, RequireMSE: p.RequireMSE, UTPOnly: p.UTPOnly, IPv6: p.IPv6, Reports: p.Profile.ReportsProgress(),
		Pieces: p.Torrent.Pieces, PieceLength: p.Torrent.PieceLength, Curve: p.Curve,
		Knots: p.Curve.Knots(horizon), PiecesPerS: p.Curve.PiecesPerSecond(), BytesPerS: p.BytesPerSecond(),
		Regresses: p.Curve.RegressBy > 0, Threshold: thr}
	switch {
	case !pt.Reports:
		pt.Class = "unobservable"
	case p.Profile == PartialSeed:
		pt.Class = "partial_seed"
	case p.Profile == SuperSeed:
		pt.Class = "super_seed"
	case p.Profile == LazySeed:
		pt.Class = "lazy_seed"
	case p.Profile == AlwaysZero:
		pt.Class = "always_zero"
	case p.Curve.At(0) >= thr:
		pt.Class = "seed"
	default:
		pt.Class = "leecher"
	}
	// An anchored curve runs from first contact on: shift its knots and crossing by it.
	// Never contacted, it stays at Start and crosses nothing.
	shift, started := time.Duration(0), true
	if p.Curve.Anchored {
		shift, started = p.FirstContact()
		if started {
			pt.FirstContact = &shift
			pt.Knots = nil
			for _, k := range p.Curve.Knots(horizon - shift) {
				pt.Knots = append(pt.Knots, Knot{T: k.T + shift, Pieces: k.Pieces})
			}
		} else {
			pt.Knots = []Knot{{0, p.Curve.At(-1)}, {horizon, p.Curve.At(-1)}}
		}
	}
	if at, ok := p.Curve.Crossing(thr, horizon-shift); ok && pt.Reports && started {
		at += shift
		pt.Crosses = true
		pt.CrossAt = &at
		pt.Counted = pt.Class == "leecher"
	}
	return pt
}

// Truth returns the ground truth; crossings are counted inside w and the
// per-peer curves are described up to w.To.
func (s *Swarm) Truth(w Window) Truth {
	tr := Truth{Start: s.start, Threshold: s.cfg.Threshold, Window: w, Announce: s.announce}
	for _, a := range s.DHTNodes() {
		tr.DHTNodes = append(tr.DHTNodes, a.String())
	}
	tr.GeoIP.City, tr.GeoIP.ASN = s.cityDB, s.asnDB
	for _, t := range s.torrents {
		tt := TorrentTruth{Index: t.Index, Name: t.Name, Version: string(t.Version), WireHash: t.WireHex(),
			Pieces: t.Pieces, PieceLength: t.PieceLength, Length: t.Length, Peers: len(s.byTor[t.Index]),
			Threshold: Threshold(s.cfg.Threshold, t.Pieces)}
		if t.HasV1() {
			tt.InfoHashV1 = fmt.Sprintf("%x", t.InfoHashV1)
		}
		if t.HasV2() {
			tt.InfoHashV2 = fmt.Sprintf("%x", t.InfoHashV2)
		}
		tr.Torrents = append(tr.Torrents, tt)
	}
	counts := map[[2]string]int{}
	for _, p := range s.peers {
		pt := s.PeerTruth(p, w.To)
		tr.Peers = append(tr.Peers, pt)
		if pt.Counted && w.Contains(*pt.CrossAt) {
			counts[[2]string{pt.Torrent, pt.Country}]++
			tr.Total++
		}
	}
	for k, n := range counts {
		tr.Crossings = append(tr.Crossings, CrossingCount{Torrent: k[0], Country: k[1], Count: n})
	}
	sort.Slice(tr.Crossings, func(i, j int) bool {
		a, b := tr.Crossings[i], tr.Crossings[j]
		if a.Torrent != b.Torrent {
			return a.Torrent < b.Torrent
		}
		return a.Country < b.Country
	})
	return tr
}

// WriteTruth writes Truth(w) as indented JSON to path, atomically.
func (s *Swarm) WriteTruth(path string, w Window) error {
	b, err := json.MarshalIndent(s.Truth(w), "", " ")
	if err != nil {
		return fmt.Errorf("truth: encode: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("truth: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("truth: %w", err)
	}
	return nil
}
