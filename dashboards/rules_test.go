package dashboards

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// The rules live next to this package; prometheus.yml at the repository root loads them.
const (
	rulesDir      = "rules"
	rulesFile     = "rules/btda-rules.yml"
	rulesTestFile = "rules/btda-rules_test.yml"
	rulesReadme   = "../README.md"
	promConfig    = "../prometheus.yml"
)

// rulesDashboardNames are the recording rules the dashboards query; renaming one breaks them.
var rulesDashboardNames = []string{
	"btda:confirmed_downloads:rate1h",
	"btda:confirmed_downloads_by_country:rate1h",
	"btda:discovery_peers_received:rate5m",
	"btda:probe_sessions:rate5m",
}

// rulesPromtool runs promtool from the repository root and fails the test with its output
// on a non-zero exit.
func rulesPromtool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRulesPromtool checks prometheus.yml and the rule files, and runs the rule unit tests,
// with the promtool of the Prometheus this repository targets (Debian's `prometheus`
// package, also installed in CI).
func TestRulesPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): prometheus.yml and dashboards/rules are NOT checked")
	}
	ruleFiles := rulesFiles(t)
	t.Run("check config", func(t *testing.T) {
		out := rulesPromtool(t, bin, "check", "config", "prometheus.yml")
		// check config also checks every rule file the config loads: make sure it loaded ours.
		for _, f := range ruleFiles {
			if !strings.Contains(out, f) {
				t.Errorf("promtool check config did not load %s:\n%s", f, out)
			}
		}
	})
	t.Run("check rules", func(t *testing.T) {
		args := []string{"check", "rules"}
		args = append(args, ruleFiles...)
		rulesPromtool(t, bin, args...)
	})
	t.Run("test rules", func(t *testing.T) {
		rulesPromtool(t, bin, "test", "rules", filepath.Join("dashboards", rulesTestFile))
	})
}

// rulesFiles lists the rule files prometheus.yml loads (relative to the repository root),
// and requires that the unit-test files are not among them.
func rulesFiles(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(promConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", promConfig, err)
	}
	var files []string
	for _, pattern := range cfg.RuleFiles {
		m, err := filepath.Glob(filepath.Join("..", pattern))
		if err != nil {
			t.Fatalf("%s: rule_files pattern %q: %v", promConfig, pattern, err)
		}
		for _, f := range m {
			files = append(files, filepath.ToSlash(strings.TrimPrefix(f, ".."+string(filepath.Separator))))
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.yml") {
			t.Errorf("%s loads the unit-test file %s as rules", promConfig, f)
		}
	}
	if !slices.Contains(files, "dashboards/"+rulesFile) {
		t.Errorf("%s does not load %s (it loads %v)", promConfig, rulesFile, files)
	}
	return files
}

