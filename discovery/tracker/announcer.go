package tracker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/prometheus/client_golang/prometheus"
)

// Announcer announces a changing set of torrents to all of their trackers, each tracker
// URL on its own schedule in its own goroutine, and sends every peer it learns as a
// discovery.Sighting. A failing or misbehaving tracker only delays and counts against
// itself.
type Announcer struct {
	c   *core
	out chan<- discovery.Sighting

	mu       sync.Mutex
	torrents map[metainfo.Hash]*torrentRun
	removing map[metainfo.Hash]chan struct{} // removed torrents whose stopped round still runs
	runCtx   context.Context                 // set while Run runs
	stopped  bool
	wg       sync.WaitGroup
}

type torrentRun struct {
	info   discovery.TorrentInfo
	urls   []string
	cancel context.CancelFunc // nil until started
	done   chan struct{}      // closed when all its workers have returned; nil until started
	after  chan struct{}      // an earlier run of the same hash to wait for (Remove then Add)
}

// NewAnnouncer creates an Announcer that sends sightings to out and registers its metrics
// on reg (nil: unregistered).
func NewAnnouncer(cfg Config, reg prometheus.Registerer, out chan<- discovery.Sighting) (*Announcer, error) {
	if out == nil {
		return nil, errors.New("tracker: NewAnnouncer needs a sightings channel")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Announcer{c: newCore(cfg, m), out: out, torrents: map[metainfo.Hash]*torrentRun{},
		removing: map[metainfo.Hash]chan struct{}{}}, nil
}

// TrackerURLs returns the distinct tracker URLs of t's tiers in tier order (surrounding
// white space trimmed, empty entries dropped): urls are those btda can announce to,
// unsupported those it cannot (ws://, malformed, udp:// without a port).
func TrackerURLs(t discovery.TorrentInfo) (urls, unsupported []string) {
	seen := map[string]bool{}
	for _, tier := range t.Tiers {
		for _, u := range tier {
			u = strings.TrimSpace(u)
			if u == "" || seen[u] {
				continue
			}
			seen[u] = true
			if supported(u) {
				urls = append(urls, u)
			} else {
				unsupported = append(unsupported, u)
			}
		}
	}
	return urls, unsupported
}

// Add starts announcing t (at once if Run is running, else when it starts).
func (a *Announcer) Add(t discovery.TorrentInfo) error {
	if t.Hash.IsZero() {
		return errors.New("tracker: Add: zero info hash")
	}
	if t.Label == "" {
		t.Label = t.Hash.String()
	}
	urls, bad := TrackerURLs(t)
	for _, u := range bad {
		a.c.log.Warn("skipping unsupported tracker URL", "infohash", t.Label, "url", Redact(u))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return errors.New("tracker: Add after the announcer stopped")
	}
	if _, ok := a.torrents[t.Hash]; ok {
		return fmt.Errorf("tracker: torrent %s already added", t.Hash)
	}
	// A torrent removed and added again (say, to update it once a magnet's metadata is
	// known) starts after the old run's stopped, or trackers would see started, stopped.
	tr := &torrentRun{info: t, urls: urls, after: a.removing[t.Hash]}
	a.torrents[t.Hash] = tr
	for _, u := range urls {
		a.c.m.initTracker(TrackerLabel(u))
	}
	if a.runCtx != nil {
		a.start(tr)
	}
	return nil
}

// Remove stops announcing the torrent; its trackers get event=stopped. It does not wait.
func (a *Announcer) Remove(h metainfo.Hash) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tr, ok := a.torrents[h]
	if !ok {
		return
	}
	delete(a.torrents, h)
	if tr.cancel != nil {
		tr.cancel()
		a.removing[h] = tr.done
	}
}

// start launches one goroutine per tracker URL. Called with a.mu held and Run running.
func (a *Announcer) start(tr *torrentRun) {
	ctx, cancel := context.WithCancel(a.runCtx)
	tr.cancel = cancel
	tr.done = make(chan struct{})
	var twg sync.WaitGroup
	for _, u := range tr.urls {
		a.wg.Add(1)
		twg.Add(1)
		go func() {
			defer twg.Done()
			a.work(ctx, tr.info, u, tr.after)
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		twg.Wait()
		close(tr.done)
		a.mu.Lock()
		if a.removing[tr.info.Hash] == tr.done {
			delete(a.removing, tr.info.Hash)
		}
		a.mu.Unlock()
	}()
}

// Run announces until ctx is cancelled, then sends event=stopped to every tracker that
// accepted a started (bounded by Config.StopTimeout), waits for its goroutines and
// returns. It can run once.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.runCtx != nil || a.stopped {
		a.mu.Unlock()
		return errors.New("tracker: Announcer.Run called twice")
	}
	a.runCtx = ctx
	for _, tr := range a.torrents {
		a.start(tr)
	}
	a.mu.Unlock()

	<-ctx.Done()
	a.mu.Lock()
	a.stopped = true
	for _, tr := range a.torrents {
		tr.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.c.close()
	return nil
}

