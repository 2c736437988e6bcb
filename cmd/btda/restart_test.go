package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/swarmtest"
)

// e2eScenario describes btda against the test swarm: the swarm's shape and the btda
// configuration that reaches it. Zero fields take the values of TestEndToEndSwarm.
type e2eScenario struct {
	Seed     uint64
	Torrents int
	Peers    int
	RunFor   time.Duration
	Mix      map[swarmtest.Profile]float64
	// CrossAt is when a leecher of the three common clients crosses the threshold (it
	// starts at half the pieces); nil leaves every peer's drawn curve.
	CrossAt func(p *swarmtest.Peer) time.Duration
	// Curves, when set, replaces CrossAt: any scripted curve (constant rates, ...).
	Curves func(p *swarmtest.Peer) (swarmtest.Curve, bool)
	// NoDHT runs neither the swarm's DHT nor btda's node: the tracker, PEX and incoming
	// connections are the only sources.
	NoDHT bool
	// Probe replaces the probe: section of the btda configuration.
	Probe string
	// CityDB replaces the swarm's GeoIP city database path.
	CityDB string
	// NoDialOut keeps every peer from dialling btda (only btda's probes reach them), so
	// each peer is exactly one identity.
	NoDialOut bool
	// StorePath replaces the store's path (default: btda.db in the run's folder).
	StorePath string
	// Anchored starts every scripted curve (CrossAt or Curves) at the peer's first
	// completed handshake instead of at swarm time 0, so that btda always sees a leecher
	// below the threshold first however slow the machine is. The truth then depends on
	// when btda reached each peer: read it after the run (truthNow, waitConfirmed).
	Anchored bool
	// IdleTimeout, if set, makes every swarm peer drop a connection on which btda sent
	// nothing for this long (aria2 drops idle links after 30 s).
	IdleTimeout time.Duration
	// PeerFunc, if set, adjusts each peer (swarmtest.Config.PeerFunc).
	PeerFunc func(p *swarmtest.Peer)
	// Reach gives shares of the swarm's peers reach options (MSE required, uTP only, IPv6).
	Reach swarmtest.ReachConfig
	// DualStack has btda listen and dial on 127.0.0.1 and [::1] (peer.source_addresses),
	// take any number of incoming connections per IP (every IPv6 peer is ::1), and the
	// swarm's IPv6 peers dial it on [::1].
	DualStack bool
	// Redial is how long a dial-out peer waits after a session with btda before the next
	// (default 2 s).
	Redial time.Duration
}

// truthHorizon is the truth window of anchored runs: every scripted crossing happens
// within seconds of first contact, so this is "the whole run".
const truthHorizon = time.Hour

// e2eDeadline bounds waitConfirmed: generous, so that a slow or busy machine only makes
// the tests slower, never wrong.
const e2eDeadline = 3 * time.Minute

// e2eMix is the profile mix of the end-to-end tests: mostly leechers, one of each odd case.
var e2eMix = map[swarmtest.Profile]float64{
	swarmtest.Libtorrent: 6, swarmtest.Transmission: 4, swarmtest.Rtorrent: 3, swarmtest.LazySeed: 1,
	swarmtest.SuperSeed: 1, swarmtest.PartialSeed: 1, swarmtest.AlwaysZero: 1, swarmtest.AcceptClose: 1,
	swarmtest.Silent: 1, swarmtest.Garbage: 1, swarmtest.Refuse: 1,
}

const e2eProbe = `probe:
  connect_timeout: 1s
  handshake_timeout: 1s
  quiet_window: 300ms
  session_cap: 3s
  revisit_delay: 1s
  retry_backoff: 500ms
`

// e2eRun is a started swarm and a btda configuration for it (btda itself is started by the
// test, as often as it needs, always on the same peer port so dial-out peers find it).
type e2eRun struct {
	sw       *swarmtest.Swarm
	sc       e2eScenario
	dir      string
	cfgPath  string
	dbPath   string
	btdaPort int
}

