package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

// reachSeed gives, among 45 peers, leechers with every reach option and every pair of them,
// and dialling peers of every kind (checked below, so a change of the draw fails loudly).
const reachSeed = 23

// TestEndToEndReach (issue 11): a swarm where 40 % of the talking peers accept only MSE
// (RC4), a quarter speak uTP only and a quarter live on [::1] (the shares combine), some of
// them dialling btda (over MSE, uTP, [::1]); btda at its default reach settings
// (peer.encryption prefer_plaintext, uTP on) with loopback source addresses of both
// families. Every leecher must be reached and counted: the confirmed downloads equal the
// truth exactly per torrent and country, and btda's metrics show the sessions by
// encryption, transport and family.
func TestEndToEndReach(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
	defer cancel()
	triple := -1 // one leecher that needs everything and dials btda: MSE over uTP on [::1]
	outV6 := -1  // one MSE-only leecher on [::1] that never dials: btda must reach it over MSE and IPv6
	r := startE2E(ctx, t, e2eScenario{
		Seed: reachSeed, Torrents: 3, Peers: 45, RunFor: 20 * time.Second, Anchored: true,
		CrossAt:   func(p *swarmtest.Peer) time.Duration { return 4*time.Second + time.Duration(p.Index%5)*time.Second },
		Reach:     swarmtest.ReachConfig{RequireMSE: 0.4, UTPOnly: 0.25, IPv6: 0.25},
		DualStack: true,
		PeerFunc: func(p *swarmtest.Peer) {
			if triple < 0 && p.RequireMSE && p.Profile == swarmtest.Libtorrent {
				triple = p.Index
				p.UTPOnly, p.IPv6, p.DialOut = true, true, true
			}
			if outV6 < 0 && p.RequireMSE && !p.UTPOnly && !p.IPv6 && p.Profile == swarmtest.Transmission {
				outV6 = p.Index
				p.IPv6, p.DialOut = true, false
			}
		},
	})
	if triple < 0 || outV6 < 0 {
		t.Fatal("no MSE-only libtorrent and transmission peers to make the triple and outgoing-IPv6 cases")
	}
	// The scenario must hold every case, or the test proves less than it says.
	leechers, dialling := map[string]int{}, map[string]int{}
	for _, p := range r.sw.Peers() {
		k := reachKind(p)
		if r.sw.PeerTruth(p, truthHorizon).Class == "leecher" {
			for _, part := range strings.Split(k, "+") {
				leechers[part]++
			}
			if strings.Contains(k, "+") {
				leechers[k]++
			}
		}
		if p.DialOut {
			for _, part := range strings.Split(k, "+") {
				dialling[part]++
			}
		}
	}
	for _, k := range []string{"mse", "utp", "ipv6", "mse+utp", "mse+ipv6", "utp+ipv6", "mse+utp+ipv6", "plain"} {
		if leechers[k] == 0 {
			t.Fatalf("the scenario has no %s leecher (%v)", k, leechers)
		}
	}
	for _, k := range []string{"mse", "utp", "ipv6"} {
		if dialling[k] == 0 {
			t.Fatalf("no %s peer dials btda (%v)", k, dialling)
		}
	}
	t.Logf("leechers by reach: %v; dialling peers: %v", leechers, dialling)

	d := startDaemonOn(t, r.cfgPath)
	// Every [::1] peer shares one IP, and btda opens one connection per IP at a time: it
	// reaches them one after the other, a session cap apart. Wait until it reached every
	// leecher (or the deadline), so that the comparison below cannot agree before the last
	// of them was even contacted.
	deadline := time.Now().Add(e2eDeadline)
	for {
		missing := 0
		for _, p := range r.sw.Peers() {
			if _, ok := p.FirstContact(); !ok && r.sw.PeerTruth(p, truthHorizon).Class == "leecher" {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	exposition, truth, want := r.waitConfirmed(t, d, nil)
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	checkConfirmed(t, confirmedDownloads(exposition), want, truth)

	// Every leecher was reached (an anchored curve only runs once btda completed a
	// handshake with the peer) and so crossed and is counted.
	counted := map[string]int{}
	for i, pt := range truth.Peers {
		if pt.Class != "leecher" {
			continue
		}
		p := r.sw.Peers()[i]
		if !pt.Counted {
			t.Errorf("leecher %s (%s, %s) was never reached", p.Addr, p.Profile, reachKind(p))
			continue
		}
		counted[reachKind(p)]++
		if p.RequireMSE || p.UTPOnly || p.IPv6 {
			t.Logf("leecher %s %s (%s): dials btda %v, first contact %v", p.Addr, p.Profile, reachKind(p), p.DialOut, *pt.FirstContact)
		}
	}
	t.Logf("counted leechers by reach: %v (truth: %d crossings)", counted, truth.Total)

	// The ways btda reached them, in its metrics.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"btda_probe_connections_total", map[string]string{"direction": "outgoing", "transport": "tcp", "encryption": "rc4"}},
		{"btda_probe_connections_total", map[string]string{"direction": "outgoing", "transport": "utp", "encryption": "none"}},
		{"btda_probe_connections_total", map[string]string{"direction": "outgoing", "transport": "utp", "encryption": "rc4"}},
		{"btda_probe_connections_total", map[string]string{"direction": "outgoing", "family": "ipv6"}},
		{"btda_probe_connections_total", map[string]string{"direction": "outgoing", "family": "ipv6", "encryption": "rc4"}},
		{"btda_probe_connections_total", map[string]string{"direction": "outgoing", "family": "ipv6", "transport": "utp"}},
		{"btda_probe_connections_total", map[string]string{"direction": "incoming", "encryption": "rc4"}},
		{"btda_probe_connections_total", map[string]string{"direction": "incoming", "transport": "utp"}},
		{"btda_probe_connections_total", map[string]string{"direction": "incoming", "family": "ipv6"}},
		{"btda_probe_connections_total", map[string]string{"direction": "incoming", "family": "ipv6", "transport": "utp", "encryption": "rc4"}},
		{"btda_probe_encryption_fallbacks_total", map[string]string{"to": "mse"}},
		{"btda_probe_transport_fallbacks_total", map[string]string{"to": "utp"}},
	} {
		var sel []string
		for k, v := range c.labels {
			sel = append(sel, k+`="`+v+`"`)
		}
		if v := metricSum(exposition, c.name, sel...); v <= 0 {
			t.Errorf("%s%v = %v, want some", c.name, c.labels, v)
		}
	}
	for _, l := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(l, "btda_probe_connections_total{") && !strings.HasSuffix(l, " 0") ||
			strings.HasPrefix(l, "btda_probe_encryption_fallbacks_total{") || strings.HasPrefix(l, "btda_probe_transport_fallbacks_total{") {
			t.Log(l)
		}
	}
	// btda announced to the UDP tracker on [::1] too (BEP 15 over IPv6 hands out 18-byte
	// IPv6 peers; over IPv4 only IPv4 ones).
	byWay := map[string]int{}
	for _, a := range r.sw.Tracker().Announces() {
		fam := "ipv4"
		if a.Remote.Addr().Is6() && !a.Remote.Addr().Is4In6() {
			fam = "ipv6"
		}
		byWay[string(a.Protocol)+"/"+fam]++
	}
	t.Logf("tracker announces by protocol/family: %v", byWay)
	if byWay["udp/ipv6"] == 0 {
		t.Error("btda never announced to the UDP tracker on [::1]")
	}
	st := r.sw.Stats()
	t.Logf("swarm: %d MSE handshakes, %d plaintext handshakes refused, %d uTP sessions, %d dial-outs", st.Encrypted, st.PlaintextRefused, st.UTPSessions, st.DialOuts)
}

// reachKind names a peer's reach options ("mse+utp+ipv6", or "plain").
func reachKind(p *swarmtest.Peer) string {
	var parts []string
	if p.RequireMSE {
		parts = append(parts, "mse")
	}
	if p.UTPOnly {
		parts = append(parts, "utp")
	}
	if p.IPv6 {
		parts = append(parts, "ipv6")
	}
	if len(parts) == 0 {
		return "plain"
	}
	return strings.Join(parts, "+")
}
