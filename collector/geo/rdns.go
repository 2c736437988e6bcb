package geo

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/time/rate"
)

// Resolver does reverse lookups; *net.Resolver satisfies it, tests pass a fake.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// RDNSConfig tunes the reverse-DNS workers. Zero fields take the defaults shown.
type RDNSConfig struct {
	Workers   int           // concurrent lookups (4)
	Rate      float64       // lookups per second across workers (20)
	Timeout   time.Duration // per lookup (2 s)
	Queue     int           // pending addresses; more are dropped, to be asked again later (1024)
	CacheSize int           // cached answers; the cache is emptied when full (65536)
}

func (c *RDNSConfig) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Rate <= 0 {
		c.Rate = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 65536
	}
}

// RDNS resolves addresses to registered domains in the background. Lookup never blocks:
// it answers from the cache or queues the address, and the caller asks again at the next
// observation of that peer.
type RDNS struct {
	cfg   RDNSConfig
	res   Resolver
	log   *slog.Logger
	queue chan netip.Addr

	mu      sync.Mutex
	cache   map[netip.Addr]string
	pending map[netip.Addr]struct{}

	lookups  prometheus.Counter
	failures *prometheus.CounterVec
	dropped  prometheus.Counter
}

// NewRDNS builds the reverse-DNS pool; call Run to start its workers.
func NewRDNS(cfg RDNSConfig, res Resolver, reg prometheus.Registerer, log *slog.Logger) (*RDNS, error) {
	cfg.defaults()
	r := &RDNS{cfg: cfg, res: res, log: log.With("component", "rdns"),
		queue: make(chan netip.Addr, cfg.Queue), cache: map[netip.Addr]string{}, pending: map[netip.Addr]struct{}{},
	}
	if err := r.newMetrics(reg); err != nil {
		return nil, err
	}
	return r, nil
}

// Lookup returns the registered domain of a if it is known (done is true, domain may be ""
// when there is none); otherwise it queues a and returns done false.
func (r *RDNS) Lookup(a netip.Addr) (domain string, done bool) {
	a = a.Unmap()
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.cache[a]; ok {
		return d, true
	}
	if _, ok := r.pending[a]; ok {
		return "", false
	}
	select {
	case r.queue <- a:
		r.pending[a] = struct{}{}
	default:
		r.dropped.Inc()
	}
	return "", false
}

// Run resolves queued addresses until ctx is done.
func (r *RDNS) Run(ctx context.Context) error {
	lim := rate.NewLimiter(rate.Limit(r.cfg.Rate), 1)
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-r.queue:
					if err := lim.Wait(ctx); err != nil {
						return
					}
					r.resolve(ctx, a)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

func (r *RDNS) resolve(ctx context.Context, a netip.Addr) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	r.lookups.Inc()
	names, err := r.res.LookupAddr(ctx, a.String())
	domain := ""
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &dnsErr) && dnsErr.IsTimeout):
			r.failures.WithLabelValues("timeout").Inc()
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			r.failures.WithLabelValues("not_found").Inc()
		default:
			r.failures.WithLabelValues("error").Inc()
			r.log.Debug("reverse lookup failed", "err", err)
		}
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			// Shutting down: forget the address so nothing caches a false "no domain".
			r.mu.Lock()
			delete(r.pending, a)
			r.mu.Unlock()
			return
		}
	} else {
		for _, n := range names {
			if domain = RegisteredDomain(n); domain != "" {
				break
			}
		}
		if domain == "" {
			r.failures.WithLabelValues("not_found").Inc()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, a)
	if len(r.cache) >= r.cfg.CacheSize {
		clear(r.cache)
	}
	r.cache[a] = domain
}

// RegisteredDomain reduces a host name to its registered domain (eTLD+1), lower case, or ""
// when there is none or the result looks like an address (so it can be a label value).
func RegisteredDomain(name string) string {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if name == "" || len(name) > 253 {
		return ""
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return ""
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return ""
	}
	if strings.HasSuffix(d, ".arpa") {
		return ""
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return ""
	}
	return d
}