func startE2E(ctx context.Context, t *testing.T, sc e2eScenario) *e2eRun {
	t.Helper()
	if sc.Seed == 0 {
		sc.Seed = 11
	}
	if sc.Torrents == 0 {
		sc.Torrents = 3
	}
	if sc.Peers == 0 {
		sc.Peers = 45
	}
	if sc.RunFor == 0 {
		sc.RunFor = 11 * time.Second
	}
	if sc.Mix == nil {
		sc.Mix = e2eMix
	}
	if sc.Probe == "" {
		sc.Probe = e2eProbe
	}
	r := &e2eRun{sc: sc, dir: t.TempDir(), btdaPort: freePort(t)}
	curves := sc.Curves
	if curves == nil && sc.CrossAt != nil {
		curves = func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			switch p.Profile {
			case swarmtest.Libtorrent, swarmtest.Transmission, swarmtest.Rtorrent:
			default:
				return swarmtest.Curve{}, false
			}
			n := p.Torrent.Pieces
			start := n / 2
			need := swarmtest.Threshold(0.98, n) - start
			return swarmtest.Curve{Pieces: n, Start: start, Interval: sc.CrossAt(p) / time.Duration(need)}, true
		}
	}
	if curves != nil && sc.Anchored {
		scripted := curves
		curves = func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			c, ok := scripted(p)
			c.Anchored = true
			return c, ok
		}
	}
	if sc.Redial == 0 {
		sc.Redial = 2 * time.Second
	}
	dialOut := fmt.Sprintf("127.0.0.1:%d", r.btdaPort)
	if sc.NoDialOut {
		dialOut = ""
	}
	dialOut6 := ""
	if sc.DualStack && !sc.NoDialOut {
		dialOut6 = fmt.Sprintf("[::1]:%d", r.btdaPort)
	}
	dhtNodes := 4
	if sc.NoDHT {
		dhtNodes = 0
	}
	sw, err := swarmtest.Start(ctx, swarmtest.Config{
		Seed: sc.Seed, Torrents: sc.Torrents, Peers: sc.Peers, Dir: r.dir, Duration: sc.RunFor,
		Versions:        map[swarmtest.Version]float64{swarmtest.V1: 1, swarmtest.V2: 1, swarmtest.Hybrid: 1},
		Mix:             sc.Mix,
		Tracker:         swarmtest.TrackerConfig{Enabled: true},
		DHT:             swarmtest.DHTConfig{Nodes: dhtNodes},
		DialOut:         dialOut,
		DialOut6:        dialOut6,
		Reach:           sc.Reach,
		DialOutFraction: 0.3,
		Redial:          sc.Redial,
		CurveFunc:       curves,
		PeerFunc:        sc.PeerFunc,
		IdleTimeout:     sc.IdleTimeout,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	r.sw = sw

	city, asn := sw.GeoIPPaths()
	if sc.CityDB != "" {
		city = sc.CityDB
	}
	var boot []string
	for _, a := range sw.DHTNodes() {
		boot = append(boot, strconv.Quote(a.String()))
	}
	dhtCfg := fmt.Sprintf("dht:\n  listen_address: \"127.0.0.1:0\"\n  bootstrap_nodes: [%s]\n  lookup_timeout: 5s\n", strings.Join(boot, ", "))
	if sc.NoDHT {
		dhtCfg = "dht:\n  enabled: false\n"
	}
	r.cfgPath = filepath.Join(r.dir, "btda.yml")
	r.dbPath = filepath.Join(r.dir, "btda.db")
	if sc.StorePath != "" {
		r.dbPath = sc.StorePath
	}
	peerCfg := fmt.Sprintf("  listen_address: \"127.0.0.1:%d\"\n", r.btdaPort)
	if sc.DualStack {
		peerCfg = fmt.Sprintf("  listen_address: \":%d\"\n  source_addresses: [127.0.0.1, \"::1\"]\n  incoming_per_ip: 1000\n", r.btdaPort)
	}
	cfg := fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: ""
peer:
%s%strackers:
  request_interval: 1m
  timeout: 2s
%sstorage:
  path: %s
  commit_interval: 200ms
geoip:
  city_database: %s
  asn_database: %s
`, filepath.Join(r.dir, "torrents"), peerCfg, sc.Probe, dhtCfg, r.dbPath, city, asn)
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitSwarm sleeps until the swarm has run for d.
func (r *e2eRun) waitSwarm(d time.Duration) {
	for r.sw.Elapsed() < d {
		time.Sleep(50 * time.Millisecond)
	}
}

// truth is the counted crossings of the whole run by "infohash/country". For an anchored
// run it is the truth so far (truthNow).
func (r *e2eRun) truth(t *testing.T) (swarmtest.Truth, map[string]int) {
	t.Helper()
	to := r.sc.RunFor
	if r.sc.Anchored {
		to = truthHorizon
	}
	truth := r.sw.Truth(swarmtest.Window{From: 0, To: to})
	if truth.Total == 0 {
		t.Fatal("the scenario has no crossings; the test proves nothing")
	}
	return truth, truthByKey(truth)
}

func truthByKey(truth swarmtest.Truth) map[string]int {
	want := make(map[string]int)
	for _, c := range truth.Crossings {
		want[c.Torrent+"/"+c.Country] += c.Count
	}
	return want
}

// truthNow is the truth of an anchored run as far as btda has reached the peers: every
// crossing of a peer contacted so far, including those still to come.
func (r *e2eRun) truthNow() swarmtest.Truth {
	return r.sw.Truth(swarmtest.Window{From: 0, To: truthHorizon})
}

// waitConfirmed scrapes d until its confirmed downloads equal the truth (as key(truth)
// folds it) twice in a row, with every counted crossing in the past, or until
// e2eDeadline; it returns the last scrape and the truth it was compared with, for the
// caller's detailed comparison. No fixed sleep: a slow machine takes longer, not wrong.
func (r *e2eRun) waitConfirmed(t *testing.T, d *btdaProc, fold func(swarmtest.Truth) map[string]int) (exposition string, truth swarmtest.Truth, want map[string]int) {
	t.Helper()
	if fold == nil {
		fold = truthByKey
	}
	deadline := time.Now().Add(e2eDeadline)
	agreed := 0
	for {
		truth = r.truthNow()
		want = fold(truth)
		exposition = d.scrape(t)
		now := r.sw.Elapsed()
		pending := false
		for _, p := range truth.Peers {
			if p.Counted && *p.CrossAt >= now {
				pending = true
			}
		}
		if truth.Total > 0 && !pending && maps.Equal(confirmedDownloads(exposition), want) {
			agreed++
		} else {
			agreed = 0
		}
		if agreed == 2 || time.Now().After(deadline) {
			if truth.Total == 0 {
				t.Fatal("the scenario has no crossings; the test proves nothing")
			}
			return exposition, truth, want
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitCounted scrapes d until it has counted at least n confirmed downloads (or
// e2eDeadline passes, which fails the test).
func (r *e2eRun) waitCounted(t *testing.T, d *btdaProc, n int) {
	t.Helper()
	deadline := time.Now().Add(e2eDeadline)
	for {
		total := 0
		for _, v := range confirmedDownloads(d.scrape(t)) {
			total += v
		}
		if total >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("btda counted %d confirmed downloads in %v, want at least %d", total, e2eDeadline, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var confirmedRE = regexp.MustCompile(`^btda_confirmed_downloads_total\{continent="[^"]*",country="([^"]*)",infohash="([^"]*)"\} (\S+)$`)

// confirmedDownloads reads btda_confirmed_downloads_total by "infohash/country".
func confirmedDownloads(exposition string) map[string]int {
	got := make(map[string]int)
	for _, l := range strings.Split(exposition, "\n") {
		if m := confirmedRE.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			if v > 0 {
				got[m[2]+"/"+m[1]] += int(v)
			}
		}
	}
	return got
}

// checkConfirmed requires got to equal want exactly, and logs the truth's peers on failure.
func checkConfirmed(t *testing.T, got, want map[string]int, truth swarmtest.Truth) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("confirmed downloads %s = %d, truth %d", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("confirmed downloads %s = %d, truth has none", k, v)
		}
	}
	t.Logf("truth: %d crossings over %d torrent/country pairs; btda agreed on %d pairs", truth.Total, len(want), len(got))
	if t.Failed() {
		for _, p := range truth.Peers {
			t.Logf("peer %s:%d %s class=%s counted=%v cross_at=%v country=%s torrent=%s", p.IP, p.Port, p.Profile, p.Class, p.Counted, p.CrossAt, p.Country, p.Torrent)
		}
	}
}

