package main

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest"
)

// accuracySeed gives three torrents of at least 1,588 pieces each (v1, v2 and hybrid), so
// every scripted rate below fits between the start and the threshold.
const accuracySeed = 15

// accuracyRates are the scripted piece rates (pieces per second, each an exact divisor of
// one second so the swarm's Interval is exact).
//
// Tolerance: btda's speed is (pieces gained × piece length) / Δt over intervals of at least
// one second (collector minSpeedInterval), between points stamped when a bitfield or have
// arrives. A point can lag the curve by under one piece at each end (the curve steps once
// per Interval), so the piece count of an interval is off by at most ±1–2 pieces; at ≥ 80
// pieces/s that is ≤ 2.5 % of a 1 s interval and far less on the usual ~3 s sessions. The
// machine's scheduling delay moves each stamp by up to that delay: well under 1 % of a
// second when idle, tens of milliseconds on a loaded 2-core machine. The peer's max speed is
// the largest of these samples, so its error is bounded by the same figures: 5 % (the
// issue's requirement) plus twice the scheduling delay the test measures during its run
// over the 1 s interval; a wrong byte/piece accounting or a wrong time base breaks it.
var accuracyRates = []int{80, 100, 125, 160}

// speedTolerance is the bound ("speeds within 5 % of the scripted rates"). It
// caught the probe's settle rule stamping a session's folded first second of haves with the
// session's start time (max speeds up to 2× the truth); measured errors are now ≤ 0.1 %.
const speedTolerance = 0.05

// minSpeedIntervalForTest is the collector's shortest speed interval (collector
// minSpeedInterval).
const minSpeedIntervalForTest = time.Second

// lagMonitor measures how late a short timer fires in this process while it runs: the
// machine's scheduling delay, which delays btda's reading of a have just as much.
type lagMonitor struct {
	quit chan struct{}
	lags chan []time.Duration
}

func startLagMonitor() *lagMonitor {
	m := &lagMonitor{quit: make(chan struct{}), lags: make(chan []time.Duration, 1)}
	go func() {
		var lags []time.Duration
		const tick = 10 * time.Millisecond
		for {
			start := time.Now()
			select {
			case <-m.quit:
				m.lags <- lags
				return
			case <-time.After(tick):
				lags = append(lags, max(0, time.Since(start)-tick))
			}
		}
	}()
	return m
}

// stop ends the measurement and returns the 99th percentile and the largest delay seen.
func (m *lagMonitor) stop() (p99, worst time.Duration) {
	close(m.quit)
	lags := <-m.lags
	if len(lags) == 0 {
		return 0, 0
	}
	slices.Sort(lags)
	return lags[len(lags)*99/100], lags[len(lags)-1]
}

// accuracyHidden reports whether the tracker leaves p out: btda can only learn of it from
// another peer's ut_pex or by its dialling in.
func accuracyHidden(p *swarmtest.Peer) bool { return p.Index%2 == 1 }

// startAccuracy is startE2E's scenario with scripted constant rates, no DHT (in the swarm
// and in btda) and a tracker that hands out only the peers accuracyHidden lets through.
// btda is not started: the tracker must be narrowed before btda's first announce.
func startAccuracy(ctx context.Context, t *testing.T, runFor time.Duration) *e2eRun {
	t.Helper()
	curves := func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
		switch p.Profile {
		case swarmtest.Libtorrent, swarmtest.Transmission, swarmtest.Rtorrent:
		default:
			return swarmtest.Curve{}, false
		}
		// Cross 5–8 s after btda first reaches the peer (the curve is anchored to that
		// contact), at a constant rate, starting rate × crossAt pieces below the threshold.
		// The probe folds up to 1 s of haves into a session's first report, so every
		// leecher still gives btda whole seconds of progress before it completes (~0.2 s
		// after crossing), however late btda found it (hidden peers come through PEX).
		rate := accuracyRates[p.Index%len(accuracyRates)]
		crossAt := 5 + p.Index%4
		n := p.Torrent.Pieces
		start := swarmtest.Threshold(0.98, n) - rate*crossAt
		if start < 0 {
			t.Fatalf("torrent of %d pieces is too small for %d pieces/s over %d s", n, rate, crossAt)
		}
		return swarmtest.Curve{Pieces: n, Start: start, Interval: time.Second / time.Duration(rate)}, true
	}
	r := startE2E(ctx, t, e2eScenario{Seed: accuracySeed, Torrents: 3, Peers: 45, RunFor: runFor, Curves: curves, NoDHT: true, Anchored: true})
	sw := r.sw

	// Narrow what the tracker hands out, under every hash it knows the torrent by (BEP 52:
	// a hybrid is announced under its v1 and its truncated v2 hash).
	for _, tor := range sw.Torrents() {
		var shown []netip.AddrPort
		for _, p := range sw.Peers() {
			if p.Torrent == tor && !accuracyHidden(p) {
				shown = append(shown, p.Addr)
			}
		}
		if tor.HasV1() {
			sw.Tracker().SetPeers(tor.InfoHashV1, shown)
		}
		if tor.HasV2() {
			sw.Tracker().SetPeers([20]byte(tor.InfoHashV2[:20]), shown)
		}
	}
	return r
}

