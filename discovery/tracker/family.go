package tracker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sync"
)

// A tracker hands out peers of the address family it was asked on (BEP 7, BEP 15: an
// announce over IPv6 returns IPv6 peers), so btda announces over each family the tracker's
// host resolves to: to its first IPv4 and its first IPv6 address, in parallel, and merges
// the replies. One logical request still counts once in the metrics, labelled by host
// only; it fails only when every family fails. When source addresses are configured, a
// family without one is not used.

// lookupFunc resolves a host name; tests replace it.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// trackerAddrs returns the addresses to announce to for host: the literal itself, or the
// first IPv4 and first IPv6 address it resolves to (IPv4 first), of the usable families.
func trackerAddrs(ctx context.Context, cfg Config, host string) ([]netip.Addr, error) {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		lctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
		ips, err = cfg.lookup(lctx, host)
		cancel()
		if err != nil || len(ips) == 0 {
			if err == nil {
				return nil, withReason(ReasonConnection, "resolving %s: no address", host)
			}
			return nil, &reasonError{reason: classify(err), err: fmt.Errorf("resolving %s: %w", host, err)}
		}
	}
	var v4, v6 netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Zone() != "" || !cfg.Source.Allows(ip) {
			continue
		}
		if ip.Is4() && !v4.IsValid() {
			v4 = ip
		} else if ip.Is6() && !v6.IsValid() {
			v6 = ip
		}
	}
	var out []netip.Addr
	for _, ip := range []netip.Addr{v4, v6} {
		if ip.IsValid() {
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		return nil, withReason(ReasonConnection, "%s has no address of a family btda may use (source addresses: %s)", host, cfg.Source)
	}
	return out, nil
}

// hostOf is rawURL's host name or literal, without brackets.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// familyName is "ipv4" or "ipv6", for logs.
func familyName(ip netip.Addr) string {
	if ip.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// announceFamilies runs f for every address at once and merges the successes; with every
// family failing it returns the first family's error.
func announceFamilies(ctx context.Context, cfg Config, rawURL string, ips []netip.Addr, f func(context.Context, netip.Addr) (*AnnounceResponse, error)) (*AnnounceResponse, error) {
	if len(ips) == 1 {
		return f(ctx, ips[0])
	}
	resps := make([]*AnnounceResponse, len(ips))
	errs := make([]error, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = f(ctx, ip)
		}()
	}
	wg.Wait()
	var ok []*AnnounceResponse
	for i, r := range resps {
		if errs[i] != nil {
			cfg.Logger.Debug("tracker announce failed over one address family", "tracker", Redact(rawURL),
				"family", familyName(ips[i]), "reason", ReasonOf(errs[i]), "err", errs[i])
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return nil, errs[0]
	}
	return mergeAnnounces(ok), nil
}

// scrapeFamilies tries the addresses in turn until one scrape succeeds: a scrape's figures
// do not depend on the family asked on.
func scrapeFamilies(ctx context.Context, ips []netip.Addr, f func(context.Context, netip.Addr) (*ScrapeResponse, error)) (*ScrapeResponse, error) {
	var first error
	for _, ip := range ips {
		r, err := f(ctx, ip)
		if err == nil {
			return r, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// mergeAnnounces combines the replies of one tracker over several families: peers of all
// (each once), the longest intervals (so that no family is asked more often than it
// allows), the first tracker id and warning, and the largest counts (a tracker may count
// each family's swarm on its own; the larger is the better lower bound).
func mergeAnnounces(rs []*AnnounceResponse) *AnnounceResponse {
	if len(rs) == 1 {
		return rs[0]
	}
	m := &AnnounceResponse{Seeders: -1, Leechers: -1}
	seen := map[netip.AddrPort]bool{}
	for _, r := range rs {
		m.Interval = max(m.Interval, r.Interval)
		m.MinInterval = max(m.MinInterval, r.MinInterval)
		if m.TrackerID == "" {
			m.TrackerID = r.TrackerID
		}
		if m.Warning == "" {
			m.Warning = r.Warning
		}
		m.Seeders = max(m.Seeders, r.Seeders)
		m.Leechers = max(m.Leechers, r.Leechers)
		for _, p := range r.Peers {
			if !seen[p] {
				seen[p] = true
				m.Peers = append(m.Peers, p)
			}
		}
	}
	m.Peers = slices.Clip(m.Peers)
	return m
}