// restartCrossAt spreads the leechers' crossings over 3–9 s, so a restart at ~5 s falls
// after some and before others.
func restartCrossAt(p *swarmtest.Peer) time.Duration {
	return 3*time.Second + time.Duration(p.Index%7)*time.Second
}

// TestRestartGraceful stops btda with SIGTERM in the middle of the crossings and starts it
// again on the same store: the confirmed downloads still equal the truth exactly, so the
// graceful shutdown flushed everything (nothing lost) and the restored state did not let a
// crossing be counted again (nothing twice).
func TestRestartGraceful(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eDeadline+time.Minute)
	defer cancel()
	r := startE2E(ctx, t, e2eScenario{RunFor: 12 * time.Second, CrossAt: restartCrossAt, Anchored: true})

	// Stop once btda has counted a first crossing: the others come 1–6 s later.
	first := startDaemonOn(t, r.cfgPath)
	r.waitCounted(t, first, 1)
	before := confirmedDownloads(first.scrape(t))
	first.stop(t, syscall.SIGTERM, 5*time.Second)
	stoppedAt := r.sw.Elapsed()

	second := startDaemonOn(t, r.cfgPath)
	restored := confirmedDownloads(second.scrape(t))
	exposition, truth, want := r.waitConfirmed(t, second, nil)
	got := confirmedDownloads(exposition)
	second.stop(t, syscall.SIGTERM, 5*time.Second)

	// The scenario must straddle the restart, or it proves nothing about it.
	var early, late int
	for _, p := range truth.Peers {
		if p.Counted && *p.CrossAt < stoppedAt {
			early++
		} else if p.Counted {
			late++
		}
	}
	if early == 0 || late == 0 {
		t.Fatalf("crossings before the stop %d, after %d: the restart is not in the middle", early, late)
	}
	// What the first run counted is restored as is (the counter is the stored total).
	for k, v := range before {
		if restored[k] < v {
			t.Errorf("after restart %s = %d, before the stop %d", k, restored[k], v)
		}
	}
	t.Logf("stopped at %v: %d counted crossings before, %d after; first run exported %d pairs", stoppedAt, early, late, len(before))
	checkConfirmed(t, got, want, truth)
}

