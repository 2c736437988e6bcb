package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

// metricSum adds up the samples of the metric name whose label set contains every one of
// labels (each `key="value"`).
func metricSum(exposition, name string, labels ...string) float64 {
	var sum float64
	for _, l := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		sp := strings.LastIndexByte(rest, ' ')
		if sp < 0 {
			continue
		}
		match := true
		for _, lb := range labels {
			if !strings.Contains(rest[:sp], lb) {
				match = false
			}
		}
		if v, err := strconv.ParseFloat(rest[sp+1:], 64); match && err == nil {
			sum += v
		}
	}
	return sum
}

// tryScrape is scrape without failing the test: btda may be short of descriptors.
func (d *btdaProc) tryScrape() (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(d.url + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("/metrics: %s", resp.Status)
	}
	return string(b), err
}

// TestCorruptStore: a store file that is not a bbolt database stops btda at start with an
// error naming the file, rather than a panic or a silently recreated store.
func TestCorruptStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"short", []byte("not a bbolt file\n")},
		{"garbage pages", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03}, 4096)},
		{"zero pages", make([]byte, 16384)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := loopbackConfig(t, dir, "")
			db := filepath.Join(dir, "btda.db")
			if err := os.WriteFile(db, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := runBTDA(t, "run", "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
			if code != 1 || !strings.Contains(stderr, db) || !strings.Contains(stderr, "is damaged") {
				t.Fatalf("exit %d, want 1 with an error naming %s as damaged; stderr:\n%s", code, db, stderr)
			}
			if strings.Contains(stderr, "panic") {
				t.Fatalf("btda panicked:\n%s", stderr)
			}
			// The file is left as it was, for the operator to look at.
			if b, _ := os.ReadFile(db); !bytes.Equal(b, tc.content) {
				t.Fatal("the corrupt store was modified")
			}
		})
	}
}

// TestStoreLocked: a second btda on the same store exits 1 saying the store is locked, and
// the first one keeps running.
func TestStoreLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := loopbackConfig(t, dir, "")
	first := startDaemon(t, cfg)

	// Same configuration file: same store; every port in it is 0, and the web port differs.
	_, stderr, code := runBTDA(t, "run", "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if code != 1 || !strings.Contains(stderr, "locked by another btda") || !strings.Contains(stderr, filepath.Join(dir, "btda.db")) {
		t.Fatalf("second btda: exit %d, want 1 with \"locked by another btda\" and the path; stderr:\n%s", code, stderr)
	}
	select {
	case err := <-first.done:
		first.done <- err
		t.Fatalf("the first btda exited: %v", err)
	default:
	}
	resp, err := http.Get(first.url + "/-/healthy")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first btda not healthy: %v %v", err, resp)
	}
	resp.Body.Close()
	if m := first.scrape(t); metricSum(m, "btda_store_commit_failures_total") != 0 {
		t.Errorf("first btda's commits failed:\n%s", metricLine(m, "btda_store_commit_failures_total"))
	}
	first.stop(t, syscall.SIGTERM, 5*time.Second)
}

