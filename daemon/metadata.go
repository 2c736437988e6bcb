package daemon

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

// Limits of the magnet metadata fetch.
const (
	metadataCandidates  = 200              // peer addresses kept per pending magnet
	metadataParallel    = 4                // magnets fetched at once
	metadataRetryPeriod = 15 * time.Second // how often pending magnets with peers are tried
)

// MetadataTimeout bounds one fetch round of one magnet (also `btda metadata`'s).
const MetadataTimeout = 2 * time.Minute

// metadataFetcher turns pending magnets into active torrents: peers the sources find for
// a magnet are collected here (not probed: their piece count is unknown), and the info
// dictionary is fetched from them over BEP 9.
type metadataFetcher struct {
	d    *Daemon
	cfg  probe.MetadataConfig
	kick chan struct{}

	mu      sync.Mutex
	pending map[metainfo.Hash]*pendingMagnet
}

type pendingMagnet struct {
	entry    *discovery.Entry
	peers    map[netip.AddrPort]discovery.Source
	tried    map[netip.AddrPort]bool
	fetching bool
}

func newMetadataFetcher(d *Daemon, cfg probe.MetadataConfig) *metadataFetcher {
	cfg.Logger = d.cfg.Logger // FetchMetadata adds its own component and torrent
	return &metadataFetcher{d: d, cfg: cfg, kick: make(chan struct{}, 1), pending: make(map[metainfo.Hash]*pendingMagnet)}
}

func (f *metadataFetcher) watch(e *discovery.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pending[e.ID]; ok {
		p.entry = e
		return
	}
	f.pending[e.ID] = &pendingMagnet{entry: e, peers: make(map[netip.AddrPort]discovery.Source), tried: make(map[netip.AddrPort]bool)}
}

func (f *metadataFetcher) forget(id metainfo.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pending, id)
}

// candidate records a peer of a pending magnet.
func (f *metadataFetcher) candidate(id metainfo.Hash, addr netip.AddrPort, src discovery.Source) {
	f.mu.Lock()
	p, ok := f.pending[id]
	if ok && len(p.peers) < metadataCandidates {
		if _, dup := p.peers[addr]; !dup {
			p.peers[addr] = src
		}
	}
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *metadataFetcher) run(ctx context.Context) error {
	sem := make(chan struct{}, metadataParallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(metadataRetryPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-f.kick:
		}
		for _, job := range f.due() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				f.release(job.id)
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				f.fetch(ctx, job)
			}()
		}
	}
}

type metadataJob struct {
	id     metainfo.Hash
	magnet *metainfo.Magnet
	peers  []netip.AddrPort
}

// due claims the pending magnets that have untried peers.
func (f *metadataFetcher) due() []metadataJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	var jobs []metadataJob
	for id, p := range f.pending {
		if p.fetching || p.entry.Magnet == nil {
			continue
		}
		var peers []netip.AddrPort
		for a := range p.peers {
			if !p.tried[a] {
				peers = append(peers, a)
				p.tried[a] = true
			}
		}
		if len(peers) == 0 {
			continue
		}
		p.fetching = true
		jobs = append(jobs, metadataJob{id: id, magnet: p.entry.Magnet, peers: peers})
	}
	return jobs
}

func (f *metadataFetcher) release(id metainfo.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pending[id]; ok {
		p.fetching = false
	}
}

func (f *metadataFetcher) fetch(ctx context.Context, job metadataJob) {
	defer f.release(job.id)
	log := f.d.cfg.Logger.With("component", "metadata", "infohash", job.magnet.Label())
	ctx, cancel := context.WithTimeout(ctx, MetadataTimeout)
	defer cancel()
	t, err := probe.FetchMetadata(ctx, f.cfg, job.magnet, job.peers)
	if err != nil {
		log.Info("metadata not fetched yet", "peers", len(job.peers), "err", err)
		return
	}
	e, err := f.d.registry.SetMetadata(job.id, t.Info)
	if err != nil {
		log.Warn("fetched metadata rejected", "err", err)
		return
	}
	log.Info("metadata fetched", "name", t.Name, "pieces", t.Pieces)

	f.mu.Lock()
	var found []discovery.Sighting
	if p, ok := f.pending[job.id]; ok {
		for a, src := range p.peers {
			found = append(found, discovery.Sighting{Torrent: job.id, Addr: a, Source: src})
		}
	}
	f.mu.Unlock()
	// The torrent is active now: start probing, and hand over the peers found so far.
	f.d.activated(e)
	for _, sg := range found {
		f.d.route(sg)
	}
}
