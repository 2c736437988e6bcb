package tracker

import (
	"context"
	"sync"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

// AnnounceOnce runs one announce (event=started) against every tracker URL of t in
// parallel, then a scrape if scrape is true and the tracker has a scrape endpoint, then
// event=stopped to every tracker that accepted the started (so btda does not linger in
// their swarms). A hybrid torrent goes through this under each of its wire hashes (see
// Result.Hashes). It returns one Result per distinct URL: the supported ones in tier order,
// then those btda cannot talk to (ws://, malformed) with an AnnounceErr of reason
// "protocol". Metrics are not registered anywhere. The UDP retransmission settings in cfg
// bound how long a silent tracker holds the call (defaults: up to 2 × 105 s per hash).
func AnnounceOnce(ctx context.Context, cfg Config, t discovery.TorrentInfo, scrape bool) []Result {
	m, _ := newMetrics(nil) // cannot fail without a registerer
	c := newCore(cfg, m)
	defer c.close()
	urls, bad := TrackerURLs(t)
	urls = append(urls, bad...)
	results := make([]Result, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := Result{URL: u, Tracker: TrackerLabel(u), Torrent: t.Hash, Event: EventStarted}
			var oks []*AnnounceResponse
			var scrapes []*ScrapeResponse
			for _, h := range t.AnnounceHashes() {
				hr := announceOnce(ctx, c, t, h, u, scrape)
				res.Hashes = append(res.Hashes, hr)
				if hr.Announce != nil {
					oks = append(oks, hr.Announce)
				} else if res.AnnounceErr == nil {
					res.AnnounceErr = hr.AnnounceErr
				}
				if hr.Scrape != nil {
					scrapes = append(scrapes, hr.Scrape)
				} else if res.ScrapeErr == nil {
					res.ScrapeErr = hr.ScrapeErr
				}
			}
			if len(oks) > 0 {
				res.Announce, res.AnnounceErr = mergeAnnounces(oks), nil
			}
			if len(scrapes) > 0 {
				res.Scrape, res.ScrapeErr = mergeScrapes(scrapes), nil
			}
			results[i] = res
		}()
	}
	wg.Wait()
	return results
}

// announceOnce is AnnounceOnce's started, scrape and stopped under one hash.
func announceOnce(ctx context.Context, c *core, t discovery.TorrentInfo, h metainfo.Hash, u string, scrape bool) HashResult {
	hr := HashResult{Hash: h}
	req := AnnounceRequest{Hash: h, PeerID: c.cfg.PeerID, Key: c.cfg.Key, Port: c.cfg.Port,
		Left: left(t), Event: EventStarted, NumWant: c.cfg.NumWant}
	hr.Announce, hr.AnnounceErr = c.announce(ctx, u, req)
	if hr.AnnounceErr != nil {
		hr.Announce = nil
	}
	if scrape && canScrape(u) && ctx.Err() == nil {
		hr.Scrape, hr.ScrapeErr = c.scrape(ctx, u, h)
		if hr.ScrapeErr != nil {
			hr.Scrape = nil
		}
	}
	if hr.Announce != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StopTimeout)
		req.Event, req.TrackerID = EventStopped, hr.Announce.TrackerID
		_, _ = c.announce(sctx, u, req)
		cancel()
	}
	return hr
}