// TestGeoIPUnavailable: with the city database missing or not a database, btda runs, says
// so in its log and in btda_geoip_database_loaded, and goes on measuring. The missing file
// is checked at start only; the garbage file (the same code path past the open) against the
// swarm: every confirmed download is counted, under country ZZ.
func TestGeoIPUnavailable(t *testing.T) {
	checkGeoIP := func(t *testing.T, m, log, city string) {
		t.Helper()
		if l := metricLine(m, `btda_geoip_database_loaded{database="city"}`); l != `btda_geoip_database_loaded{database="city"} 0` {
			t.Errorf("city database: %q, want 0", l)
		}
		if !strings.Contains(log, "GeoIP city database not loaded") || !strings.Contains(log, city) {
			t.Errorf("the log does not name the unusable database %s:\n%s", city, log)
		}
	}
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		city := filepath.Join(dir, "GeoLite2-City.mmdb")
		cfg := loopbackConfig(t, dir, "geoip:\n  city_database: "+city+"\n")
		d := startDaemon(t, cfg)
		m := d.scrape(t)
		d.stop(t, syscall.SIGTERM, 5*time.Second)
		checkGeoIP(t, m, d.stderr.String(), city)
	})
	t.Run("garbage", func(t *testing.T) {
		if testing.Short() {
			t.Skip("end-to-end run takes ~9 s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
		defer cancel()
		city := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
		if err := os.WriteFile(city, bytes.Repeat([]byte("not an mmdb file "), 100), 0o600); err != nil {
			t.Fatal(err)
		}
		r := startE2E(ctx, t, e2eScenario{Seed: 13, Peers: 30, RunFor: 7 * time.Second, CityDB: city, Anchored: true,
			CrossAt: func(p *swarmtest.Peer) time.Duration { return 3*time.Second + time.Duration(p.Index%3)*time.Second }})
		d := startDaemonOn(t, r.cfgPath)
		// The truth by torrent, every country folded into ZZ.
		zz := func(truth swarmtest.Truth) map[string]int {
			want := make(map[string]int)
			for _, c := range truth.Crossings {
				want[c.Torrent+"/ZZ"] += c.Count
			}
			return want
		}
		m, truth, want := r.waitConfirmed(t, d, zz)
		d.stop(t, syscall.SIGTERM, 5*time.Second)

		checkGeoIP(t, m, d.stderr.String(), city)
		if l := metricLine(m, `btda_geoip_database_loaded{database="asn"}`); l != `btda_geoip_database_loaded{database="asn"} 1` {
			t.Errorf("asn database: %q, want 1 (it is intact)", l)
		}
		checkConfirmed(t, confirmedDownloads(m), want, truth)
	})
}

// TestFDExhaustion lowers btda's descriptor limit to a little above what it uses idle, then
// gives it 100 reachable peers at once. Dials beyond the limit fail as local errors (the
// peer is not blamed and keeps its retries); btda keeps serving and, as sessions end and
// free descriptors, observes every peer.
func TestFDExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const peers = 100
	r := startE2E(ctx, t, e2eScenario{Seed: 14, Torrents: 2, Peers: peers, RunFor: time.Minute, NoDialOut: true,
		Mix: map[swarmtest.Profile]float64{swarmtest.Libtorrent: 1, swarmtest.Transmission: 1},
		Probe: `probe:
  connect_timeout: 1s
  handshake_timeout: 1s
  quiet_window: 700ms
  session_cap: 1s
  revisit_delay: 1m
  retry_backoff: 300ms
`})
	// btda starts with an empty watch list, so that nothing is dialled before the limit.
	later := filepath.Join(r.dir, "later")
	if err := os.Rename(filepath.Join(r.dir, "torrents"), later); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(r.dir, "torrents"), 0o700)
	d := startDaemonOn(t, r.cfgPath)
	idle := metricSum(d.scrape(t), "process_open_fds")
	if idle == 0 {
		t.Fatal("process_open_fds not exported")
	}
	limit := int(idle) + 20
	if out, err := exec.Command(prlimit, "--pid", strconv.Itoa(d.cmd.Process.Pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Skipf("cannot lower btda's descriptor limit: %v %s", err, out)
	}
	if err := os.Remove(filepath.Join(r.dir, "torrents")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(later, filepath.Join(r.dir, "torrents")); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)

	var m string
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("btda exited under descriptor exhaustion: %v", err)
		default:
		}
		s, err := d.tryScrape()
		if err != nil {
			continue // the web server waits for a descriptor too
		}
		m = s
		if metricSum(m, "btda_store_known_peers") >= peers {
			break
		}
	}
	local := metricSum(m, "btda_probe_sessions_total", `outcome="local_error"`)
	known := metricSum(m, "btda_store_known_peers")
	t.Logf("descriptor limit %d (idle %v): %v local errors, %v of %d peers observed", limit, idle, local, known, peers)
	if local == 0 {
		t.Errorf("no local_error sessions: the limit of %d descriptors was never reached, the test proves nothing", limit)
	}
	if known != peers {
		t.Errorf("btda observed %v of the %d peers within 45 s", known, peers)
	}
	if given := metricSum(m, "btda_queue_gave_up_total"); given != 0 {
		t.Errorf("%v peers given up: local errors must not use up a peer's retries", given)
	}
	resp, err := http.Get(d.url + "/-/healthy")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("not healthy after the run: %v %v", err, resp)
	}
	resp.Body.Close()
	d.stop(t, syscall.SIGTERM, 5*time.Second)
}

