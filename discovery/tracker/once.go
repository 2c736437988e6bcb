package tracker

import (
	"context"
	"github.com/btda/btda/discovery"
	"sync"
)

// AnnounceOnce runs one announce (event=started) against every tracker URL of t in
// parallel, then a scrape if scrape is true and the tracker has a scrape endpoint, then
// event=stopped to every tracker that accepted the started (so btda does not linger in
// their swarms). It returns one Result per distinct URL: the supported ones in tier order,
// then those btda cannot talk to (ws://, malformed) with an AnnounceErr of reason
// "protocol". Metrics are not registered anywhere. The UDP retransmission settings in cfg
// bound how long a silent tracker holds the call (defaults: up to 2 × 105 s).
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
			req := AnnounceRequest{Hash: t.Hash, PeerID: c.cfg.PeerID, Key: c.cfg.Key, Port: c.cfg.Port,
				Left: left(t), Event: EventStarted, NumWant: c.cfg.NumWant}
			res.Announce, res.AnnounceErr = c.announce(ctx, u, req)
			if res.AnnounceErr != nil {
				res.Announce = nil
			}
			if scrape && canScrape(u) && ctx.Err() == nil {
				res.Scrape, res.ScrapeErr = c.scrape(ctx, u, t.Hash, "")
				if res.ScrapeErr != nil {
					res.Scrape = nil
				}
			}
			if res.Announce != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StopTimeout)
				req.Event, req.TrackerID = EventStopped, res.Announce.TrackerID
				_, _ = c.announce(sctx, u, req)
				cancel()
			}
			results[i] = res
		}()
	}
	wg.Wait()
	return results
}
