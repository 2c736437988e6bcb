package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/dashboards"
	"github.com/btda/btda/internal/swarmtest"
	"gopkg.in/yaml.v3"
)

// promCoreQueries must return data after a short run against the test swarm, besides every
// recording rule: the series behind the main panels.
var promCoreQueries = []string{
	`btda_confirmed_downloads_total * on (infohash) group_left (name) btda_torrent_info`,
	`btda:probe_sessions:rate5m{outcome="ok"} > 0`,
	`btda_discovery_peers_received_total{source="tracker"} > 0`, // one announce at start: the rate may be 0
	`btda:discovery_peers_received:rate5m{source="dht"} > 0`,
	`histogram_quantile(0.9, sum by (le) (rate(btda_probe_duration_seconds_bucket[1m])))`,
	`btda_dht_last_success_timestamp_seconds > 0`,
	`btda_tracker_last_success_timestamp_seconds > 0`,
	`btda_geoip_database_loaded{database="city"} == 1`,
}

// TestPrometheusEndToEnd runs the real btda against the test swarm and a real Prometheus
// (Debian's `prometheus` package) loaded with dashboards/rules: every recording rule and
// core query returns data, every dashboard query runs without error, and silencing the
// swarm's DHT makes BtdaDHTStalled go pending.
func TestPrometheusEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with Prometheus takes ~30 s")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus): the rules and dashboard queries are NOT run against a real Prometheus")
	}
	const runFor = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	btdaPort := freePort(t)
	sw, err := swarmtest.Start(ctx, swarmtest.Config{
		Seed: 7, Torrents: 2, Peers: 30, Dir: dir, Duration: runFor,
		Versions: map[swarmtest.Version]float64{swarmtest.V1: 1, swarmtest.Hybrid: 1},
		Mix: map[swarmtest.Profile]float64{
			swarmtest.Libtorrent: 6, swarmtest.Transmission: 4, swarmtest.Rtorrent: 3,
			swarmtest.AlwaysZero: 1, swarmtest.Refuse: 1,
		},
		Tracker:         swarmtest.TrackerConfig{Enabled: true},
		DHT:             swarmtest.DHTConfig{Nodes: 4},
		DialOut:         fmt.Sprintf("127.0.0.1:%d", btdaPort),
		DialOutFraction: 0.3,
		Redial:          2 * time.Second,
		// Leechers start at half and cross 3 s to 7 s after btda first reaches them
		// (anchored curves), so confirmed downloads exist (and their rate series) well
		// before the queries run, however slow the machine.
		CurveFunc: func(p *swarmtest.Peer) (swarmtest.Curve, bool) {
			switch p.Profile {
			case swarmtest.Libtorrent, swarmtest.Transmission, swarmtest.Rtorrent:
			default:
				return swarmtest.Curve{}, false
			}
			n := p.Torrent.Pieces
			start := n / 2
			need := swarmtest.Threshold(0.98, n) - start
			crossAt := 3*time.Second + time.Duration(p.Index%5)*time.Second
			return swarmtest.Curve{Pieces: n, Start: start, Interval: crossAt / time.Duration(need), Anchored: true}, true
		},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()

	city, asn := sw.GeoIPPaths()
	var boot []string
	for _, a := range sw.DHTNodes() {
		boot = append(boot, strconv.Quote(a.String()))
	}
	// Short DHT intervals so lookups run every few seconds: the stall shows within the run.
	cfgPath := filepath.Join(dir, "btda.yml")
	cfg := fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: ""
peer:
  listen_address: "127.0.0.1:%d"
probe:
  connect_timeout: 1s
  handshake_timeout: 1s
  quiet_window: 300ms
  session_cap: 3s
  revisit_delay: 1s
  retry_backoff: 500ms
trackers:
  request_interval: 1m
  timeout: 2s
dht:
  listen_address: "127.0.0.1:0"
  bootstrap_nodes: [%s]
  request_interval: 2s
  lookup_timeout: 1s
storage:
  path: %s
  commit_interval: 200ms
geoip:
  city_database: %s
  asn_database: %s
`, filepath.Join(dir, "torrents"), btdaPort, strings.Join(boot, ", "), filepath.Join(dir, "btda.db"), city, asn)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonOn(t, cfgPath)
	p := startPrometheus(t, promBin, filepath.Join(dir, "prometheus"), strings.TrimPrefix(d.url, "http://"))

	// 1. Every recording rule and core query returns data once a few scrapes are in.
	core := append(promRecordingRules(t), promCoreQueries...)
	waitUntil(t, 2*time.Minute, "every core query returns data", func() string {
		var empty []string
		for _, q := range core {
			n, err := p.query(ctx, q)
			if err != nil {
				t.Fatalf("query %s: %v", q, err)
			}
			if n == 0 {
				empty = append(empty, q)
			}
		}
		if len(empty) > 0 {
			return "no data yet for: " + strings.Join(empty, "; ")
		}
		return ""
	})

	// Every rule, alerts included, evaluates without error on real data (vector matching
	// errors, for one, only show at evaluation).
	p.checkRuleHealth(ctx, t)

	// 2. Every dashboard query parses and runs; those with data are counted, and the ones
	// that read a recording rule must have data like the rule itself.
	all, err := dashboards.AllQueries()
	if err != nil {
		t.Fatalf("dashboards.AllQueries: %v", err)
	}
	files := make([]string, 0, len(all))
	for f := range all {
		files = append(files, f)
	}
	sort.Strings(files)
	var total, withData int
	var noData []string
	for _, f := range files {
		for _, q := range all[f] {
			total++
			expr := dashboards.Expand(q.Expr)
			n, err := p.query(ctx, expr)
			if err != nil {
				t.Errorf("%s, panel %q (%s): %v\nexpanded: %s", f, q.Panel, q.RefID, err, expr)
				continue
			}
			if n > 0 {
				withData++
				continue
			}
			noData = append(noData, fmt.Sprintf("%s %q: %s", f, q.Panel, expr))
			if strings.Contains(q.Expr, "btda:") {
				t.Errorf("%s, panel %q reads a recording rule but has no data: %s", f, q.Panel, expr)
			}
		}
	}
	if total == 0 {
		t.Error("the dashboards have no queries; the check proves nothing")
	}
	t.Logf("dashboard queries: %d, with data: %d; without data in this short run:\n  %s", total, withData, strings.Join(noData, "\n  "))

	// 3. While the DHT answers, BtdaDHTStalled is not active (it may be pending for a moment
	// at start, before the first lookup is answered).
	waitUntil(t, time.Minute, "BtdaDHTStalled inactive while the DHT answers", func() string {
		if st := p.alertState(ctx, t, "BtdaDHTStalled"); st != "" {
			return "BtdaDHTStalled is " + st
		}
		return ""
	})

	// 4. Silence the DHT: every lookup now times out, and the alert goes pending (its `for`
	// is 30 minutes, so pending is as far as it gets here).
	sw.DHT().Stop()
	stoppedAt := time.Now()
	waitUntil(t, 2*time.Minute, "BtdaDHTStalled pending after the DHT stopped", func() string {
		switch st := p.alertState(ctx, t, "BtdaDHTStalled"); st {
		case "pending":
			return ""
		case "firing":
			t.Fatal("BtdaDHTStalled fired at once; its for: 30m was not honoured")
		default:
			return "BtdaDHTStalled is " + strconv.Quote(st)
		}
		return ""
	})
	t.Logf("BtdaDHTStalled pending %v after the DHT stopped", time.Since(stoppedAt).Round(100*time.Millisecond))
	if st := p.alertState(ctx, t, "BtdaGeoIPDatabaseMissing"); st != "" {
		t.Errorf("BtdaGeoIPDatabaseMissing is %s although the swarm's GeoIP database is loaded", st)
	}
}

// promRecordingRules lists the recording rules of dashboards/rules, so that a new rule is
// checked without editing this test.
func promRecordingRules(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "dashboards", "rules", "*-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []struct {
					Record string `yaml:"record"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					names = append(names, r.Record)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("no recording rules in %v", files)
	}
	return names
}