// TestEndToEndAccuracy runs btda against a swarm of constant-rate leechers, with no DHT and
// a tracker that hides half the peers, then reads btda's store after a clean stop. It
// proves (1) every progressing leecher's max speed is within 5 % of its scripted rate, (2)
// peers the tracker never names are still found and observed, through ut_pex or by their
// dialling in, and are never credited to the tracker, and (3) the confirmed downloads,
// hidden peers included, equal the swarm's truth exactly.
func TestEndToEndAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
	defer cancel()
	lag := startLagMonitor()
	r := startAccuracy(ctx, t, 11*time.Second)
	d := startDaemonOn(t, r.cfgPath)
	exposition, truth, want := r.waitConfirmed(t, d, nil)
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	lagP99, lagMax := lag.stop()
	checkConfirmed(t, confirmedDownloads(exposition), want, truth)
	// A have stamped late by the machine's scheduling delay moves an interval's end by up to
	// that delay (and its start too): on an idle machine that is well under 1 % of the
	// shortest interval, on a loaded 2-core one tens of milliseconds. The tolerance widens by
	// the delay measured during this run (its 99th percentile), so the test holds on a busy machine and
	// still catches a wrong byte or time accounting (errors of tens of per cent or more).
	tolerance := speedTolerance + 2*lagP99.Seconds()/minSpeedIntervalForTest.Seconds()
	t.Logf("scheduling delay during the run: p99 %v, max %v; speed tolerance %.1f %%", lagP99, lagMax, 100*tolerance)

	st, err := store.Open(r.dbPath, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	byAddr := make(map[netip.AddrPort]*swarmtest.Peer)
	for _, p := range r.sw.Peers() {
		byAddr[p.Addr] = p
	}
	const (
		tracker  = 1 << discovery.SourceTracker
		pex      = 1 << discovery.SourcePEX
		incoming = 1 << discovery.SourceIncoming
	)
	var speeds, speedsOff, hiddenSeen, hiddenPEX, hiddenIncoming, hiddenCounted int
	var worst float64
	err = st.View(func(tx *store.Tx) error {
		for _, pt := range truth.Peers {
			ap := netip.AddrPortFrom(netip.MustParseAddr(pt.IP), pt.Port)
			p := byAddr[ap]
			if p == nil {
				return fmt.Errorf("truth peer %s is not in the swarm", ap)
			}
			h := metainfo.Hash(p.Torrent.WireHash)
			rec, ok, err := tx.Peer(st.PeerKey(h, ap.Addr(), ap.Port()))
			if err != nil {
				return err
			}
			if !ok && p.DialOut {
				// A peer that dialled in without naming its listen port is the
				// unknown-port identity.
				if rec, ok, err = tx.Peer(st.PeerKey(h, ap.Addr(), 0)); err != nil {
					return err
				}
			}
			observable := pt.Reports && pt.Class != "unobservable"
			if accuracyHidden(p) && ok {
				if rec.Sources&tracker != 0 {
					t.Errorf("peer %s (%s) is hidden from the tracker but its record has source tracker (%08b)", ap, pt.Profile, rec.Sources)
				}
				if rec.Sources&(pex|incoming) == 0 {
					t.Errorf("hidden peer %s (%s) has neither pex nor incoming among its sources (%08b)", ap, pt.Profile, rec.Sources)
				}
				hiddenSeen++
				if rec.Sources&pex != 0 {
					hiddenPEX++
				}
				if rec.Sources&incoming != 0 {
					hiddenIncoming++
				}
				if rec.Has(store.FlagCounted) {
					hiddenCounted++
				}
			}
			if accuracyHidden(p) && observable && (!ok || !rec.Has(store.FlagHasPoint)) {
				t.Errorf("hidden peer %s (%s, dial_out=%v) was never observed", ap, pt.Profile, p.DialOut)
			}
			if pt.Class != "leecher" || !pt.Reports || pt.BytesPerS <= 0 {
				continue
			}
			if !ok {
				t.Errorf("leecher %s (%s) has no record", ap, pt.Profile)
				continue
			}
			speeds++
			rel := (rec.MaxSpeed - pt.BytesPerS) / pt.BytesPerS
			worst = math.Max(worst, math.Abs(rel))
			t.Logf("leecher %s %-12s %5.0f pieces/s: max speed %.0f B/s, scripted %.0f B/s, error %+.2f %%",
				ap, pt.Profile, pt.PiecesPerS, rec.MaxSpeed, pt.BytesPerS, 100*rel)
			if math.Abs(rel) > tolerance {
				speedsOff++
				t.Errorf("leecher %s (%s): max speed %.0f B/s is %+.2f %% off the scripted %.0f B/s (tolerance %.1f %%)",
					ap, pt.Profile, rec.MaxSpeed, 100*rel, pt.BytesPerS, 100*tolerance)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d leecher speeds checked, %d off by more than %.1f %%, worst error %.2f %%; hidden peers seen %d (via pex %d, incoming %d, counted %d)",
		speeds, speedsOff, 100*tolerance, 100*worst, hiddenSeen, hiddenPEX, hiddenIncoming, hiddenCounted)
	// The scenario must exercise what it claims to, or it proves nothing.
	if speeds < 10 {
		t.Errorf("only %d leecher speeds checked", speeds)
	}
	if hiddenPEX == 0 || hiddenIncoming == 0 || hiddenCounted == 0 {
		t.Errorf("hidden peers: %d via pex, %d incoming, %d counted; each must be > 0", hiddenPEX, hiddenIncoming, hiddenCounted)
	}
}
