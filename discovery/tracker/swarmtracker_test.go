package tracker

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest/swarmtracker"
)

// TestSwarmTrackerFaults drives the HTTP and UDP clients through every fault mode of the
// test swarm's tracker (written apart from this package, with a strict request parser).
func TestSwarmTrackerFaults(t *testing.T) {
	checkGoroutines(t)
	peers := []netip.AddrPort{netip.MustParseAddrPort("127.3.0.1:6881"), netip.MustParseAddrPort("127.3.0.2:6882")}
	wantHTTP := map[swarmtracker.FaultMode]Reason{
		swarmtracker.FaultFailureReason: ReasonFailure,
		swarmtracker.FaultHTTP500:       ReasonHTTPStatus,
		swarmtracker.FaultGarbage:       ReasonBadResponse,
		swarmtracker.FaultNonDict:       ReasonBadResponse,
		swarmtracker.FaultHugeBody:      ReasonBodyTooLarge,
		swarmtracker.FaultSlow:          ReasonTimeout,
		swarmtracker.FaultRedirectLoop:  ReasonRedirects,
		swarmtracker.FaultNoReply:       ReasonConnection,
		swarmtracker.FaultTruncated:     ReasonConnection,
	}
	wantUDP := map[swarmtracker.FaultMode]Reason{
		swarmtracker.FaultFailureReason:    ReasonFailure,
		swarmtracker.FaultGarbage:          ReasonBadResponse,
		swarmtracker.FaultSlow:             ReasonTimeout,
		swarmtracker.FaultNoReply:          ReasonTimeout,
		swarmtracker.FaultTruncated:        ReasonBadResponse,
		swarmtracker.FaultWrongTransaction: ReasonBadResponse,
		swarmtracker.FaultForeignPacket:    ReasonBadResponse,
	}
	for _, proto := range []string{"http", "udp"} {
		for _, mode := range swarmtracker.FaultModes() {
			t.Run(proto+"/"+mode.String(), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				tr, err := swarmtracker.Start(ctx, swarmtracker.Config{SlowHold: 3 * time.Second, MinInterval: 60 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				tr.SetPeers(testHash, peers)
				u := tr.AnnounceURL() + "?passkey=abc"
				want := wantHTTP[mode]
				if proto == "udp" {
					u = tr.UDPAnnounceURL() + "?passkey=abc"
					want = wantUDP[mode]
				}
				tr.SetFault(mode)
				m, _ := newMetrics(nil)
				cfg := fastConfig(nil)
				if mode == swarmtracker.FaultSlow {
					cfg.HTTPTimeout = 200 * time.Millisecond
				}
				c := newCore(cfg, m)
				defer c.close()
				resp, err := c.announce(ctx, u, AnnounceRequest{Hash: testHash, PeerID: c.cfg.PeerID, Key: c.cfg.Key,
					Port: 65001, Left: testLength, Event: EventStarted, NumWant: 200})
				if ReasonOf(err) != want {
					t.Fatalf("announce: %v (reason %q), want reason %q", err, ReasonOf(err), want)
				}
				if mode == swarmtracker.FaultFailureReason && !strings.Contains(err.Error(), swarmtracker.FailureReason) {
					t.Errorf("failure reason text lost: %v", err)
				}
				if want != "" {
					return
				}
				if !slices.Equal(sortedPeers(resp.Peers), peers) {
					t.Errorf("peers %v, want %v", resp.Peers, peers)
				}
				if proto == "http" && resp.MinInterval != 60*time.Second {
					t.Errorf("min interval %v", resp.MinInterval)
				}
				if rej := tr.Rejections(); len(rej) != 0 {
					t.Errorf("tracker rejected our requests: %+v", rej)
				}
				anns := tr.AnnouncesFor(testHash)
				if len(anns) != 1 {
					t.Fatalf("%d announces recorded", len(anns))
				}
				a := anns[0]
				if a.Left != testLength || a.Uploaded != 0 || a.Downloaded != 0 || a.Port != 65001 ||
					a.Event != "started" || a.NumWant != 200 || a.PeerID != c.cfg.PeerID {
					t.Errorf("recorded announce %+v", a.AnnounceRequest)
				}
				if proto == "udp" && a.URLData != "/announce?passkey=abc" {
					t.Errorf("BEP 41 URLData %q", a.URLData)
				}
				// The tracker adds us only when it answered normally (doc.go).
				wantLeechers := int64(2)
				if mode == swarmtracker.FaultNone {
					wantLeechers = 3
				}
				s, err := c.scrape(ctx, u, testHash)
				if err != nil || s.Leechers != wantLeechers {
					t.Errorf("scrape %+v, %v; want %d leechers", s, err, wantLeechers)
				}
			})
		}
	}
}

func sortedPeers(p []netip.AddrPort) []netip.AddrPort {
	p = slices.Clone(p)
	slices.SortFunc(p, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return p
}

// TestSwarmTrackerIPv6: over [::1] the swarm tracker answers HTTP with BEP 7 peers6 and
// UDP with 18-byte peers.
func TestSwarmTrackerIPv6(t *testing.T) {
	checkGoroutines(t)
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback here (%v); IPv6 NOT tested", err)
	} else {
		c.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr, err := swarmtracker.Start(ctx, swarmtracker.Config{IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	peers := []netip.AddrPort{netip.MustParseAddrPort("127.3.0.1:6881"), netip.MustParseAddrPort("[::1]:6882"), netip.MustParseAddrPort("[fd00::3]:6883")}
	tr.SetPeers(testHash, peers)
	m, _ := newMetrics(nil)
	c := newCore(fastConfig(nil), m)
	defer c.close()
	for _, u := range []string{tr.AnnounceURL6(), tr.UDPAnnounceURL6()} {
		resp, err := c.announce(ctx, u, AnnounceRequest{Hash: testHash, Port: 6881, Left: 1, Event: EventStarted, NumWant: 50})
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		got := sortedPeers(resp.Peers)
		var want []netip.AddrPort
		for _, p := range peers {
			if p.Addr().Is6() || strings.HasPrefix(u, "http") {
				want = append(want, p) // HTTP hands out both families, UDP over IPv6 only IPv6
			}
		}
		if !slices.Equal(got, sortedPeers(want)) {
			t.Errorf("%s: peers %v, want %v", u, got, want)
		}
	}
}
