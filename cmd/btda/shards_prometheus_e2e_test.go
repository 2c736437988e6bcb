package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/btda/btda/dashboards"
	"github.com/btda/btda/internal/swarmtest"
)

// promSample is one series of an instant query's vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// vector runs an instant query and returns its series (an error for a non-vector result).
func (p *promProc) vector(ctx context.Context, expr string) ([]promSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s, want vector", expr, data.ResultType)
	}
	out := make([]promSample, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// startPrometheusConfig runs prometheus with the configuration cfg (YAML) on a loopback
// port and waits until it is ready (a minute at most); Cleanup kills it. startPrometheus
// builds the single-target configuration the other end-to-end tests use.
func startPrometheusConfig(t *testing.T, bin, dir string, cfg []byte) *promProc {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := &promProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 5 * time.Second}}
	out := &lockedWriter{w: new(bytes.Buffer)}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := p.client.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("prometheus exited early: %v\n%s", err, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("prometheus not ready within a minute\n%s", out)
	return nil
}

// eventually runs check (which lists what is wrong) every second until it lists nothing or
// limit has passed, and then reports what it listed last as errors.
func eventually(t *testing.T, limit time.Duration, what string, check func() []string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		probs := check()
		if len(probs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range probs {
				t.Errorf("%s (after %v): %s", what, limit, p)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// shardsPromConfig is examples/prometheus-shards.yml made to run here: its btda job
// scrapes targets every 2 s, rules run every second, and its rule_files point into the
// repository.
func shardsPromConfig(t *testing.T, targets []string) []byte {
	t.Helper()
	example := filepath.Join(repoRoot(t), "examples", "prometheus-shards.yml")
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", example, err)
	}
	// 2 s: a scrape of a race-enabled btda on a busy machine can take over a second.
	cfg["global"] = map[string]any{"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"}
	rules, _ := cfg["rule_files"].([]any)
	if len(rules) == 0 {
		t.Fatalf("%s loads no rule files", example)
	}
	for i, r := range rules {
		rules[i] = filepath.Join(filepath.Dir(example), r.(string))
	}
	jobs, _ := cfg["scrape_configs"].([]any)
	found := false
	for _, j := range jobs {
		job := j.(map[string]any)
		if job["job_name"] != "btda" {
			continue
		}
		found = true
		statics, _ := job["static_configs"].([]any)
		if len(statics) != 1 {
			t.Fatalf("%s: job btda has %d static_configs, want one list of targets", example, len(statics))
		}
		sc := statics[0].(map[string]any)
		if n := len(sc["targets"].([]any)); n < 2 {
			t.Fatalf("%s: job btda lists %d targets; the example is of several instances", example, n)
		}
		sc["targets"] = targets
	}
	if !found {
		t.Fatalf("%s has no job btda (BtdaDown selects up{job=\"btda\"})", example)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShardsPrometheusEndToEnd runs two btda instances (--shard 0/2 and --shard 1/2) against
// one test swarm and a real Prometheus scraping both with examples/prometheus-shards.yml and
// the rules of dashboards/rules: each torrent is watched by exactly one instance, the summed
// recording rules equal the swarm's truth per torrent and country, and the dashboards'
// per-torrent queries return one series per torrent.
func TestShardsPrometheusEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with two btda and Prometheus takes ~40 s")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus): the sharded setup is NOT run against a real Prometheus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	// Crossings at 8–16 s leave both instances time to start and see every leecher below
	// the threshold first, even on a busy machine. No dial-out: the swarm's peers dial one
	// address, which only one instance can own.
	r := startE2E(ctx, t, e2eScenario{
		Seed: 31, Torrents: 4, RunFor: 20 * time.Second, NoDialOut: true,
		CrossAt: func(p *swarmtest.Peer) time.Duration {
			return 8*time.Second + time.Duration(p.Index%5)*2*time.Second
		},
	})
	truth, want := r.truth(t)

	// Shard 1: the same configuration on its own peer port and store.
	base, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg1 := string(base)
	for _, rep := range [][2]string{
		{fmt.Sprintf(`listen_address: "127.0.0.1:%d"`, r.btdaPort), fmt.Sprintf(`listen_address: "127.0.0.1:%d"`, freePort(t))},
		{"path: " + r.dbPath, "path: " + filepath.Join(r.dir, "shard1.db")},
	} {
		if !strings.Contains(cfg1, rep[0]) {
			t.Fatalf("btda configuration has no %q to replace:\n%s", rep[0], cfg1)
		}
		cfg1 = strings.Replace(cfg1, rep[0], rep[1], 1)
	}
	cfg1Path := filepath.Join(r.dir, "btda-shard1.yml")
	if err := os.WriteFile(cfg1Path, []byte(cfg1), 0o600); err != nil {
		t.Fatal(err)
	}
	shards := []*btdaProc{
		startDaemonOn(t, r.cfgPath, "--shard", "0/2"),
		startDaemonOn(t, cfg1Path, "--shard", "1/2"),
	}
	instance := make(map[string]int) // Prometheus's instance label → shard
	var targets []string
	for k, d := range shards {
		target := strings.TrimPrefix(d.url, "http://")
		targets = append(targets, target)
		instance[target] = k
	}
	p := startPrometheusConfig(t, promBin, filepath.Join(r.dir, "prometheus"), shardsPromConfig(t, targets))

	query := func(expr string) []promSample {
		t.Helper()
		v, err := p.vector(ctx, expr)
		if err != nil {
			t.Fatalf("query %s: %v", expr, err)
		}
		return v
	}

	// down lists the targets whose last scrape failed: their series are stale, and a check
	// that misses them is retried.
	down := func() []string {
		var out []string
		for _, s := range query(`up{job="btda"} == 0`) {
			out = append(out, "target "+s.Metric["instance"]+" is down (its last scrape failed)")
		}
		return out
	}

	// 1. Each torrent is watched by exactly one instance, and both instances watch some.
	torrents := make(map[string]bool)
	for _, tor := range r.sw.Torrents() {
		torrents[tor.WireHex()] = true
	}
	perShard := make([]int, len(shards))
	eventually(t, 2*time.Minute, "btda_torrent_info", func() []string {
		probs := down()
		watchers := make(map[string][]string)
		clear(perShard)
		for _, s := range query(`btda_torrent_info{job="btda"}`) {
			h := s.Metric["infohash"]
			watchers[h] = append(watchers[h], s.Metric["instance"])
			if !torrents[h] {
				probs = append(probs, fmt.Sprintf("names %s, not a torrent of the swarm", h))
			}
			k, ok := instance[s.Metric["instance"]]
			if !ok {
				probs = append(probs, fmt.Sprintf("from unknown instance %q", s.Metric["instance"]))
				continue
			}
			perShard[k]++
		}
		for h := range torrents {
			if len(watchers[h]) != 1 {
				probs = append(probs, fmt.Sprintf("torrent %s is watched by %d instances %v, want exactly one", h, len(watchers[h]), watchers[h]))
			}
		}
		return probs
	})
	for k, n := range perShard {
		if n == 0 || n == len(torrents) {
			t.Fatalf("shard %d/2 watches %d of %d torrents: the split proves nothing (change the seed)", k, n, len(torrents))
		}
	}
	t.Logf("torrents per shard: %v", perShard)

	// 2. Once the swarm has run its course, the summed recording rule equals the truth per
	// torrent and country. Poll: scrapes, rule evaluation and the last commits take their
	// time on a busy machine.
	r.waitSwarm(r.sc.RunFor)
	byTorrent := make(map[string]int)
	for k, v := range want {
		byTorrent[strings.SplitN(k, "/", 2)[0]] += v
	}
	sumRule := func() (map[string]int, map[string]int) {
		got, gotTorrent := make(map[string]int), make(map[string]int)
		for _, s := range query(`btda:confirmed_downloads:sum`) {
			if s.Value > 0 {
				got[s.Metric["infohash"]+"/"+s.Metric["country"]] += int(s.Value)
			}
		}
		for _, s := range query(`btda:confirmed_downloads_by_torrent:sum`) {
			if s.Value > 0 {
				gotTorrent[s.Metric["infohash"]] += int(s.Value)
			}
		}
		return got, gotTorrent
	}
	var got, gotTorrent map[string]int
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, gotTorrent = sumRule()
		if fmt.Sprint(got) == fmt.Sprint(want) && fmt.Sprint(gotTorrent) == fmt.Sprint(byTorrent) {
			break
		}
		if time.Now().After(deadline) {
			// Tell a btda miscount from a Prometheus or rule problem: the instances' own sum.
			direct := make(map[string]int)
			for _, d := range shards {
				for k, v := range confirmedDownloads(d.scrape(t)) {
					direct[k] += v
				}
			}
			t.Errorf("3 minutes after the run: btda:confirmed_downloads:sum %v, btda:confirmed_downloads_by_torrent:sum %v; truth %v (%v by torrent); the instances' own /metrics add up to %v; %v",
				got, gotTorrent, want, byTorrent, direct, down())
			break
		}
		time.Sleep(time.Second)
	}
	checkConfirmed(t, got, want, truth)
	for h, v := range byTorrent {
		if gotTorrent[h] != v {
			t.Errorf("btda:confirmed_downloads_by_torrent:sum{infohash=%q} = %d, truth %d", h, gotTorrent[h], v)
		}
	}

	// 3. The dashboards' per-torrent queries return one series per torrent, however many
	// instances there are; those over confirmed downloads name exactly the torrents with
	// downloads, with the truth's totals for the cumulative panel.
	all, err := dashboards.AllQueries()
	if err != nil {
		t.Fatalf("dashboards.AllQueries: %v", err)
	}
	perTorrentRE := regexp.MustCompile(`by\s*\(\s*infohash\s*[,)]`)
	files := make([]string, 0, len(all))
	for f := range all {
		files = append(files, f)
	}
	sort.Strings(files)
	checked := 0
	eventually(t, 2*time.Minute, "dashboards' per-torrent queries", func() []string {
		probs := down()
		checked = 0
		for _, f := range files {
			for _, q := range all[f] {
				if !perTorrentRE.MatchString(q.Expr) {
					continue
				}
				checked++
				expr := dashboards.Expand(q.Expr)
				seen := make(map[string]float64)
				for _, s := range query(expr) {
					h := s.Metric["infohash"]
					if _, dup := seen[h]; dup {
						probs = append(probs, fmt.Sprintf("%s %q: two series for torrent %s: %s", f, q.Panel, h, expr))
					}
					seen[h] = s.Value
					if !torrents[h] {
						probs = append(probs, fmt.Sprintf("%s %q: series for %q, not a watched torrent", f, q.Panel, h))
					}
				}
				if !strings.Contains(q.Expr, "btda_confirmed_downloads_total") {
					continue
				}
				for h, v := range byTorrent {
					switch n, ok := seen[h]; {
					case !ok:
						probs = append(probs, fmt.Sprintf("%s %q: no series for torrent %s, which has confirmed downloads: %s", f, q.Panel, h, expr))
					case !strings.Contains(q.Expr, "rate(") && !strings.Contains(q.Expr, "increase(") && int(n) != v:
						// The all-time total per torrent: no window, so it must equal the truth.
						probs = append(probs, fmt.Sprintf("%s %q: torrent %s = %v, truth %d", f, q.Panel, h, n, v))
					}
				}
			}
		}
		return probs
	})
	if checked == 0 {
		t.Error("no dashboard query is per torrent (by (infohash)); the check proves nothing")
	}
	t.Logf("dashboard per-torrent queries checked: %d", checked)

	eventually(t, time.Minute, "btda:torrent_watchers:count", func() []string {
		probs := down()
		watched := query(`btda:torrent_watchers:count`)
		if len(watched) != len(torrents) {
			probs = append(probs, fmt.Sprintf("%d series, want one per torrent (%d)", len(watched), len(torrents)))
		}
		for _, s := range watched {
			if s.Value != 1 {
				probs = append(probs, fmt.Sprintf("infohash %s: %v, want 1", s.Metric["infohash"], s.Value))
			}
		}
		return probs
	})

	// Every rule evaluates without error on the two instances' data, and the overlap alert
	// stays quiet.
	p.checkRuleHealth(ctx, t)
	if st := p.alertState(ctx, t, "BtdaTorrentWatchedTwice"); st != "" {
		t.Errorf("BtdaTorrentWatchedTwice is %s although the shards are disjoint", st)
	}
}
