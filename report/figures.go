// Package report computes the 2015 study's figures from btda's data (the torrents table,
// the stored peer records and the confirmed-download log) and writes them as one
// self-contained HTML file (inline SVG charts, embedded CSS) and as a plain-text summary.
// It reads through a Source: a store file, or a running btda's JSON API. The status pages
// use the same Collector for their per-torrent figures.
package report

import (
	"slices"
	"strings"
	"time"

	"github.com/btda/btda/status"
)

// SpeedBins are the upper bounds (bytes per second, exclusive) of the speed distribution's
// bins; the last bin holds everything above. Decades, as the study plotted them on a log axis.
var SpeedBins = []float64{10e3, 100e3, 1e6, 10e6}

// SpeedLabels name the speed bins (len(SpeedBins)+1).
var SpeedLabels = []string{"<10 kB/s", "10–100 kB/s", "0.1–1 MB/s", "1–10 MB/s", "≥10 MB/s"}

// MaxHours caps the per-hour series: a longer log shows its last MaxHours hours.
const MaxHours = 24 * 92

// Figures are one torrent's figures (or all torrents' together).
type Figures struct {
	Torrent status.Torrent // InfoHash "" for all torrents

	// From the confirmed-download log.
	Logged    uint64                // downloads in the log
	hourly    map[int64]uint64      // Unix hour → downloads
	byCountry map[[2]string]uint64  // (country, continent) → downloads
	speeds    map[string]*[5]uint64 // continent → peers by max speed bin
	First     [11]uint64            // peers by progress at first contact (tenths; 10: complete)
	Sources   map[string]uint64     // peers by source (a peer counts once per source)
	Peers     uint64                // stored identities (all were reached at least once)
	WithPoint uint64                // identities whose sessions gave a progress reading
	Twice     uint64                // reachable identities read at least twice (contacts ≥ 2)
	NoSpeed   uint64                // identities without a speed estimate
}

func newFigures(t status.Torrent) *Figures {
	return &Figures{Torrent: t, hourly: map[int64]uint64{}, byCountry: map[[2]string]uint64{},
		speeds: map[string]*[5]uint64{}, Sources: map[string]uint64{}}
}

// Collector aggregates downloads and peers into Figures while they are read, so that
// memory grows with the number of torrents, countries and hours, never with the peers.
type Collector struct {
	all     *Figures
	torrent map[string]*Figures
	order   []string
}

// NewCollector prepares figures for the given torrents (and for all of them together).
func NewCollector(torrents []status.Torrent) *Collector {
	c := &Collector{all: newFigures(status.Torrent{Name: "All torrents"}), torrent: map[string]*Figures{}}
	for _, t := range torrents {
		c.all.Torrent.Confirmed += t.Confirmed
		c.all.Torrent.Peers += t.Peers
		c.all.Torrent.Seeds += t.Seeds
		c.torrent[t.InfoHash] = newFigures(t)
		c.order = append(c.order, t.InfoHash)
	}
	return c
}

func (c *Collector) each(h string, fn func(*Figures)) {
	fn(c.all)
	if f, ok := c.torrent[h]; ok {
		fn(f)
	}
}

// Download adds one confirmed download.
func (c *Collector) Download(d *status.Download) {
	hour := d.At.Unix() / 3600
	k := [2]string{orZZ(d.Country), orZZ(d.Continent)}
	c.each(d.Torrent, func(f *Figures) {
		f.Logged++
		f.hourly[hour]++
		f.byCountry[k]++
	})
}

func orZZ(s string) string {
	if s == "" {
		return "ZZ"
	}
	return s
}

// Peer adds one stored peer identity.
func (c *Collector) Peer(p *status.Peer) {
	hasPoint := p.Has("has_point")
	first := -1
	if hasPoint && p.NumPieces > 0 {
		first = status.ProgressBin(float64(p.First.Pieces) / float64(p.NumPieces))
	}
	bin := -1
	if p.MaxSpeed > 0 {
		bin = len(SpeedBins)
		for i, b := range SpeedBins {
			if p.MaxSpeed < b {
				bin = i
				break
			}
		}
	}
	cont := orZZ(p.Continent)
	c.each(p.Torrent, func(f *Figures) {
		f.Peers++
		if hasPoint {
			f.WithPoint++
		}
		if p.Contacts >= 2 {
			f.Twice++
		}
		if first >= 0 {
			f.First[first]++
		}
		if bin >= 0 {
			s := f.speeds[cont]
			if s == nil {
				s = new([5]uint64)
				f.speeds[cont] = s
			}
			s[bin]++
		} else {
			f.NoSpeed++
		}
		for _, src := range p.Sources {
			f.Sources[src]++
		}
	})
}

