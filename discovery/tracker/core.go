package tracker

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// core holds what every tracker request needs: the HTTP and UDP clients, the metrics and
// the logger. It turns every failure into an *Error and records the request.
type core struct {
	cfg   Config
	http4 *http.Client
	http6 *http.Client
	udp   *udpClient
	m     *metrics
	log   *slog.Logger
	sem   chan struct{} // request slots (Config.MaxConcurrent)
}

func newCore(cfg Config, m *metrics) *core {
	cfg = cfg.withDefaults()
	cfg.Logger = cfg.Logger.With("component", "tracker")
	return &core{cfg: cfg, http4: newHTTPClient(cfg, "tcp4"), http6: newHTTPClient(cfg, "tcp6"),
		udp: newUDPClient(cfg), m: m, log: cfg.Logger, sem: make(chan struct{}, cfg.MaxConcurrent)}
}

func (c *core) close() {
	c.udp.close()
	c.http4.CloseIdleConnections()
	c.http6.CloseIdleConnections()
}

// httpFor is the HTTP client of ip's family.
func (c *core) httpFor(ip netip.Addr) *http.Client {
	if ip.Is4() {
		return c.http4
	}
	return c.http6
}

// httpAnnounce announces over every family of the tracker's host.
func (c *core) httpAnnounce(ctx context.Context, rawURL string, r AnnounceRequest) (*AnnounceResponse, error) {
	host := hostOf(rawURL)
	ips, err := trackerAddrs(ctx, c.cfg, host)
	if err != nil {
		return nil, err
	}
	return announceFamilies(ctx, c.cfg, rawURL, ips, func(ctx context.Context, ip netip.Addr) (*AnnounceResponse, error) {
		return httpAnnounce(withPin(ctx, host, ip), c.httpFor(ip), c.cfg, rawURL, r)
	})
}

// httpScrape scrapes over the first family of the tracker's host that answers.
func (c *core) httpScrape(ctx context.Context, scrapeURL string, h metainfo.Hash) (*ScrapeResponse, error) {
	host := hostOf(scrapeURL)
	ips, err := trackerAddrs(ctx, c.cfg, host)
	if err != nil {
		return nil, err
	}
	return scrapeFamilies(ctx, ips, func(ctx context.Context, ip netip.Addr) (*ScrapeResponse, error) {
		return httpScrape(withPin(ctx, host, ip), c.httpFor(ip), c.cfg, scrapeURL, h)
	})
}

func scheme(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Scheme
}

// supported reports whether rawURL is a tracker URL btda can talk to.
func supported(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return false
	}
	switch u.Scheme {
	case "http", "https":
		return true
	case "udp":
		return u.Port() != ""
	}
	return false
}

// fail wraps err as an *Error for kind and rawURL and counts it.
func (c *core) fail(label, kind, rawURL string, err error) *Error {
	var te *Error
	if !errors.As(err, &te) {
		te = &Error{Reason: classify(err), Kind: kind, URL: Redact(rawURL), Err: err}
	}
	c.m.failures.WithLabelValues(label, kind, string(te.Reason)).Inc()
	return te
}

// acquire takes a request slot; false if ctx ended first.
func (c *core) acquire(ctx context.Context) bool {
	select {
	case c.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *core) release() { <-c.sem }

// announce runs one announce against rawURL and records it.
func (c *core) announce(ctx context.Context, rawURL string, r AnnounceRequest) (*AnnounceResponse, error) {
	label := TrackerLabel(rawURL)
	if !c.acquire(ctx) {
		return nil, &Error{Reason: ReasonCanceled, Kind: KindAnnounce, URL: Redact(rawURL), Err: ctx.Err()}
	}
	defer c.release()
	c.m.requests.WithLabelValues(label, KindAnnounce).Inc()
	start := time.Now()
	var resp *AnnounceResponse
	var err error
	switch scheme(rawURL) {
	case "http", "https":
		resp, err = c.httpAnnounce(ctx, rawURL, r)
	case "udp":
		resp, err = c.udp.announce(ctx, rawURL, r)
	default:
		err = withReason(ReasonProtocol, "unsupported tracker URL scheme %q", scheme(rawURL))
	}
	c.m.duration.WithLabelValues(label, KindAnnounce).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, c.fail(label, KindAnnounce, rawURL, err)
	}
	c.m.peers.WithLabelValues(label).Add(float64(len(resp.Peers)))
	c.m.lastSuccess.WithLabelValues(label).Set(float64(time.Now().UnixNano()) / 1e9)
	return resp, nil
}

// canScrape reports whether rawURL has a scrape endpoint (UDP always; HTTP by BEP 48).
func canScrape(rawURL string) bool {
	switch scheme(rawURL) {
	case "udp":
		return true
	case "http", "https":
		_, ok := ScrapeURL(rawURL)
		return ok
	}
	return false
}

// scrape runs one scrape of h against rawURL and records it; the caller sets the scrape
// gauges (a hybrid's figures are the merge of its two hashes').
func (c *core) scrape(ctx context.Context, rawURL string, h metainfo.Hash) (*ScrapeResponse, error) {
	label := TrackerLabel(rawURL)
	if !c.acquire(ctx) {
		return nil, &Error{Reason: ReasonCanceled, Kind: KindScrape, URL: Redact(rawURL), Err: ctx.Err()}
	}
	defer c.release()
	c.m.requests.WithLabelValues(label, KindScrape).Inc()
	start := time.Now()
	var resp *ScrapeResponse
	var err error
	switch scheme(rawURL) {
	case "http", "https":
		if su, ok := ScrapeURL(rawURL); ok {
			resp, err = c.httpScrape(ctx, su, h)
		} else {
			err = withReason(ReasonProtocol, "no scrape URL: the last path segment does not start with \"announce\"")
		}
	case "udp":
		resp, err = c.udp.scrape(ctx, rawURL, h)
	default:
		err = withReason(ReasonProtocol, "unsupported tracker URL scheme %q", scheme(rawURL))
	}
	c.m.duration.WithLabelValues(label, KindScrape).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, c.fail(label, KindScrape, rawURL, err)
	}
	return resp, nil
}
