package dashboards

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The rules for several btda instances behind one Prometheus, and the example configuration
// that scrapes them.
const (
	shardsRulesFile     = "rules/btda-shards-rules.yml"
	shardsRulesTestFile = "rules/btda-shards-rules_test.yml"
	shardsPromConfig    = "../examples/prometheus-shards.yml"
)

// TestShardsRulesPromtool checks examples/prometheus-shards.yml (which must load the shards
// rules) and runs the shards rules' unit tests with promtool.
func TestShardsRulesPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): examples/prometheus-shards.yml and the shards rules are NOT checked")
	}
	out := rulesPromtool(t, bin, "check", "config", "examples/prometheus-shards.yml")
	for _, f := range []string{rulesFile, shardsRulesFile} {
		if !strings.Contains(out, "dashboards/"+f) {
			t.Errorf("promtool check config examples/prometheus-shards.yml did not load dashboards/%s:\n%s", f, out)
		}
	}
	rulesPromtool(t, bin, "test", "rules", filepath.Join("dashboards", shardsRulesTestFile))
}

// TestShardsRules holds the shards rules to the standards of btda-rules.yml: loaded by
// prometheus.yml, README-documented metrics only, btda: names, every recording rule with an
// expression test, every alert complete, firing and silent in a test and documented; and
// the sums drop only `instance` (what the example scrape configuration promises).
func TestShardsRules(t *testing.T) {
	if !slices.Contains(rulesFiles(t), "dashboards/"+shardsRulesFile) {
		t.Errorf("%s does not load %s", promConfig, shardsRulesFile)
	}
	documented := rulesDocumentedMetrics(t)
	readme, err := os.ReadFile(rulesReadme)
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
	b, err := os.ReadFile(shardsRulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatalf("%s: %v", shardsRulesTestFile, err)
	}
	if !slices.Contains(tf.RuleFiles, filepath.Base(shardsRulesFile)) {
		t.Errorf("%s does not test %s (rule_files: %v)", shardsRulesTestFile, shardsRulesFile, tf.RuleFiles)
	}
	fires, silent, exprTested := make(map[string]bool), make(map[string]bool), make(map[string]bool)
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

	groups := rulesLoad(t, shardsRulesFile)
	recorded := make(map[string]bool)
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			names, err := rulesMetricNames(r.Expr)
			if err != nil {
				t.Errorf("rule %s: %v", name, err)
				continue
			}
			for _, n := range names {
				if documented[n] == "" && !recorded[n] {
					t.Errorf("rule %s uses %s, which README.md's Metrics section does not list", name, n)
				}
			}
			if !strings.Contains(string(readme), "`"+name+"`") {
				t.Errorf("%s does not document %s", rulesReadme, name)
			}
			if strings.Contains(r.Expr, "without (") && !strings.Contains(r.Expr, "without (instance") {
				t.Errorf("rule %s: a sum over instances must drop `instance`: %s", name, r.Expr)
			}
			if r.Record != "" {
				if !strings.HasPrefix(r.Record, "btda:") {
					t.Errorf("recording rule %s: name must start with btda:", r.Record)
				}
				if !exprTested[r.Record] {
					t.Errorf("recording rule %s has no promql_expr_test in %s", r.Record, shardsRulesTestFile)
				}
				continue
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("alert %s: severity %q", r.Alert, r.Labels["severity"])
			}
			if strings.TrimSpace(r.Annotations["summary"]) == "" || !strings.Contains(r.Annotations["description"], "{{") {
				t.Errorf("alert %s: needs a summary and a templated description", r.Alert)
			}
			if r.For == "" {
				t.Errorf("alert %s: no `for` duration", r.Alert)
			}
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("alert %s: fires in a test %v, stays silent in a test %v; want both", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}

	// The example scrapes several targets in one job named btda, with no per-target labels
	// that the sums would keep.
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err = os.ReadFile(shardsPromConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", shardsPromConfig, err)
	}
	targets := 0
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "btda" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets += len(st.Targets)
			if len(st.Labels) > 0 {
				t.Errorf("%s: targets labelled %v: the shards' sums drop only `instance`", shardsPromConfig, st.Labels)
			}
		}
	}
	if targets < 2 {
		t.Errorf("%s: job btda scrapes %d targets, want an example of several", shardsPromConfig, targets)
	}
}