// All returns the figures of all torrents together.
func (c *Collector) All() *Figures { return c.all }

// Torrent returns one torrent's figures (nil when it is not in the list).
func (c *Collector) Torrent(h string) *Figures { return c.torrent[h] }

// Torrents returns every torrent's figures in the order of the list.
func (c *Collector) Torrents() []*Figures {
	out := make([]*Figures, 0, len(c.order))
	for _, h := range c.order {
		out = append(out, c.torrent[h])
	}
	return out
}

// PerHour returns the confirmed downloads of every hour from the first logged one to the
// last (or to until, when later), at most MaxHours of them, and the start of the first.
func (f *Figures) PerHour(until time.Time) (time.Time, []uint64) {
	if len(f.hourly) == 0 {
		return time.Time{}, nil
	}
	lo, hi := int64(1<<62), int64(-1<<62)
	for h := range f.hourly {
		lo, hi = min(lo, h), max(hi, h)
	}
	if !until.IsZero() {
		hi = max(hi, until.Unix()/3600)
	}
	lo = max(lo, hi-MaxHours+1)
	out := make([]uint64, hi-lo+1)
	for h, n := range f.hourly {
		if h >= lo {
			out[h-lo] += n
		}
	}
	return time.Unix(lo*3600, 0).UTC(), out
}

// CountryRow is one line of the by-country table.
type CountryRow struct {
	Country, Continent string
	Confirmed          uint64
	Share              float64 // of the torrent's logged downloads
}

// ByCountry lists the logged downloads by country, most first.
func (f *Figures) ByCountry() []CountryRow {
	out := make([]CountryRow, 0, len(f.byCountry))
	for k, n := range f.byCountry {
		out = append(out, CountryRow{Country: k[0], Continent: k[1], Confirmed: n, Share: ratio(n, f.Logged)})
	}
	slices.SortFunc(out, func(a, b CountryRow) int {
		if a.Confirmed != b.Confirmed {
			return int(int64(b.Confirmed) - int64(a.Confirmed))
		}
		return strings.Compare(a.Country+a.Continent, b.Country+b.Continent)
	})
	return out
}

// SpeedRow is one continent's speed distribution.
type SpeedRow struct {
	Continent string
	Peers     uint64
	Bins      [5]uint64
}

// Speeds lists the speed distribution by continent, the continent with most peers first.
func (f *Figures) Speeds() []SpeedRow {
	out := make([]SpeedRow, 0, len(f.speeds))
	for c, b := range f.speeds {
		r := SpeedRow{Continent: c, Bins: *b}
		for _, n := range b {
			r.Peers += n
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b SpeedRow) int {
		if a.Peers != b.Peers {
			return int(int64(b.Peers) - int64(a.Peers))
		}
		return strings.Compare(a.Continent, b.Continent)
	})
	return out
}

// SourceRow is the number of peers one source led to.
type SourceRow struct {
	Source string
	Peers  uint64
}

// BySource lists the peers by source in the order of status.SourceNames.
func (f *Figures) BySource() []SourceRow {
	var out []SourceRow
	for _, s := range status.SourceNames(0xff) {
		out = append(out, SourceRow{s, f.Sources[s]})
	}
	return out
}

// FirstContactSuccess is the share of stored identities whose sessions gave a progress
// reading: every stored identity was reached, but only those gave the piece count that the
// confirmed-download rule needs.
func (f *Figures) FirstContactSuccess() float64 { return ratio(f.WithPoint, f.Peers) }

// TwiceShare is the share of reachable identities read at least twice (contacts ≥ 2), the
// ones whose progress could be followed.
func (f *Figures) TwiceShare() float64 { return ratio(f.Twice, f.Peers) }

// Scrape returns the highest `downloaded` of the torrent's trackers' last scrapes.
func (f *Figures) Scrape() (int64, bool) { return f.Torrent.ScrapeDownloaded() }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
