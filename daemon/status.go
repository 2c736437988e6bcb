package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/discovery/tracker"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/status"
)

// Recent-probes history sizes: the last RecentProbes sessions, and separately the last
// RecentFailures failed ones, so that a burst of successes does not push failures out
// (blackbox_exporter keeps failures longer the same way).
const (
	RecentProbes   = 100
	RecentFailures = 100
)

// statusState is what the daemon keeps for the status views only.
type statusState struct {
	sightings sync.Map // metainfo.Hash → *[8]atomic.Uint64, counts by discovery.Source

	mu             sync.Mutex
	recent, failed ring
}

// probeRecord is what the history keeps of a session: the observation's own fields, copied
// as they are. Formatting them (hex, labels, the error text, the anonymized network) waits
// for a reader, so the thousands of sessions a second that nobody looks at cost a copy.
type probeRecord struct {
	start     time.Time
	total     time.Duration
	torrent   metainfo.Hash
	addr      netip.Addr
	err       error
	client    string
	messages  int
	pieces    int
	of        int
	known     bool
	direction probe.Direction
	source    discovery.Source
	outcome   probe.Outcome
}

type ring struct {
	buf  []probeRecord
	next int
}

func (r *ring) add(p probeRecord, size int) {
	if len(r.buf) < size {
		r.buf = append(r.buf, p)
		return
	}
	r.buf[r.next] = p
	r.next = (r.next + 1) % size
}

// sighted counts a routed sighting for the torrent's per-source figures.
func (s *statusState) sighted(sg discovery.Sighting) {
	v, ok := s.sightings.Load(sg.Torrent)
	if !ok {
		v, _ = s.sightings.LoadOrStore(sg.Torrent, new([8]atomic.Uint64))
	}
	if int(sg.Source) < 8 {
		v.(*[8]atomic.Uint64)[sg.Source].Add(1)
	}
}

// probed adds a session to the recent-probes history.
func (d *Daemon) probed(obs *probe.Observation) {
	p := probeRecord{start: obs.Start, total: obs.Timings.Total, torrent: obs.Torrent, addr: obs.Addr.Addr(),
		err: obs.Err, client: obs.Client.Family, messages: obs.Messages, known: obs.Known,
		direction: obs.Direction, source: obs.Source, outcome: obs.Outcome}
	if obs.Known {
		p.pieces, p.of = obs.Last.Pieces, obs.NumPieces
	}
	d.status.mu.Lock()
	defer d.status.mu.Unlock()
	if obs.Outcome.Reached() {
		d.status.recent.add(p, RecentProbes)
	} else {
		d.status.failed.add(p, RecentFailures)
	}
}

// probeStatus formats a kept session for the API and the pages.
func (d *Daemon) probeStatus(r probeRecord) status.Probe {
	p := status.Probe{At: r.start.UTC(), Direction: r.direction.String(), Source: r.source.String(),
		Outcome: r.outcome.String(), Seconds: r.total.Seconds(), Client: r.client, Messages: r.messages}
	if !r.torrent.IsZero() {
		p.Torrent = r.torrent.String()
	}
	if r.err != nil {
		p.Error = r.err.Error()
	}
	if r.addr.IsValid() {
		if d.recorder.KeepsRawIP() {
			p.Address = r.addr.Unmap().String()
		} else {
			p.Address = geo.Anonymize(r.addr, true).String()
		}
	}
	if r.known {
		p.Pieces, p.Of = r.pieces, r.of
	}
	return p
}

// RecentProbes returns the recent-probes history, newest first.
func (d *Daemon) RecentProbes() []status.Probe {
	d.status.mu.Lock()
	kept := append(slices.Clone(d.status.recent.buf), d.status.failed.buf...)
	d.status.mu.Unlock()
	out := make([]status.Probe, len(kept))
	for i, r := range kept {
		out[i] = d.probeStatus(r)
	}
	slices.SortStableFunc(out, func(a, b status.Probe) int { return b.At.Compare(a.At) })
	return out
}

// KeepsRawIP reports whether addresses are kept (storage.store_raw_ips).
func (d *Daemon) KeepsRawIP() bool { return d.recorder.KeepsRawIP() }

// Store returns the store, for paged reads.
func (d *Daemon) Store() *store.Store { return d.recorder.Store() }

// Torrents returns every watched torrent with its counts, ordered by info hash.
func (d *Daemon) Torrents() []status.Torrent {
	agg := d.recorder.Aggregates()
	scrapes := d.scrapes()
	entries := d.registry.Entries()
	out := make([]status.Torrent, 0, len(entries))
	for _, e := range entries {
		out = append(out, d.torrent(e, agg, scrapes))
	}
	slices.SortFunc(out, func(a, b status.Torrent) int {
		switch {
		case a.InfoHash < b.InfoHash:
			return -1
		case a.InfoHash > b.InfoHash:
			return 1
		}
		return 0
	})
	return out
}

