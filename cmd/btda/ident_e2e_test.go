package main

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest"
	"github.com/btda/btda/probe"
)

// downloadsOf reads the stored confirmed-download log of the run's store.
func downloadsOf(t *testing.T, r *e2eRun) (*store.Store, []store.Download) {
	t.Helper()
	st, err := store.Open(r.dbPath, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ds []store.Download
	if err := st.View(func(tx *store.Tx) error {
		return tx.Downloads(r.sw.StartTime().Add(-time.Hour), time.Now().Add(time.Hour), func(d store.Download) error {
			ds = append(ds, d)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return st, ds
}

// TestEndToEndIncomingHold: leechers btda can learn of only through their own connections
// (given to no tracker, DHT or PEX; behind a NAT) connect to btda once while they download
// (their next connection would come a minute later), cross 4–8 s after that, and quit 1 s
// after they finish. Only a held incoming connection can see their crossing; the other
// leechers are found by the tracker and caught by btda's own visits. Every crossing is
// counted once, the incoming ones by incoming sessions, with the crossing time read on the
// wire.
func TestEndToEndIncomingHold(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~30 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
	defer cancel()
	var hidden []int
	r := startE2E(ctx, t, e2eScenario{
		Seed: 29, Torrents: 1, Peers: 10, RunFor: 30 * time.Second, Anchored: true, NoDHT: true,
		Probe: catchProbe, Redial: time.Minute,
		Mix: map[swarmtest.Profile]float64{swarmtest.Transmission: 1, swarmtest.Libtorrent: 1},
		Curves: func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			n := p.Torrent.Pieces
			thr := swarmtest.Threshold(0.98, n)
			c := swarmtest.Curve{Pieces: n, Start: n / 3}
			c.Interval = (4*time.Second + time.Duration(p.Index%3)*2*time.Second) / time.Duration(thr-c.Start)
			c.LeaveAt = time.Duration(n-c.Start)*c.Interval + time.Second
			return c, true
		},
		PeerFunc: func(p *swarmtest.Peer) {
			// Half the peers, of both profiles: Transmission tells its port (`p`), so
			// the scheduler keeps off it while it is held; libtorrent here does not.
			p.DialOut = p.Index%2 == 0
			p.Unlisted = p.DialOut
			if p.DialOut {
				hidden = append(hidden, p.Index)
				if p.Profile == swarmtest.Libtorrent {
					p.HidePortFor = time.Hour
				}
			}
		},
	})
	d := startDaemonOn(t, r.cfgPath)
	exposition, truth, want := r.waitConfirmed(t, d, nil)
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	checkConfirmed(t, confirmedDownloads(exposition), want, truth)

	st, ds := downloadsOf(t, r)
	incoming := 0
	for _, dl := range ds {
		if probe.Direction(dl.Direction) == probe.Incoming {
			incoming++
		}
	}
	start := r.sw.StartTime()
	counted := 0
	for _, i := range hidden {
		p := r.sw.Peers()[i]
		pt := r.sw.PeerTruth(p, truthHorizon)
		if !pt.Counted {
			continue
		}
		counted++
		port := p.Addr.Port()
		if p.HidePortFor > 0 {
			port = 0
		}
		key := st.PeerKey(metainfo.Hash(p.Torrent.WireHash), p.Addr.Addr(), port)
		cross := start.Add(*pt.CrossAt)
		n := 0
		for _, dl := range ds {
			if dl.Peer != key {
				continue
			}
			n++
			t.Logf("peer %d (%s, port %d): crossed at %v, counted at %v (%d → %d pieces, %v)", i, p.Profile, port,
				cross.Format(time.StampMilli), dl.At.Format(time.StampMilli), dl.Below, dl.Above, probe.Direction(dl.Direction))
			if probe.Direction(dl.Direction) != probe.Incoming || dl.At.Sub(cross).Abs() > 2*time.Second {
				t.Errorf("peer %d: not counted by its held incoming session at its crossing", i)
			}
		}
		if n != 1 {
			t.Errorf("peer %d (%s), crossing at %v: %d confirmed downloads", i, p.Profile, cross, n)
		}
	}
	if counted == 0 || counted < len(hidden)/2 {
		t.Fatalf("%d of %d hidden peers crossed: the scenario proves little", counted, len(hidden))
	}
	if incoming != counted {
		t.Errorf("%d confirmed downloads counted by incoming sessions, %d hidden peers crossed", incoming, counted)
	}
}

// TestEndToEndUnknownPortMerged: a client (one peer_id for all its connections) that btda
// can learn of only through its own connections first connects without telling its port
// (aria2 in a DHT swarm, whose first sessions closed before the extension handshake told
// it), below the threshold; it crosses; its next connection, at or above the threshold,
// tells its port. The unknown-port identity stored first becomes the known-port one: one
// identity, one confirmed download, the crossing between the two sessions counted with its
// window. (Watching is off, so that the crossing falls between two sessions; btda does not
// visit the client afterwards, as it is done. The collector's table test covers a known
// port from btda's own visit, which takes the same path.)
func TestEndToEndUnknownPortMerged(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
	defer cancel()
	client := -1
	r := startE2E(ctx, t, e2eScenario{
		Seed: 31, Torrents: 1, Peers: 4, RunFor: 20 * time.Second, Anchored: true, NoDHT: true,
		Probe: catchProbe + "  watch_budget: 0\n",
		Mix:   map[swarmtest.Profile]float64{swarmtest.Transmission: 1},
		Curves: func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			n := p.Torrent.Pieces
			if p.Index != 0 {
				return swarmtest.Curve{Pieces: n, Start: n}, true // seeds
			}
			// Three pieces below the threshold at first contact, one every 400 ms (above
			// the quiet window, so its first session ends below), at the threshold after
			// 1.2 s, before its next connection (2 s after the first ends).
			thr := swarmtest.Threshold(0.98, n)
			return swarmtest.Curve{Pieces: n, Start: thr - 3, Interval: 400 * time.Millisecond}, true
		},
		PeerFunc: func(p *swarmtest.Peer) {
			p.DialOut = p.Index == 0
			if p.DialOut {
				client = p.Index
				p.Unlisted, p.FixedPeerID, p.HidePortFor = true, true, time.Second
			}
		},
	})
	if client < 0 {
		t.Fatal("no client")
	}
	p := r.sw.Peers()[client]
	d := startDaemonOn(t, r.cfgPath)
	exposition, truth, want := r.waitConfirmed(t, d, nil)
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	checkConfirmed(t, confirmedDownloads(exposition), want, truth)
	pt := r.sw.PeerTruth(p, truthHorizon)
	if !pt.Counted || truth.Total != 1 {
		t.Fatalf("the client did not cross (truth %d): the scenario proves nothing", truth.Total)
	}

	st, ds := downloadsOf(t, r)
	h := metainfo.Hash(p.Torrent.WireHash)
	var known, unknown store.Peer
	var okKnown, okUnknown bool
	_ = st.View(func(tx *store.Tx) error {
		known, okKnown, _ = tx.Peer(st.PeerKey(h, p.Addr.Addr(), p.Addr.Port()))
		unknown, okUnknown, _ = tx.Peer(st.PeerKey(h, p.Addr.Addr(), 0))
		return nil
	})
	t.Logf("client identity: %+v", known)
	if okUnknown {
		t.Errorf("the unknown-port identity is still stored: %+v", unknown)
	}
	cross := r.sw.StartTime().Add(*pt.CrossAt)
	if !okKnown || !known.Has(store.FlagCounted) || known.Has(store.FlagSeed) || known.Contacts < 2 ||
		!known.WindowStart.Before(cross) || known.CrossedAt.Before(cross) {
		t.Errorf("known-port identity %+v (stored %v), crossing at %v", known, okKnown, cross)
	}
	if len(ds) != 1 || ds[0].Peer != st.PeerKey(h, p.Addr.Addr(), p.Addr.Port()) {
		t.Errorf("download log %+v", ds)
	}
	if got := seriesSum(exposition, "btda_peer_identities_total{"); got != float64(len(r.sw.Peers())) {
		t.Errorf("%v identities for %d peers", got, len(r.sw.Peers()))
	}
}

// seriesSum adds the values of every series of a text exposition whose line starts with
// prefix.
func seriesSum(exposition, prefix string) float64 {
	var sum float64
	for _, l := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(l, prefix) {
			if f, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				sum += f
			}
		}
	}
	return sum
}