// trackerState is one (torrent, tracker URL) pair's announce state.
type trackerState struct {
	started     bool // a started announce succeeded: we owe a stopped
	trackerID   string
	interval    time.Duration
	minInterval time.Duration
	failures    int
	retryIn     time.Duration // BEP 31 advice with the last failure
	never       bool          // BEP 31 `retry in: never`: stop asking this tracker
}

// nextDelay is the wait before the next announce (see the package doc for the rule).
func (s *trackerState) nextDelay(cfg Config) time.Duration {
	if s.failures > 0 {
		d := cfg.RetryMax
		if shift := s.failures - 1; shift < 30 && cfg.RetryBase<<shift < cfg.RetryMax {
			d = cfg.RetryBase << shift
		}
		return max(d, s.minInterval, s.retryIn)
	}
	switch {
	case s.minInterval > 0:
		return max(cfg.Interval, s.minInterval)
	case s.interval > 0:
		return max(cfg.Interval, s.interval)
	}
	return cfg.Interval
}

// hashState is one wire hash's announce state at one tracker: a hybrid torrent is
// announced under its v1 hash and its truncated v2 hash, each with its own started,
// tracker id and back-off, as libtorrent keeps them.
type hashState struct {
	hash metainfo.Hash
	trackerState
	due    time.Time       // next announce; zero: at once
	scrape *ScrapeResponse // figures of the last successful scrape
}

// work is one tracker URL's loop for one torrent. Every round announces each of the
// torrent's hashes that is due (all of them, unless one is backing off alone), so the
// peers of a hybrid's two swarms arrive merged, each address once.
func (a *Announcer) work(ctx context.Context, t discovery.TorrentInfo, rawURL string, after <-chan struct{}) {
	defer a.wg.Done()
	if after != nil {
		select {
		case <-after:
		case <-ctx.Done():
			return
		}
	}
	c := a.c
	label := TrackerLabel(rawURL)
	log := c.log.With("tracker", Redact(rawURL), "infohash", t.Label)
	defer c.m.deleteScrape(t.Label, label)
	hashes := t.AnnounceHashes()
	sts := make([]hashState, len(hashes))
	for i, h := range hashes {
		sts[i].hash = h
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			a.stop(ctx, t, rawURL, sts)
			return
		case <-timer.C:
		}
		res := a.round(ctx, t, rawURL, sts, time.Now())
		if ctx.Err() != nil {
			a.stop(ctx, t, rawURL, sts)
			return
		}
		now := time.Now()
		for _, hr := range res.Hashes {
			st := stateOf(sts, hr.Hash)
			st.due = now.Add(st.nextDelay(c.cfg))
		}
		delay, live := nextDue(sts, now)
		c.m.interval.WithLabelValues(label).Set(delay.Seconds())
		for _, hr := range res.Hashes {
			hlog := log
			if len(sts) > 1 {
				hlog = log.With("hash", hr.Hash.String())
			}
			st := stateOf(sts, hr.Hash)
			if hr.AnnounceErr != nil {
				hlog.Warn("tracker announce failed", "reason", ReasonOf(hr.AnnounceErr), "err", hr.AnnounceErr,
					"failures", st.failures, "retry_in", st.due.Sub(now).Round(time.Second))
			} else {
				hlog.Debug("tracker announce", "event", res.Event.String(), "peers", len(hr.Announce.Peers),
					"interval", hr.Announce.Interval, "min_interval", hr.Announce.MinInterval, "next_in", delay)
				if hr.Announce.Warning != "" {
					hlog.Warn("tracker warning message", "warning", hr.Announce.Warning)
				}
			}
			if hr.ScrapeErr != nil {
				hlog.Warn("tracker scrape failed", "reason", ReasonOf(hr.ScrapeErr), "err", hr.ScrapeErr)
			}
		}
		if c.cfg.OnResult != nil {
			c.cfg.OnResult(res)
		}
		if !a.send(ctx, res) {
			a.stop(ctx, t, rawURL, sts)
			return
		}
		if !live {
			// The tracker asked never to be asked again (BEP 31), under every hash: idle
			// until removal or shutdown. No stopped is owed: it refused our started.
			log.Warn("tracker asked never to retry; not announcing to it again for this torrent")
			c.m.interval.WithLabelValues(label).Set(0)
			<-ctx.Done()
			return
		}
		timer.Reset(delay)
	}
}

func stateOf(sts []hashState, h metainfo.Hash) *hashState {
	for i := range sts {
		if sts[i].hash == h {
			return &sts[i]
		}
	}
	panic("tracker: result for a hash the torrent does not have")
}

// nextDue is the wait until the next hash is due; live is false when the tracker said
// never to every hash.
func nextDue(sts []hashState, now time.Time) (delay time.Duration, live bool) {
	first := time.Time{}
	for i := range sts {
		if sts[i].never {
			continue
		}
		if !live || sts[i].due.Before(first) {
			first, live = sts[i].due, true
		}
	}
	return max(first.Sub(now), 0), live
}