func (d *Daemon) scrapes() map[string][]status.Scrape {
	out := map[string][]status.Scrape{}
	if d.cfg.Trackers == nil {
		return out
	}
	for _, h := range d.cfg.Trackers.Stats() {
		for ih, s := range h.ScrapeByTorrent {
			out[ih] = append(out[ih], status.Scrape{Tracker: h.Host, Seeders: s.Seeders, Leechers: s.Leechers, Downloaded: s.Downloaded})
		}
	}
	return out
}

func (d *Daemon) torrent(e *discovery.Entry, agg *store.Aggregates, scrapes map[string][]status.Scrape) status.Torrent {
	t := status.Torrent{InfoHash: e.ID.String(), Name: e.Name(), Kind: e.Kind().String(),
		State: e.State().String(), Origin: e.Origin, Sightings: map[string]uint64{}, Scrapes: scrapes[e.ID.String()]}
	if t.Scrapes == nil {
		t.Scrapes = []status.Scrape{}
	}
	if e.Torrent != nil {
		t.Pieces, t.PieceLength = e.Torrent.Pieces, e.Torrent.PieceLength
		t.InfoHashV2 = e.Torrent.HexV2()
	}
	a := agg.Torrents[e.ID]
	t.Peers, t.Seeds, t.PartialSeeds, t.Confirmed = a.Peers, a.Seeds, a.PartialSeeds, a.Confirmed
	for _, src := range discovery.Sources {
		t.Sightings[src.String()] = 0
	}
	if v, ok := d.status.sightings.Load(e.ID); ok {
		c := v.(*[8]atomic.Uint64)
		for _, src := range discovery.Sources {
			t.Sightings[src.String()] = c[src].Load()
		}
	}
	return t
}

// Torrent returns one watched torrent's detail (ok false: not watched). It walks the torrent's stored peers for the
// progress histogram, a page per read transaction.
func (d *Daemon) Torrent(ctx context.Context, h metainfo.Hash) (status.TorrentDetail, bool, error) {
	e, ok := d.registry.Lookup(h)
	if !ok {
		return status.TorrentDetail{}, false, nil
	}
	agg := d.recorder.Aggregates()
	scrapes := d.scrapes()
	det := status.TorrentDetail{Torrent: d.torrent(e, agg, scrapes),
		ConfirmedByCountry: status.ByCountry(agg, e.ID), Trackers: []status.Tracker{}}
	err := d.Store().WalkPeers(ctx, nil, func(_ store.PeerKey, p *store.Peer) error {
		if p.Torrent == e.ID && p.Has(store.FlagHasPoint) && p.NumPieces > 0 {
			det.Progress[status.ProgressBin(float64(p.Last.Pieces)/float64(p.NumPieces))]++
		}
		return nil
	})
	if err != nil {
		return det, true, err
	}
	src := d.Sources()
	hosts := map[string]bool{}
	for _, s := range det.Scrapes {
		hosts[s.Tracker] = true
	}
	for _, tier := range e.Trackers() {
		for _, u := range tier {
			hosts[tracker.TrackerLabel(u)] = true
		}
	}
	for _, t := range src.Trackers {
		if hosts[t.Host] {
			det.Trackers = append(det.Trackers, t)
		}
	}
	det.DHT = src.DHT
	return det, true, nil
}

// Sources returns the trackers' and the DHT's health.
func (d *Daemon) Sources() status.Sources {
	out := status.Sources{Trackers: []status.Tracker{}}
	if a := d.cfg.Trackers; a != nil {
		for _, h := range a.Stats() {
			t := status.Tracker{Host: h.Host, LastSuccess: h.LastSuccess, IntervalSeconds: h.Interval.Seconds(),
				Announces: h.Announces, Scrapes: h.Scrapes, PeersReceived: h.PeersReceived, Failures: map[string]uint64{}}
			for r, n := range h.Failures {
				t.Failures[string(r)] = n
			}
			out.Trackers = append(out.Trackers, t)
		}
	}
	if n := d.cfg.DHT; n != nil {
		st := n.Stats()
		out.DHT = &status.DHT{Nodes: st.Nodes, GoodNodes: st.GoodNodes, LastSuccess: st.LastSuccess,
			Lookups: st.Lookups, Failures: st.Failures, PeersReceived: st.PeersReceived, Watched: st.Watched}
	}
	return out
}

// Entry returns the watched torrent that uses wire hash h.
func (d *Daemon) Entry(h metainfo.Hash) (*discovery.Entry, bool) { return d.registry.Lookup(h) }
