package main

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest"
)

// catchProbe: a revisit delay far longer than any leecher's download, so that only the
// ways of issue 12 can catch the crossings: held connections, revisits timed by ETA
// (probe.revisit_min), quick retries after no_progress.
const catchProbe = `probe:
  connect_timeout: 1s
  handshake_timeout: 1s
  quiet_window: 300ms
  session_cap: 3s
  revisit_delay: 10m
  revisit_min: 1s
  retry_backoff: 500ms
  watch_keepalive: 1s
  watch_silence: 5s
`

// TestEndToEndCatchEveryCrossing: leechers that download in 6–14 s after btda first reaches
// them (the 60–240 s, compressed tenfold) and quit 1 s after they finish, with
// btda's revisit delay at 10 minutes; rtorrent leechers that start empty and silent (no Fast:
// they send nothing at all) for 2 s; every swarm peer dropping connections idle for 3 s
// (aria2's 30 s, compressed); and one client that listens on one address but connects to
// btda from another, without `p`, under one peer_id (ctorrent). Every crossing must be
// counted once, none twice, seeds never: the confirmed downloads equal the truth exactly.
func TestEndToEndCatchEveryCrossing(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~30 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
	defer cancel()
	twoAddr := -1 // the index of the two-address client
	r := startE2E(ctx, t, e2eScenario{
		Seed: 17, Torrents: 2, Peers: 30, RunFor: 30 * time.Second, Anchored: true,
		Probe: catchProbe, IdleTimeout: 3 * time.Second,
		Curves: func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			switch p.Profile {
			case swarmtest.Libtorrent, swarmtest.Transmission, swarmtest.Rtorrent:
			default:
				return swarmtest.Curve{}, false
			}
			n := p.Torrent.Pieces
			thr := swarmtest.Threshold(0.98, n)
			start := n / 3
			c := swarmtest.Curve{Pieces: n}
			if p.Profile == swarmtest.Rtorrent {
				start, c.StallFor = 0, 2*time.Second // empty and silent at first
			}
			c.Start = start
			c.Interval = (6*time.Second + time.Duration(p.Index%5)*2*time.Second) / time.Duration(thr-start)
			c.LeaveAt = c.StallFor + time.Duration(n-start)*c.Interval + time.Second
			return c, true
		},
		PeerFunc: func(p *swarmtest.Peer) {
			if twoAddr < 0 && p.Profile == swarmtest.Transmission {
				twoAddr = p.Index
				p.DialOut, p.FixedPeerID = true, true
				p.Curve.LeaveAt += 5 * time.Second // its redials then show it above the threshold too
				// Another address of the same network, so GeoIP places both in one country.
				a := p.Addr.Addr().As4()
				a[3] = 250
				p.DialFrom = netip.AddrFrom4(a)
			}
		},
	})
	if twoAddr < 0 {
		t.Fatal("the scenario has no transmission peer to connect from a second address")
	}
	d := startDaemonOn(t, r.cfgPath)
	exposition, truth, want := r.waitConfirmed(t, d, nil)
	stderr := d.stderr.String()
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	checkConfirmed(t, confirmedDownloads(exposition), want, truth)

	p := r.sw.Peers()[twoAddr]
	pt := r.sw.PeerTruth(p, truthHorizon)
	if !pt.Counted {
		t.Errorf("the two-address client %s did not cross: the scenario proves nothing about it", p.Addr)
	}
	// Its two identities: (listen address, port) from btda's visits and (second address,
	// unknown port) from its own connections. Both may have crossed; one is counted.
	st, err := store.Open(r.dbPath, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := metainfo.Hash(p.Torrent.WireHash)
	var counted, crossed int
	_ = st.View(func(tx *store.Tx) error {
		for _, k := range []store.PeerKey{st.PeerKey(h, p.Addr.Addr(), p.Addr.Port()), st.PeerKey(h, p.DialFrom, 0)} {
			rec, ok, _ := tx.Peer(k)
			t.Logf("two-address client identity %x: stored %v, contacts %d, first %+v, last %+v, flags %b", k[:4], ok, rec.Contacts, rec.First, rec.Last, rec.Flags)
			if ok {
				if rec.Has(store.FlagConfirmed) {
					crossed++
				}
				if rec.Has(store.FlagCounted) {
					counted++
				}
			}
		}
		return nil
	})
	t.Logf("two-address client: %d identities crossed, %d counted", crossed, counted)
	if counted != 1 {
		t.Errorf("the two-address client was counted %d times", counted)
	}
	if n := strings.Count(stderr, `msg="confirmed download"`); n != truth.Total {
		t.Errorf("%d audit lines, %d confirmed downloads in the truth", n, truth.Total)
	}
}