// round announces every hash due at now and, if the tracker has a scrape endpoint,
// scrapes each of them. The Result merges them (see mergeAnnounces, mergeScrapes); the
// scrape gauges show the merge of every hash's last figures.
func (a *Announcer) round(ctx context.Context, t discovery.TorrentInfo, rawURL string, sts []hashState, now time.Time) Result {
	c := a.c
	res := Result{URL: rawURL, Tracker: TrackerLabel(rawURL), Torrent: t.Hash, Event: EventNone}
	var scrapes []*ScrapeResponse
	var oks []*AnnounceResponse
	for i := range sts {
		st := &sts[i]
		if st.never || st.due.After(now) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		hr := a.roundHash(ctx, t, rawURL, st)
		if hr.event == EventStarted {
			res.Event = EventStarted
		}
		res.Hashes = append(res.Hashes, hr.HashResult)
		if hr.Announce != nil {
			oks = append(oks, hr.Announce)
		} else if res.AnnounceErr == nil {
			res.AnnounceErr = hr.AnnounceErr
		}
		if hr.Scrape != nil {
			st.scrape = hr.Scrape
			scrapes = append(scrapes, hr.Scrape)
		} else if hr.ScrapeErr != nil && res.ScrapeErr == nil {
			res.ScrapeErr = hr.ScrapeErr
		}
	}
	if len(oks) > 0 {
		res.Announce, res.AnnounceErr = mergeAnnounces(oks), nil
	}
	if len(scrapes) > 0 {
		res.Scrape, res.ScrapeErr = mergeScrapes(scrapes), nil
		var last []*ScrapeResponse
		for i := range sts {
			if sts[i].scrape != nil {
				last = append(last, sts[i].scrape)
			}
		}
		c.m.setScrape(t.Label, res.Tracker, mergeScrapes(last))
	}
	return res
}

// hashRound is roundHash's answer: the hash's results and the event it announced.
type hashRound struct {
	HashResult
	event Event
}

// roundHash is one announce under one hash plus, when the tracker is reachable and has a
// scrape endpoint, one scrape of it.
func (a *Announcer) roundHash(ctx context.Context, t discovery.TorrentInfo, rawURL string, st *hashState) hashRound {
	c := a.c
	ev := EventNone
	if !st.started {
		ev = EventStarted
	}
	hr := hashRound{HashResult: HashResult{Hash: st.hash}, event: ev}
	resp, err := c.announce(ctx, rawURL, a.request(t, st.hash, ev, st.trackerID))
	if err != nil {
		hr.AnnounceErr = err
		st.failures++
		st.retryIn, st.never = 0, false
		var fr *failureReply
		if errors.As(err, &fr) {
			st.retryIn, st.never = fr.retryIn, fr.never
		}
	} else {
		hr.Announce = resp
		st.failures = 0
		st.started = true
		st.interval, st.minInterval = resp.Interval, resp.MinInterval
		if resp.TrackerID != "" {
			st.trackerID = resp.TrackerID
		}
	}
	// Scrape when the tracker is reachable: after a timeout or connection failure a
	// scrape would only wait as long again.
	switch ReasonOf(hr.AnnounceErr) {
	case ReasonTimeout, ReasonConnection, ReasonCanceled:
		return hr
	}
	if ctx.Err() == nil && canScrape(rawURL) {
		hr.Scrape, hr.ScrapeErr = c.scrape(ctx, rawURL, st.hash)
	}
	return hr
}

func (a *Announcer) request(t discovery.TorrentInfo, h metainfo.Hash, ev Event, trackerID string) AnnounceRequest {
	cfg := a.c.cfg
	return AnnounceRequest{Hash: h, PeerID: cfg.PeerID, Key: cfg.Key, Port: cfg.Port,
		Left: left(t), Event: ev, NumWant: cfg.NumWant, TrackerID: trackerID}
}

// send hands the round's peers to the sightings channel, each address once, under the
// first hash it was found under (the torrent's ID first: the daemon dials a peer found only
// under a hybrid's other hash with that hash); false if ctx ended first.
func (a *Announcer) send(ctx context.Context, res Result) bool {
	if res.Announce == nil {
		return true
	}
	seen := make(map[netip.AddrPort]bool, len(res.Announce.Peers))
	for _, hr := range res.Hashes {
		if hr.Announce == nil {
			continue
		}
		for _, p := range hr.Announce.Peers {
			if seen[p] {
				continue
			}
			seen[p] = true
			select {
			case a.out <- discovery.Sighting{Torrent: hr.Hash, Addr: p, Source: discovery.SourceTracker}:
			case <-ctx.Done():
				return false
			}
		}
	}
	return true
}

// stop sends event=stopped under every hash whose started the tracker accepted, bounded
// by StopTimeout.
func (a *Announcer) stop(ctx context.Context, t discovery.TorrentInfo, rawURL string, sts []hashState) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.c.cfg.StopTimeout)
	defer cancel()
	for i := range sts {
		st := &sts[i]
		if !st.started {
			continue
		}
		if _, err := a.c.announce(sctx, rawURL, a.request(t, st.hash, EventStopped, st.trackerID)); err != nil {
			a.c.log.Info("tracker stopped announce failed", "tracker", Redact(rawURL), "infohash", t.Label,
				"hash", st.hash.String(), "reason", ReasonOf(err), "err", err)
		}
		st.started = false
	}
}