type rulesGroup struct {
	Name  string `yaml:"name"`
	Rules []struct {
		Record      string            `yaml:"record"`
		Alert       string            `yaml:"alert"`
		Expr        string            `yaml:"expr"`
		For         string            `yaml:"for"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"rules"`
}

func rulesLoad(t *testing.T, path string) []rulesGroup {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []rulesGroup `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no rule groups", path)
	}
	return f.Groups
}

// rulesMetricNames returns the metric names an expression selects.
func rulesMetricNames(expr string) ([]string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				err = errors.Join(err, fmt.Errorf("selector %s has no metric name", vs))
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, err
}

// rulesDocumentedMetrics parses the first column of the markdown tables in README's
// "## Metrics" section (up to the next "## " heading).
func rulesDocumentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(rulesReadme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\|\\s*`(btda_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)")
	types := make(map[string]string)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			in = l == "## Metrics"
		case in:
			if m := row.FindStringSubmatch(l); m != nil {
				types[m[1]] = m[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) < 20 {
		t.Fatalf("%s: found only %d metrics in the Metrics section's tables; has its format changed?", rulesReadme, len(types))
	}
	return types
}

// TestRulesUseDocumentedMetrics requires every metric a rule selects to be a btda metric
// listed in README (histogram series by their _bucket/_sum/_count names), Prometheus's own
// `up`, the process collector's start time, or a recording rule defined in the same file; and the recording rules the
// dashboards use to exist.
func TestRulesUseDocumentedMetrics(t *testing.T) {
	documented := rulesDocumentedMetrics(t)
	groups := rulesLoad(t, rulesFile)
	recorded := make(map[string]bool)
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	known := func(name string) bool {
		// up comes from Prometheus, process_start_time_seconds from client_golang's
		// process collector (README: "the standard ... process (process_*) series").
		if name == "up" || name == "process_start_time_seconds" || recorded[name] || documented[name] != "" {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && documented[base] == "histogram" {
				return true
			}
		}
		return false
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			names, err := rulesMetricNames(r.Expr)
			if err != nil {
				t.Errorf("%s: rule %s: %v", rulesFile, name, err)
				continue
			}
			if len(names) == 0 {
				t.Errorf("%s: rule %s selects no metric", rulesFile, name)
			}
			for _, n := range names {
				if !known(n) {
					t.Errorf("%s: rule %s uses %s, which README.md's Metrics section does not list", rulesFile, name, n)
				}
			}
			if r.Record != "" && !strings.HasPrefix(r.Record, "btda:") {
				t.Errorf("%s: recording rule %s: name must start with btda: (level:metric:operations)", rulesFile, r.Record)
			}
		}
	}
	for _, n := range rulesDashboardNames {
		if !recorded[n] {
			t.Errorf("%s: recording rule %s, which the dashboards use, is missing", rulesFile, n)
		}
	}
}

// TestRulesAlertsComplete requires every alert to carry a severity, a summary and a
// description, a `for` duration, and unit tests in which it both fires and stays silent;
// and every recording rule to have an expression test.
func TestRulesAlertsComplete(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Alerts []struct {
				Name      string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
			Exprs []struct {
				Expr string `yaml:"expr"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Contains(tf.RuleFiles, filepath.Base(rulesFile)) {
		t.Errorf("%s does not test %s (rule_files: %v)", rulesTestFile, rulesFile, tf.RuleFiles)
	}
	fires, silent := make(map[string]bool), make(map[string]bool)
	exprTested := make(map[string]bool)
	for _, tc := range tf.Tests {
		for _, a := range tc.Alerts {
			if len(a.ExpAlerts) > 0 {
				fires[a.Name] = true
			} else {
				silent[a.Name] = true
			}
		}
		for _, e := range tc.Exprs {
			exprTested[strings.TrimSpace(e.Expr)] = true
		}
	}
	severities := []string{"critical", "warning", "info"}
	var alerts []string
	for _, g := range rulesLoad(t, rulesFile) {
		for _, r := range g.Rules {
			if r.Record != "" {
				if !exprTested[r.Record] {
					t.Errorf("recording rule %s has no promql_expr_test in %s", r.Record, rulesTestFile)
				}
				continue
			}
			alerts = append(alerts, r.Alert)
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("alert %s: severity label %q, want one of %v", r.Alert, r.Labels["severity"], severities)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			if !strings.Contains(r.Annotations["description"], "{{") {
				t.Errorf("alert %s: description is not templated (name the instance at least)", r.Alert)
			}
			if r.For == "" {
				t.Errorf("alert %s: no `for` duration; one bad evaluation would page", r.Alert)
			}
			if !fires[r.Alert] {
				t.Errorf("alert %s: no unit test in which it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("alert %s: no unit test in which it stays silent", r.Alert)
			}
		}
	}
	sort.Strings(alerts)
	for a := range fires {
		if !slices.Contains(alerts, a) {
			t.Errorf("%s tests alert %s, which %s does not define", rulesTestFile, a, rulesFile)
		}
	}
	// The README section documents every alert.
	doc, err := os.ReadFile(rulesReadme)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("%s does not document alert %s", rulesReadme, a)
		}
	}
}

func TestRulesMetricNames(t *testing.T) {
	for _, tt := range []struct {
		expr    string
		want    []string
		wantErr bool
	}{
		{expr: `up == 0`, want: []string{"up"}},
		{expr: `sum by (x) (rate(a_total[5m])) / b`, want: []string{"a_total", "b"}},
		{expr: `histogram_quantile(0.9, rate(h_bucket[5m]))`, want: []string{"h_bucket"}},
		{expr: `{__name__=~"btda_.*"}`, want: []string{""}, wantErr: true},
		{expr: `sum(`, wantErr: true},
	} {
		got, err := rulesMetricNames(tt.expr)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v, want error %v", tt.expr, err, tt.wantErr)
		}
		if !tt.wantErr && !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.expr, got, tt.want)
		}
	}
}
