package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/zeebo/bencode"

	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/config"
	"github.com/btda/btda/internal/swarmtest"
	"github.com/btda/btda/internal/swarmtest/swarmtracker"
	"github.com/btda/btda/probe"
)

// TestContactsPerSecond measures btda's sustained active contact rate with the 2015
// settings (6 s quiet window, message cap 256, revisit 300 s) against btswarm peers that
// hold the connection open and fall silent after their bitfield, so every session lasts
// about the whole quiet window. btswarm and btda run as separate processes (built from
// this tree); the test serves the tracker itself (swarmtracker with no numwant cap), so
// one announce per torrent hands btda every peer of the swarm at once.
//
// It samples btda's /metrics once a second and logs the completed-session rate, the
// sessions in flight, RSS and CPU. Env-gated, and it needs a loopback-only namespace:
//
//	unshare -n sh -c 'ip link set lo up; BTDA_BENCH_CONTACTS=1 go test -run TestContactsPerSecond -v -timeout 15m ./cmd/btda/'
//
// Knobs: BTDA_BENCH_PEERS (30000), BTDA_BENCH_TORRENTS (100), BTDA_BENCH_CONCURRENCY
// (15000; btda's sockets must fit under the open-file limit), BTDA_BENCH_WINDOW (120s),
// BTDA_BENCH_DIAL_RATE (probe.dial_rate; unlimited), BTDA_BENCH_BTDA_BIN (run this btda
// binary instead of one built from the tree, to compare a change).
func TestContactsPerSecond(t *testing.T) {
	if os.Getenv("BTDA_BENCH_CONTACTS") == "" {
		t.Skip("set BTDA_BENCH_CONTACTS=1 (inside unshare -n) to run the contact-rate benchmark")
	}
	requireLoopbackOnly(t)
	peers := envInt(t, "BTDA_BENCH_PEERS", 30000)
	torrents := envInt(t, "BTDA_BENCH_TORRENTS", 100)
	conc := envInt(t, "BTDA_BENCH_CONCURRENCY", 15000)
	window := envDuration(t, "BTDA_BENCH_WINDOW", 120*time.Second)
	dialRate := 0 // unlimited, the default
	if os.Getenv("BTDA_BENCH_DIAL_RATE") != "" {
		dialRate = envInt(t, "BTDA_BENCH_DIAL_RATE", 0)
	}

	ctx, cancel := context.WithTimeout(context.Background(), window+5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildBinaries(t, dir)
	if p := os.Getenv("BTDA_BENCH_BTDA_BIN"); p != "" {
		bin["btda"] = p // a btda built elsewhere, to compare a change
	}

	tr, err := swarmtracker.Start(ctx, swarmtracker.Config{
		Host: netip.MustParseAddr("127.0.0.1"), DisableUDP: true, Seed: 1,
		DefaultNumWant: peers, MaxNumWant: peers, MaxRecords: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	// Only the three common clients: they complete the handshake, send their bitfield
	// (or have_all/have_none) and then nothing but keep-alives (60 s+). A long swarm
	// duration stretches the progress curves, so haves are rare inside a 6 s window.
	swarmOut := filepath.Join(dir, "swarm")
	swarmCfg := filepath.Join(dir, "swarm.yml")
	writeFile(t, swarmCfg, fmt.Sprintf(`seed: 1
torrents: %d
peers: %d
mix: {libtorrent: 50, transmission: 30, rtorrent: 20}
trackers: [%q]
listen_mode: shared
max_conns: %d
`, torrents, peers, tr.AnnounceURL(), min(conc+2000, 19000)))
	swarm := startProcess(ctx, t, "btswarm", bin["btswarm"], "--config", swarmCfg, "--out", swarmOut, "--duration", "24h")
	defer swarm.stop(t)
	if !swarm.waitOutput(ctx, "running until", 5*time.Minute) {
		t.Fatalf("btswarm did not start:\n%s", swarm.tail())
	}
	truth := readSwarmTruth(t, filepath.Join(swarmOut, "truth.json"))
	for hash, addrs := range truth.peersByHash() {
		tr.SetPeers(hash, addrs)
	}

	webPort := freePort(t)
	cfgPath := filepath.Join(dir, "btda.yml")
	writeFile(t, cfgPath, fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: ""
peer:
  listen_address: "127.0.0.1:0"
probe:
  concurrency: %d
  connect_timeout: 6s
  handshake_timeout: 6s
  quiet_window: 6s
  message_cap: 256
  revisit_delay: 300s
  dial_rate: %d
trackers:
  numwant: %d
  request_interval: 300s
dht:
  enabled: false
storage:
  path: %s
geoip:
  city_database: %s
  asn_database: %s
`, filepath.Join(swarmOut, "torrents"), conc, dialRate, peers, filepath.Join(dir, "btda.db"), truth.GeoIP.City, truth.GeoIP.ASN))
	btda := startProcess(ctx, t, "btda", bin["btda"], "--config.file", cfgPath, "--log.level", "warn",
		"run", "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", webPort))
	defer btda.stop(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", webPort)

	var samples []contactSample
	var scrapeTimes, burstScrapes []time.Duration
	failedScrapes := 0
	began := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(began) < window {
		select {
		case <-ctx.Done():
			t.Fatal("timed out")
		case <-tick.C:
		}
		if btda.exited() {
			t.Fatalf("btda exited:\n%s", btda.tail())
		}
		t0 := time.Now()
		m, err := scrapeMetrics(ctx, url)
		if err != nil {
			if len(samples) > 0 {
				failedScrapes++ // up before: a scrape that failed or took over 5 s
			}
			continue
		}
		took := time.Since(t0)
		scrapeTimes = append(scrapeTimes, took)
		if m.sum("btda_probe_sessions_in_flight") >= 1000 {
			burstScrapes = append(burstScrapes, took)
		}
		samples = append(samples, contactSample{at: time.Since(began), m: m})
	}
	if len(samples) < 10 {
		t.Fatalf("only %d scrapes succeeded", len(samples))
	}
	final := samples[len(samples)-1].m
	outcomes := final.matching("btda_probe_sessions_total")
	sort.Strings(outcomes)
	reportContacts(t, samples, conc, peers)
	t.Logf("sessions by outcome at the end: %s", strings.Join(outcomes, ", "))
	if n := final.sum(`btda_probe_duration_seconds_count{direction="outgoing"}`); n > 0 {
		t.Logf("mean outgoing session length %.1f s over %.0f sessions (the quiet window is 6 s)",
			final.sum(`btda_probe_duration_seconds_sum{direction="outgoing"}`)/n, n)
	}
	slices.Sort(scrapeTimes)
	t.Logf("btda /metrics during the run: %d scrapes, p50 %s, p90 %s, p99 %s, max %s; %d failed or took over 5 s",
		len(scrapeTimes), quantile(scrapeTimes, 0.5), quantile(scrapeTimes, 0.9), quantile(scrapeTimes, 0.99),
		scrapeTimes[len(scrapeTimes)-1].Round(time.Millisecond), failedScrapes)
	if len(burstScrapes) > 0 {
		slices.Sort(burstScrapes)
		t.Logf("btda /metrics during the burst (sessions in flight ≥ 1,000): %d scrapes, p50 %s, p99 %s, max %s",
			len(burstScrapes), quantile(burstScrapes, 0.5), quantile(burstScrapes, 0.99),
			burstScrapes[len(burstScrapes)-1].Round(time.Millisecond))
	}
	// CPU per completed session: what bounds the rate when the machine's cores are shared.
	done := final.sum("btda_probe_sessions_total")
	for _, p := range []*benchProcess{btda, swarm} {
		hwm, cpu := procUsage(p.cmd.Process.Pid)
		t.Logf("%s: peak RSS (VmHWM) %d MiB, CPU %.1f s over %.0f s, %.3f ms CPU per completed session", p.name, hwm>>20, cpu,
			time.Since(began).Seconds(), 1000*cpu/max(done, 1))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at the end: %s", strings.TrimSpace(string(b)))
	}
	if final.sum("btda_probe_sessions_total") == 0 {
		t.Fatal("no sessions completed")
	}
	if swarm.exited() {
		t.Fatalf("btswarm exited early:\n%s", swarm.tail())
	}
}

// quantile is the q-quantile (nearest rank) of sorted durations, rounded to the millisecond.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)].Round(time.Millisecond)
}

type contactSample struct {
	at time.Duration
	m  metricSet
}

// reportContacts logs the time series (every 5 s) and the summary figures.
func reportContacts(t *testing.T, s []contactSample, conc, peers int) {
	t.Helper()
	sessions := func(i int) float64 { return s[i].m.sum("btda_probe_sessions_total") }
	t.Logf("%7s %10s %9s %9s %9s %8s %8s %8s %8s %9s %8s %7s", "t", "sessions", "rate/s", "started/s", "inflight", "due", "wait_ip",
		"known", "pending", "commit_ms", "rss_MiB", "cpu%")
	var peakInFlight, peakRSS float64
	for i := range s {
		peakInFlight = max(peakInFlight, s[i].m.sum("btda_probe_sessions_in_flight"))
		peakRSS = max(peakRSS, s[i].m.sum("process_resident_memory_bytes"))
		if i == 0 || i%5 != 0 {
			continue
		}
		j := i - 5
		dt := (s[i].at - s[j].at).Seconds()
		cpu := (s[i].m.sum("process_cpu_seconds_total") - s[j].m.sum("process_cpu_seconds_total")) / dt
		started := s[i].m.sum("btda_queue_sessions_started_total") - s[j].m.sum("btda_queue_sessions_started_total")
		// The store's mean commit time over the interval: the recorder's queue is the
		// sessions' back-pressure (a session's slot is held until Record returns).
		var commitMS float64
		if n := s[i].m.sum("btda_store_commit_duration_seconds_count") - s[j].m.sum("btda_store_commit_duration_seconds_count"); n > 0 {
			commitMS = 1000 * (s[i].m.sum("btda_store_commit_duration_seconds_sum") - s[j].m.sum("btda_store_commit_duration_seconds_sum")) / n
		}
		t.Logf("%6.0fs %10.0f %9.0f %9.0f %9.0f %8.0f %8.0f %8.0f %8.0f %9.0f %8.0f %6.0f%%", s[i].at.Seconds(), sessions(i),
			(sessions(i)-sessions(j))/dt, started/dt, s[i].m.sum("btda_probe_sessions_in_flight"),
			s[i].m.sum("btda_queue_peers_due"), s[i].m.sum("btda_queue_peers_waiting_ip"),
			s[i].m.sum("btda_queue_known_peers"), s[i].m.sum("btda_store_observations_pending"), commitMS, s[i].m.sum("process_resident_memory_bytes")/(1<<20), 100*cpu)
	}
	// Best 10 s and the saturated stretch (in flight ≥ 90 % of its peak, sessions completing).
	var best10 float64
	for i := 10; i < len(s); i++ {
		best10 = max(best10, (sessions(i)-sessions(i-10))/(s[i].at-s[i-10].at).Seconds())
	}
	first, last := -1, -1
	for i := range s {
		// From the first completions on: before them the window holds only session starts.
		if s[i].m.sum("btda_probe_sessions_in_flight") >= 0.9*peakInFlight && sessions(i) > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	var satRate, satSecs float64
	if first >= 0 && last > first {
		satSecs = (s[last].at - s[first].at).Seconds()
		satRate = (sessions(last) - sessions(first)) / satSecs
	}
	start := 0
	for start < len(s) && sessions(start) == 0 && s[start].m.sum("btda_probe_sessions_in_flight") == 0 {
		start++
	}
	n := len(s) - 1
	var overall, cpu float64
	if start < n {
		d := (s[n].at - s[start].at).Seconds()
		overall = (sessions(n) - sessions(start)) / d
		cpu = (s[n].m.sum("process_cpu_seconds_total") - s[start].m.sum("process_cpu_seconds_total")) / d
	}
	t.Logf("SUMMARY peers=%d concurrency=%d ceiling(C/6s)=%.0f/s: peak in flight %.0f; best 10 s %.0f sessions/s; "+
		"saturated %.0f s at %.0f/s; whole run (%.0f s from the first session) %.0f/s; btda CPU %.2f cores; peak RSS %.0f MiB; "+
		"revisit bound (known peers / 306 s) %.0f/s",
		peers, conc, float64(conc)/6, peakInFlight, best10, satSecs, satRate, (s[n].at - s[min(start, n)].at).Seconds(),
		overall, cpu, peakRSS/(1<<20), s[n].m.sum("btda_queue_known_peers")/306)
}

// procUsage reads a live process's peak RSS (bytes) and user+system CPU (seconds) from
// /proc; zeros when it cannot.
func procUsage(pid int) (hwm int64, cpu float64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				hwm = kb << 10
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the parenthesised command name; utime and stime are 14 and 15.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 13 {
				u, _ := strconv.ParseFloat(f[11], 64)
				s, _ := strconv.ParseFloat(f[12], 64)
				cpu = (u + s) / 100 // USER_HZ is 100 on Linux
			}
		}
	}
	return hwm, cpu
}

// metricSet is a parsed text exposition: series (name plus labels) to value.
type metricSet map[string]float64

// sum adds every series of the metric name.
func (m metricSet) sum(name string) float64 {
	var v float64
	for k, x := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			v += x
		}
	}
	return v
}

func (m metricSet) matching(name string) []string {
	var out []string
	for k, x := range m {
		if strings.HasPrefix(k, name+"{") && x > 0 {
			out = append(out, fmt.Sprintf("%s=%.0f", strings.TrimPrefix(k, name), x))
		}
	}
	return out
}

func scrapeMetrics(ctx context.Context, url string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	m := metricSet{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// swarmTruth is the part of btswarm's truth.json the benchmark needs.
type swarmTruth struct {
	Torrents []struct {
		WireHash   string `json:"wire_hash"`
		InfoHashV1 string `json:"info_hash_v1"`
		InfoHashV2 string `json:"info_hash_v2"`
	} `json:"torrents"`
	Peers []struct {
		Torrent string `json:"torrent"`
		IP      string `json:"ip"`
		Port    uint16 `json:"port"`
	} `json:"peers"`
	GeoIP struct {
		City string `json:"city"`
		ASN  string `json:"asn"`
	} `json:"geoip"`
}

func readSwarmTruth(t *testing.T, path string) swarmTruth {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st swarmTruth
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return st
}

// peersByHash lists each torrent's peers under every hash a client may announce with
// (v1, truncated v2, wire hash).
func (st swarmTruth) peersByHash() map[[20]byte][]netip.AddrPort {
	byWire := make(map[string][]netip.AddrPort)
	for _, p := range st.Peers {
		if a, err := netip.ParseAddr(p.IP); err == nil {
			byWire[p.Torrent] = append(byWire[p.Torrent], netip.AddrPortFrom(a, p.Port))
		}
	}
	out := make(map[[20]byte][]netip.AddrPort)
	for _, tor := range st.Torrents {
		for _, h := range []string{tor.WireHash, tor.InfoHashV1, tor.InfoHashV2} {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) < 20 {
				continue
			}
			out[[20]byte(b[:20])] = byWire[tor.WireHash]
		}
	}
	return out
}

// requireLoopbackOnly stops the test unless the only network interface is loopback, so
// that nothing it starts can reach beyond the machine.
func requireLoopbackOnly(t *testing.T) {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			t.Fatalf("interface %s is not loopback: run inside unshare -n sh -c 'ip link set lo up; ...'", i.Name)
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return v
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// buildBinaries builds btda and btswarm from this tree into dir.
func buildBinaries(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range []string{"btda", "btswarm"} {
		p := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", p, "./cmd/"+name)
		cmd.Dir = filepath.Join("..", "..")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
		}
		out[name] = p
	}
	return out
}

// benchProcess is a child process whose output is kept (the last 64 KiB) for failures.
type benchProcess struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
}

func startProcess(ctx context.Context, t *testing.T, name, bin string, args ...string) *benchProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	// The child dies with the test process, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &benchProcess{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-p.done:
		}
	}()
	return p
}

func (p *benchProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *benchProcess) tail() string { return p.out.String() }

// waitOutput waits until the output contains s, the process exits, or the timeout.
func (p *benchProcess) waitOutput(ctx context.Context, s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if strings.Contains(p.out.String(), s) {
			return true
		}
		if p.exited() {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// stop sends SIGTERM, waits up to 10 s, then kills.
func (p *benchProcess) stop(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s did not stop within 10 s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

var _ io.Writer = (*tailBuffer)(nil)

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > b.max {
		b.b = append([]byte(nil), b.b[len(b.b)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// BenchmarkMetricsScrape measures a full /metrics scrape of the registry as `btda run`
// assembles it (the same collectors, newParts and the daemon, the promhttp handler of
// newWebServer) with 1,000 watched torrents, 1,000,000 known peers in the scheduler and
// recorder aggregates over 100 countries. The state grows in three steps: each torrent has
// confirmed downloads from 5, then 20, then 50 countries (5,000 / 20,000 / 50,000
// btda_confirmed_downloads_total series), each from two peers seen below the threshold and
// then at 100 %. The daemon runs with a dial rate of one session per 1,000 s, so nothing
// but that first session dials, and without trackers and the DHT (whose announces and
// lookups would otherwise run during the scrapes; their few series are left out). It
// reports the scrape's
// p50/p99 latency, the exposition size and the series count, as text and gzipped:
//
//	unshare -n sh -c 'ip link set lo up; go test -run XXX -bench MetricsScrape -benchtime 50x ./cmd/btda/'
func BenchmarkMetricsScrape(b *testing.B) {
	const (
		torrents   = 1000
		knownPeers = 1_000_000
		countries  = 100
		perTorrent = 50 // countries confirming downloads of each torrent
		numPieces  = 100
	)
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)

	// 100 countries over 7 continents, each its own 127.N.0.0/16 in the GeoIP databases.
	conts := []string{"AF", "AS", "EU", "NA", "OC", "SA", "AN"}
	var cs []swarmtest.Country
	for i := range countries {
		iso := string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
		cs = append(cs, swarmtest.Country{ISO: iso, Continent: conts[i%len(conts)], Octet: 10 + i, Weight: 1,
			Cities: [2]string{iso + " City", iso + " Town"}, ASN: [2]uint32{uint32(64600 + 2*i), uint32(64601 + 2*i)},
			ASOrg: [2]string{iso + " Telecom", iso + " Cable"}})
	}
	city, asn, err := swarmtest.WriteGeoIP(dir, cs)
	if err != nil {
		b.Fatal(err)
	}
	tdir := filepath.Join(dir, "torrents")
	if err := os.Mkdir(tdir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range torrents {
		writeBenchTorrent(b, filepath.Join(tdir, fmt.Sprintf("t%04d.torrent", i)), i, numPieces)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: ""
peer:
  listen_address: "127.0.0.1:0"
trackers:
  enabled: false
dht:
  enabled: false
probe:
  dial_rate: 0.001
storage:
  path: %s
  commit_batch: 5000
geoip:
  city_database: %s
  asn_database: %s
`, tdir, filepath.Join(dir, "btda.db"), city, asn)))
	if err != nil {
		b.Fatal(err)
	}

	// As run() does: the process-level collectors, the reloader's, the parts and the daemon.
	reg := prometheus.NewRegistry()
	reg.MustRegister(versioncollector.NewCollector("btda"), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rl := newReloader(runOptions{}, cfg, reg, logger)
	ws, err := newWebServer(&web.FlagConfig{}, reg, &rl.ready, func() error { return nil }, logger)
	if err != nil {
		b.Fatal(err)
	}
	dc, sightings, err := newParts(cfg, daemon.Shard{}, reg, logger)
	if err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(dc, reg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	defer func() {
		stopRun()
		<-runDone
	}()
	if _, rep, err := d.Load(ctx, discovery.WatchSources{TorrentDir: tdir}); err != nil || len(rep.Failed) > 0 {
		b.Fatalf("loading torrents: %v %v", err, rep.Failed)
	}
	entries := dc.Registry.Entries()
	if len(entries) != torrents {
		b.Fatalf("%d torrents loaded, want %d", len(entries), torrents)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID.String() < entries[j].ID.String() })

	for i := range knownPeers {
		var a [4]byte
		// Loopback addresses (127.128.0.0/9): the daemon runs, and its one dial must stay on lo.
		binary.BigEndian.PutUint32(a[:], 0x7f800000+uint32(i))
		sightings <- discovery.Sighting{Torrent: entries[i%torrents].ID, Addr: netip.AddrPortFrom(netip.AddrFrom4(a), 6881),
			Source: discovery.SourceTracker}
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if v, ok := metricValue(scrapeText(b, ws), "btda_queue_known_peers"); ok && v == knownPeers {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the scheduler does not know %d peers after 5 min", knownPeers)
		}
	}

	// feed adds confirmed downloads of countries [from, to) of the torrent's window: two
	// peers (one per network of the country) seen below the threshold, then at 100 %.
	t0 := time.Now().Add(-time.Hour)
	feed := func(from, to int) {
		for round := range 2 {
			at := t0.Add(time.Duration(round) * 10 * time.Minute)
			pieces := 10
			if round == 1 {
				pieces = numPieces
			}
			for ti, e := range entries {
				for j := from; j < to; j++ {
					c := (ti + j) % countries
					n := ti*perTorrent + j
					for h := range 2 {
						addr := netip.AddrFrom4([4]byte{127, byte(10 + c), byte(128*h + n>>8&0x7f), byte(1 + n%254)})
						obs := probe.Observation{Torrent: e.ID, Addr: netip.AddrPortFrom(addr, 6881), ListenPort: 6881,
							Direction: probe.Outgoing, Source: discovery.SourceTracker, Start: at.Add(-6 * time.Second),
							Outcome: probe.OutcomeOK, Known: true, NumPieces: numPieces,
							First: probe.Point{Pieces: pieces, At: at}, Last: probe.Point{Pieces: pieces, At: at.Add(time.Second)},
							Timings: probe.Timings{Total: 6 * time.Second}}
						if err := dc.Recorder.Record(ctx, obs); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		}
		want := int64(torrents * to * 2)
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			var confirmed int64
			for _, n := range dc.Recorder.Aggregates().Confirmed {
				confirmed += int64(n)
			}
			if confirmed == want {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("confirmed downloads %d after 5 min, want %d", confirmed, want)
			}
		}
	}

	scrape := func(gzip bool) (int, int) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if gzip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		ws.srv.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("scrape: %d %s", w.Code, w.Body.String())
		}
		if gzip {
			return w.Body.Len(), 0
		}
		series := 0
		for _, l := range bytes.Split(w.Body.Bytes(), []byte{'\n'}) {
			if len(l) > 0 && l[0] != '#' {
				series++
			}
		}
		return w.Body.Len(), series
	}
	// The state grows between steps: 5, then 20, then 50 confirming countries per torrent.
	fed := 0
	for _, step := range []int{5, 20, perTorrent} {
		feed(fed, step)
		fed = step
		size, series := scrape(false)
		gzSize, _ := scrape(true)
		for _, mode := range []string{"text", "gzip"} {
			b.Run(fmt.Sprintf("confirmed=%d/%s", torrents*step, mode), func(b *testing.B) {
				var durs []time.Duration
				for b.Loop() {
					start := time.Now()
					scrape(mode == "gzip")
					durs = append(durs, time.Since(start))
				}
				slices.Sort(durs)
				pct := func(p float64) float64 { return durs[int(p*float64(len(durs)-1))].Seconds() * 1000 }
				b.ReportMetric(pct(0.5), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
				if mode == "gzip" {
					b.ReportMetric(float64(gzSize), "bytes")
				} else {
					b.ReportMetric(float64(size), "bytes")
					b.ReportMetric(float64(series), "series")
				}
			})
		}
	}
}

// metricValue reads the value of an unlabelled series from a text exposition (which may
// write 1000000 as 1e+06).
func metricValue(exposition, name string) (float64, bool) {
	for _, l := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// scrapeText is one plain-text scrape of the web server's /metrics.
func scrapeText(b *testing.B, ws *webServer) string {
	w := httptest.NewRecorder()
	ws.srv.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		b.Fatalf("scrape: %d %s", w.Code, w.Body.String())
	}
	return w.Body.String()
}

// writeBenchTorrent writes a small single-file v1 torrent; i makes its info hash unique.
func writeBenchTorrent(b *testing.B, path string, i, pieces int) {
	const pieceLen = 1 << 18
	info := map[string]any{
		"name":         fmt.Sprintf("bench-%04d.bin", i),
		"piece length": pieceLen,
		"length":       int64(pieces) * pieceLen,
		"pieces":       strings.Repeat(fmt.Sprintf("%020d", i), pieces),
	}
	data, err := bencode.EncodeBytes(map[string]any{"announce": "http://127.0.0.1:9/announce", "info": info})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
}