// TestFullDisk runs btda with its store on a 64 KiB tmpfs (mounted in a private mount
// namespace, so only btda sees it) against a swarm large enough to fill it. Commits then
// fail with ENOSPC: btda keeps running and probing, exports the failures with
// reason="no_space", never counts a confirmed download the truth does not have, and stops
// cleanly.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~10 s")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	full := t.TempDir()
	const size = "128k"
	mount := fmt.Sprintf(`mount -t tmpfs -o size=%s btda-full %q`, size, full)
	if out, err := exec.Command(unshare, "-m", "sh", "-c", mount).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs in a private mount namespace (needs root): %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := startE2E(ctx, t, e2eScenario{Seed: 15, Torrents: 4, Peers: 240, RunFor: 7 * time.Second,
		StorePath: filepath.Join(full, "btda.db"),
		CrossAt:   func(p *swarmtest.Peer) time.Duration { return 3*time.Second + time.Duration(p.Index%3)*time.Second }})

	// btda runs through a wrapper that mounts the tmpfs in a new mount namespace and execs
	// it, so the process the test signals is btda itself.
	wrapper := filepath.Join(r.dir, "btda-on-tmpfs")
	script := fmt.Sprintf("#!/bin/sh\nexec %q -m sh -c '%s && exec \"$0\" \"$@\"' %q \"$@\"\n", unshare, mount, btdaBin)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	real := btdaBin
	btdaBin = wrapper
	d := startDaemonOn(t, r.cfgPath)
	btdaBin = real

	var m string
	var failedAt, sessionsAtFailure float64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && r.sw.Elapsed() < r.sc.RunFor {
		time.Sleep(200 * time.Millisecond)
		m = d.scrape(t)
		if failedAt == 0 && metricSum(m, "btda_store_commit_failures_total", `reason="no_space"`) > 0 {
			failedAt = r.sw.Elapsed().Seconds()
			sessionsAtFailure = metricSum(m, "btda_probe_sessions_total")
		}
	}
	time.Sleep(time.Second) // more sessions after the disk filled
	m = d.scrape(t)
	sessions := metricSum(m, "btda_probe_sessions_total")
	d.stop(t, syscall.SIGTERM, 6*time.Second)

	noSpace := metricSum(m, "btda_store_commit_failures_total", `reason="no_space"`)
	t.Logf("store on a %s tmpfs: first no_space failure at %.1f s; %v no_space failures, %v commits, %v observations dropped; sessions %v at the first failure, %v at the end",
		size, failedAt, noSpace, metricSum(m, "btda_store_commits_total"), metricSum(m, "btda_store_observations_dropped_total"), sessionsAtFailure, sessions)
	if noSpace == 0 {
		t.Fatalf("no commit failed with reason no_space: the %s store never filled, the test proves nothing\n%s", size, metricLine(m, "btda_store_size_bytes"))
	}
	if sessions <= sessionsAtFailure {
		t.Errorf("probing stopped when the disk filled: %v sessions then, %v at the end", sessionsAtFailure, sessions)
	}
	if metricSum(m, "btda_store_observations_dropped_total") == 0 {
		t.Error("commits failed but no observations were reported dropped")
	}
	// Lost observations may lose crossings, never invent or repeat them.
	truth, want := r.truth(t)
	got := confirmedDownloads(m)
	var total int
	for k, v := range got {
		total += v
		if v > want[k] {
			t.Errorf("confirmed downloads %s = %d, truth %d", k, v, want[k])
		}
	}
	t.Logf("%d of %d crossings counted before the disk filled", total, truth.Total)
}