// TestRestartKill kills btda (SIGKILL) in the middle of the crossings and starts it again
// on the same store. The kill may lose the last uncommitted batch. A lost observation costs
// nothing if the peer is seen again on the same side of the threshold; the only crossing
// that can be missed is one whose every below-threshold observation was lost (after the
// restart the peer is first seen above and is taken for a seed). The test reads the killed
// store to find such peers: their number bounds the shortfall, nothing may be counted
// twice, and with the scenario's timing (every leecher seen well before the kill) it must
// be zero, so the totals are exact.
func TestRestartKill(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eDeadline+time.Minute)
	defer cancel()
	r := startE2E(ctx, t, e2eScenario{Seed: 12, RunFor: 12 * time.Second, CrossAt: restartCrossAt, Anchored: true})

	// Kill once btda has counted a first crossing: the others come 1–6 s later.
	first := startDaemonOn(t, r.cfgPath)
	r.waitCounted(t, first, 1)
	first.cmd.Process.Kill()
	err := <-first.done
	first.done <- err // for Cleanup
	killedAt := r.sw.Elapsed()
	// The peers btda had reached by the kill (their curves run from that first contact).
	reached := r.truthNow()

	// Which counted leechers reached before the kill have no committed trace of being
	// below (or of their counted crossing) in the killed store? Only those can be missed:
	// a peer first reached after the restart is seen below first.
	atRisk := make(map[string]int)
	var early, late int
	st, err := store.Open(r.dbPath, store.Options{})
	if err != nil {
		t.Fatalf("opening the killed store: %v", err)
	}
	err = st.View(func(tx *store.Tx) error {
		for _, p := range reached.Peers {
			if !p.Counted {
				continue
			}
			if *p.CrossAt < killedAt {
				early++
			} else {
				late++
			}
			h, err := metainfo.ParseHash(p.Torrent)
			if err != nil {
				return err
			}
			ip := netip.MustParseAddr(p.IP)
			safe := false
			for _, port := range []uint16{p.Port, 0} {
				rec, ok, err := tx.Peer(st.PeerKey(h, ip, port))
				if err != nil {
					return err
				}
				if ok && (rec.Has(store.FlagBelowSeen) || rec.Has(store.FlagCounted)) && !rec.Has(store.FlagSeed) {
					safe = true
				}
			}
			if !safe {
				atRisk[p.Torrent+"/"+p.Country]++
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if early == 0 || late == 0 {
		t.Fatalf("crossings before the kill %d, after %d: the kill is not in the middle", early, late)
	}

	second := startDaemonOn(t, r.cfgPath)
	exposition, truth, want := r.waitConfirmed(t, second, nil)
	got := confirmedDownloads(exposition)
	second.stop(t, syscall.SIGTERM, 5*time.Second)

	t.Logf("killed at %v: %d counted crossings before, %d after; %d torrent/country pairs with crossings at risk", killedAt, early, late, len(atRisk))
	for k, v := range want {
		if got[k] > v {
			t.Errorf("confirmed downloads %s = %d, truth %d: counted twice", k, got[k], v)
		}
		if got[k] < v-atRisk[k] {
			t.Errorf("confirmed downloads %s = %d, truth %d, at most %d could be lost in the kill", k, got[k], v, atRisk[k])
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("confirmed downloads %s = %d, truth has none", k, v)
		}
	}
	if len(atRisk) != 0 && !maps.Equal(got, want) {
		// A leecher reached just before the kill whose observation was not committed, and
		// that crossed before btda saw it again: the documented loss of a SIGKILL, within
		// the bounds checked above; exactness cannot be proven by this run.
		t.Logf("leechers without a committed observation below the threshold at the kill (%.1f s in): %v; totals checked within bounds only", killedAt.Seconds(), atRisk)
		return
	}
	checkConfirmed(t, got, want, truth)
}