// waitUntil polls cond (which returns "" when satisfied, else what is missing) every
// 500 ms for at most limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		missing := cond()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, limit, missing)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type promProc struct {
	url    string
	client *http.Client
}

// startPrometheus runs prom with the repository's rule files, scraping target every second
// and evaluating rules every second, on a loopback port; Cleanup kills it.
func startPrometheus(t *testing.T, bin, dir, target string) *promProc {
	t.Helper()
	rules, err := filepath.Glob(filepath.Join(repoRoot(t), "dashboards", "rules", "*-rules.yml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rule files in dashboards/rules (%v)", err)
	}
	var quoted []string
	for _, r := range rules {
		quoted = append(quoted, strconv.Quote(r))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: btda
    static_configs:
      - targets: [%q]
`, strings.Join(quoted, ", "), target)
	return startPrometheusConfig(t, bin, dir, []byte(cfg))
}

// get fetches a Prometheus API path and decodes its data field; a status other than
// "success" is an error carrying Prometheus's message.
func (p *promProc) get(ctx context.Context, path string, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: HTTP %s, undecodable body %.200q: %w", path, resp.Status, body, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s: %s", env.Status, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// query runs an instant query now and returns how many series (or 1 for a scalar) it gave.
func (p *promProc) query(ctx context.Context, expr string) (int, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return 0, err
	}
	switch data.ResultType {
	case "scalar", "string":
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(data.Result, &series); err != nil {
		return 0, fmt.Errorf("result of type %s: %w", data.ResultType, err)
	}
	return len(series), nil
}

// checkRuleHealth requires every loaded rule to have been evaluated without error.
func (p *promProc) checkRuleHealth(ctx context.Context, t *testing.T) {
	t.Helper()
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get(ctx, "/api/v1/rules", &data); err != nil {
		t.Fatalf("/api/v1/rules: %v", err)
	}
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s/%s: health %q, last error %q", g.Name, r.Name, r.Health, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rules")
	}
}

// alertState is the state of the named alert in /api/v1/alerts ("pending", "firing"), or
// "" when it is not active.
func (p *promProc) alertState(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.get(ctx, "/api/v1/alerts", &data); err != nil {
		t.Fatalf("/api/v1/alerts: %v", err)
	}
	state := ""
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name && (state == "" || a.State == "firing") {
			state = a.State
		}
	}
	return state
}
