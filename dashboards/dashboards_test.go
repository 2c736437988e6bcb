package dashboards

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// wantDatasource is the reference every panel and target must use: the
// dashboard's data source variable, so one JSON works with any Prometheus.
var wantDatasource = map[string]any{"type": "prometheus", "uid": "${datasource}"}

// loadDashboards decodes every embedded dashboard as generic JSON.
func loadDashboards(t *testing.T) map[string]map[string]any {
	t.Helper()
	names, err := fs.Glob(FS(), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no dashboards embedded")
	}
	out := make(map[string]map[string]any, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: invalid JSON: %v", name, err)
		}
		out[name] = d
	}
	return out
}

// TestEmbedsEveryDashboard guards against a dashboard left out of the
// embedded set (and so out of the query checks and the end-to-end test).
func TestEmbedsEveryDashboard(t *testing.T) {
	onDisk, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fs.Glob(FS(), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(onDisk)
	sort.Strings(embedded)
	if !reflect.DeepEqual(onDisk, embedded) {
		t.Fatalf("embedded %v, on disk %v", embedded, onDisk)
	}
	for _, want := range []string{"btda-overview.json", "btda-probe.json", "btda-sources.json"} {
		if _, err := fs.Stat(FS(), want); err != nil {
			t.Errorf("missing %s: %v", want, err)
		}
	}
}

var uidPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// TestConventions checks what makes the dashboards provisioning-ready and
// portable: fixed short unique uids, no numeric id, read-only, the
// datasource/job/instance variables, and on every panel a description, a
// unit and the datasource variable.
func TestConventions(t *testing.T) {
	uids := map[string]string{}
	for name, d := range loadDashboards(t) {
		t.Run(name, func(t *testing.T) {
			uid, _ := d["uid"].(string)
			if !uidPattern.MatchString(uid) {
				t.Errorf("uid %q: want a short fixed uid matching %s", uid, uidPattern)
			}
			if other, dup := uids[uid]; dup {
				t.Errorf("uid %q also used by %s", uid, other)
			}
			uids[uid] = name
			if id, ok := d["id"]; !ok || id != nil {
				t.Errorf("id = %v (present %v), want null", id, ok)
			}
			if d["editable"] != false {
				t.Errorf("editable = %v, want false", d["editable"])
			}
			if v, _ := d["schemaVersion"].(float64); v < 36 {
				t.Errorf("schemaVersion = %v, want >= 36", d["schemaVersion"])
			}
			if s, _ := d["title"].(string); !strings.HasPrefix(s, "btda") {
				t.Errorf("title %q: want a btda title", s)
			}
			if s, _ := d["description"].(string); s == "" {
				t.Error("dashboard has no description")
			}
			checkVariables(t, d)
			ids := map[float64]bool{}
			panels := allPanels(d["panels"])
			if len(panels) == 0 {
				t.Fatal("no panels")
			}
			for _, p := range panels {
				checkPanel(t, p, ids)
			}
			checkLayout(t, panels)
		})
	}
}

func checkVariables(t *testing.T, d map[string]any) {
	t.Helper()
	tmpl, _ := d["templating"].(map[string]any)
	list, _ := tmpl["list"].([]any)
	vars := map[string]map[string]any{}
	for _, v := range list {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		vars[name] = m
	}
	ds := vars["datasource"]
	if ds == nil || ds["type"] != "datasource" || ds["query"] != "prometheus" {
		t.Errorf("variable datasource = %v, want type datasource with query prometheus", ds)
	}
	for name, v := range vars {
		if name == "datasource" {
			continue
		}
		if v["type"] != "query" {
			continue
		}
		if !reflect.DeepEqual(v["datasource"], wantDatasource) {
			t.Errorf("variable %s: datasource %v, want %v", name, v["datasource"], wantDatasource)
		}
		// "All" must be a regex that matches every value, since the
		// queries use the variables in =~ matchers.
		if v["includeAll"] == true && v["allValue"] != ".+" {
			t.Errorf("variable %s: allValue %v, want .+", name, v["allValue"])
		}
	}
	for _, name := range []string{"job", "instance"} {
		v := vars[name]
		if v == nil {
			t.Errorf("no %s variable", name)
			continue
		}
		def, _ := v["definition"].(string)
		if v["type"] != "query" || !strings.Contains(def, "label_values(btda_build_info") || !strings.HasSuffix(def, name+")") {
			t.Errorf("variable %s: type %v definition %q, want label_values(btda_build_info..., %s)", name, v["type"], def, name)
		}
	}
}

// allPanels flattens rows: a collapsed row keeps its children in "panels".
func allPanels(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, p := range list {
		m, ok := p.(map[string]any)
		if !ok {
			continue
		}
		out = append(out, m)
		out = append(out, allPanels(m["panels"])...)
	}
	return out
}

// panelTypes are Grafana's core panels the dashboards use; a plugin panel
// would need installing on every Grafana.
var panelTypes = map[string]bool{
	"row": true, "timeseries": true, "stat": true, "table": true,
	"heatmap": true, "geomap": true, "bargauge": true,
}

// checkLayout fails on panels that overlap on the grid (Grafana would move
// them, and the layout in the file would not be the one shown).
func checkLayout(t *testing.T, panels []map[string]any) {
	t.Helper()
	type box struct {
		title      string
		x, y, w, h float64
	}
	var boxes []box
	for _, p := range panels {
		gp, _ := p["gridPos"].(map[string]any)
		x, _ := gp["x"].(float64)
		y, _ := gp["y"].(float64)
		w, _ := gp["w"].(float64)
		h, _ := gp["h"].(float64)
		title, _ := p["title"].(string)
		b := box{title, x, y, w, h}
		for _, o := range boxes {
			if b.x < o.x+o.w && o.x < b.x+b.w && b.y < o.y+o.h && o.y < b.y+b.h {
				t.Errorf("panels %q and %q overlap", b.title, o.title)
			}
		}
		boxes = append(boxes, b)
	}
}

func checkPanel(t *testing.T, p map[string]any, ids map[float64]bool) {
	t.Helper()
	title, _ := p["title"].(string)
	where := fmt.Sprintf("panel %q", title)
	if title == "" {
		t.Errorf("%s: no title", where)
	}
	if typ, _ := p["type"].(string); !panelTypes[typ] {
		t.Errorf("%s: panel type %q is not one of Grafana's core panels used here", where, typ)
	}
	id, _ := p["id"].(float64)
	if id == 0 || ids[id] {
		t.Errorf("%s: id %v missing or duplicate", where, p["id"])
	}
	ids[id] = true
	if gp, ok := p["gridPos"].(map[string]any); !ok {
		t.Errorf("%s: no gridPos", where)
	} else if x, w := gp["x"].(float64), gp["w"].(float64); w <= 0 || x+w > 24 {
		t.Errorf("%s: gridPos x=%v w=%v outside the 24-column grid", where, x, w)
	}
	if p["type"] == "row" {
		// A row only groups panels; it has no data, unit or description.
		if _, ok := p["targets"]; ok {
			t.Errorf("%s: row with targets", where)
		}
		return
	}
	if s, _ := p["description"].(string); s == "" {
		t.Errorf("%s: no description", where)
	}
	fc, _ := p["fieldConfig"].(map[string]any)
	defaults, _ := fc["defaults"].(map[string]any)
	if u, _ := defaults["unit"].(string); u == "" {
		t.Errorf("%s: no fieldConfig.defaults.unit", where)
	}
	if !reflect.DeepEqual(p["datasource"], wantDatasource) {
		t.Errorf("%s: datasource %v, want %v", where, p["datasource"], wantDatasource)
	}
	targets, _ := p["targets"].([]any)
	if len(targets) == 0 {
		t.Errorf("%s: no targets", where)
	}
	refs := map[string]bool{}
	for _, tg := range targets {
		m, _ := tg.(map[string]any)
		ref, _ := m["refId"].(string)
		if ref == "" || refs[ref] {
			t.Errorf("%s: refId %q missing or duplicate", where, ref)
		}
		refs[ref] = true
		if !reflect.DeepEqual(m["datasource"], wantDatasource) {
			t.Errorf("%s target %s: datasource %v, want %v", where, ref, m["datasource"], wantDatasource)
		}
		if e, _ := m["expr"].(string); strings.TrimSpace(e) == "" {
			t.Errorf("%s target %s: no expr", where, ref)
		}
	}
}

// metricTypes reads the metric families btda exports from README.md's
// Metrics section: the first two columns of its tables.
func metricTypes(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\|\\s*`(btda_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)")
	types := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Metrics"
			continue
		}
		if !in {
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil {
			types[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) < 50 {
		t.Fatalf("found %d metrics in README.md's Metrics section, want the full list (did its layout change?)", len(types))
	}
	return types
}

// knownSeries maps every series name a query may select to its type:
// README's families, histogram families' _bucket/_sum/_count series (the
// bare histogram name selects nothing in the classic exposition), and the
// recording rules.
func knownSeries(t *testing.T) map[string]string {
	t.Helper()
	known := map[string]string{}
	for name, typ := range metricTypes(t) {
		if typ == "histogram" {
			known[name+"_bucket"] = "counter"
			known[name+"_sum"] = "counter"
			known[name+"_count"] = "counter"
			continue
		}
		known[name] = typ
	}
	for _, r := range recordingRules(t) {
		known[r] = "recording rule"
	}
	return known
}

// fallbackRules are the recording rules the rules files were agreed to
// define; used only while dashboards/rules holds no rules file.
var fallbackRules = []string{
	"btda:confirmed_downloads:rate1h",
	"btda:confirmed_downloads_by_country:rate1h",
	"btda:discovery_peers_received:rate5m",
	"btda:probe_sessions:rate5m",
}

func recordingRules(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("rules", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var records []string
	sawRules := false
	for _, file := range files {
		if strings.HasSuffix(file, "_test.yml") {
			continue // promtool unit tests, not rules
		}
		data, err := os.ReadFile(file)
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
		if err := yaml.Unmarshal(data, &rf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		sawRules = true
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records = append(records, r.Record)
				}
			}
		}
	}
	if !sawRules {
		return fallbackRules
	}
	return records
}

// Sentinel durations stand for Grafana's range variables while checking
// which range each range selector uses.
const (
	sentinelRateInterval = 11111 * time.Second
	sentinelRange        = 22222 * time.Second
	sentinelInterval     = 33333 * time.Second
)

// expandSentinels replaces only Grafana's interval variables, with
// recognisable durations, and keeps $job etc.: inside a quoted label value
// they parse as they are, so the matchers can be checked.
func expandSentinels(expr string) string {
	r := strings.NewReplacer(
		"$__rate_interval", "11111s",
		"$__range", "22222s",
		"$__interval", "33333s",
	)
	return r.Replace(expr)
}

// counterFuncs take a counter's range; rate and friends on a gauge are a bug.
var counterFuncs = map[string]bool{"rate": true, "irate": true, "increase": true, "resets": true}

// TestQueries parses every expression and checks the PromQL conventions.
func TestQueries(t *testing.T) {
	all, err := AllQueries()
	if err != nil {
		t.Fatal(err)
	}
	known := knownSeries(t)
	vars := map[string]bool{}
	for name, d := range loadDashboards(t) {
		tmpl, _ := d["templating"].(map[string]any)
		list, _ := tmpl["list"].([]any)
		for _, v := range list {
			m, _ := v.(map[string]any)
			if n, _ := m["name"].(string); n != "" {
				vars[name+"/"+n] = true
			}
		}
	}
	for file, qs := range all {
		if len(qs) == 0 {
			t.Errorf("%s: no queries", file)
		}
		for _, q := range qs {
			where := fmt.Sprintf("%s: %s %s: %s", file, q.Panel, q.RefID, q.Expr)
			if _, err := parser.ParseExpr(Expand(q.Expr)); err != nil {
				t.Errorf("%s: expanded query does not parse: %v", where, err)
				continue
			}
			expr, err := parser.ParseExpr(expandSentinels(q.Expr))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			for _, ref := range variableRef.FindAllStringSubmatch(q.Expr, -1) {
				name := ref[1] + ref[2]
				if strings.HasPrefix(name, "__") {
					continue
				}
				if !vars[file+"/"+name] {
					t.Errorf("%s: uses undefined variable $%s", where, name)
				}
			}
			for _, p := range checkExpr(expr, q, known) {
				t.Errorf("%s: %s", where, p)
			}
		}
	}
}

// checkExpr returns what is wrong with one parsed query.
func checkExpr(expr parser.Expr, q Query, known map[string]string) []string {
	var problems []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			problems = append(problems, checkSelector(n, q, known)...)
		case *parser.MatrixSelector:
			switch n.Range {
			case sentinelRateInterval:
			case sentinelRange:
				if !q.Instant {
					problems = append(problems, "$__range in a range query (only instant tables and stats may use it; use $__rate_interval)")
				}
			case sentinelInterval:
				problems = append(problems, "range [$__interval]: use [$__rate_interval], which is never shorter than the scrape interval allows")
			default:
				problems = append(problems, fmt.Sprintf("range [%s]: use [$__rate_interval] (or [$__range] in an instant query)", n.Range))
			}
		case *parser.SubqueryExpr:
			problems = append(problems, "subquery: not used by these dashboards, write the query without one")
		case *parser.Call:
			if counterFuncs[n.Func.Name] {
				parser.Inspect(n.Args[0], func(inner parser.Node, _ []parser.Node) error {
					if vs, ok := inner.(*parser.VectorSelector); ok {
						if typ := known[vs.Name]; typ != "counter" {
							problems = append(problems, fmt.Sprintf("%s() of %s, a %s (want a counter)", n.Func.Name, vs.Name, typ))
						}
					}
					return nil
				})
			}
			if n.Func.Name == "histogram_quantile" && !byLe(n.Args[1]) {
				problems = append(problems, "histogram_quantile() needs the _bucket series aggregated by le")
			}
		}
		return nil
	})
	return problems
}

// byLe reports whether e aggregates by (…, le, …) and selects _bucket series.
func byLe(e parser.Expr) bool {
	agg, bucket := false, false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.AggregateExpr:
			if !n.Without && slices.Contains(n.Grouping, "le") {
				agg = true
			}
		case *parser.VectorSelector:
			if strings.HasSuffix(n.Name, "_bucket") {
				bucket = true
			}
		}
		return nil
	})
	return agg && bucket
}

func checkSelector(vs *parser.VectorSelector, q Query, known map[string]string) []string {
	var problems []string
	if vs.Name == "" {
		return []string{fmt.Sprintf("selector %s names no metric", vs)}
	}
	if _, ok := known[vs.Name]; !ok {
		problems = append(problems, fmt.Sprintf("metric %s is not in README.md's Metrics section nor a recording rule", vs.Name))
	}
	if q.Variable {
		return problems // job and instance variables select their own values
	}
	if strings.Contains(vs.Name, ":") {
		return problems // recording rules aggregate job and instance away
	}
	for _, label := range []string{"job", "instance"} {
		found := false
		for _, m := range vs.LabelMatchers {
			if m.Name == label && m.Type.String() == "=~" && m.Value == "$"+label {
				found = true
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("selector %s lacks %s=~\"$%s\"", vs, label, label))
		}
	}
	return problems
}

// TestCheckExprCatches proves the query checks fail on the mistakes they
// exist for.
func TestCheckExprCatches(t *testing.T) {
	known := map[string]string{
		"btda_a_total":  "counter",
		"btda_g":        "gauge",
		"btda:x:rate5m": "recording rule",
		"btda_h_bucket": "counter",
	}
	const sel = `{job=~"$job", instance=~"$instance"}`
	tests := []struct {
		name    string
		expr    string
		instant bool
		want    string // substring of a problem; empty: no problem
	}{
		{"good rate", `sum(rate(btda_a_total` + sel + `[$__rate_interval]))`, false, ""},
		{"good instant range", `sum(increase(btda_a_total` + sel + `[$__range]))`, true, ""},
		{"recording rule", `sum(btda:x:rate5m)`, false, ""},
		{"fixed range", `rate(btda_a_total` + sel + `[5m])`, false, "use [$__rate_interval]"},
		{"range var in range query", `increase(btda_a_total` + sel + `[$__range])`, false, "$__range in a range query"},
		{"interval", `rate(btda_a_total` + sel + `[$__interval])`, false, "range [$__interval]"},
		{"unknown metric", `btda_nope` + sel, false, "not in README.md"},
		{"no job filter", `btda_g{instance=~"$instance"}`, false, `lacks job=~"$job"`},
		{"job equality", `btda_g{job="$job", instance=~"$instance"}`, false, `lacks job=~"$job"`},
		{"rate of gauge", `rate(btda_g` + sel + `[$__rate_interval])`, false, "want a counter"},
		{"bare selector", `{job=~"$job"}`, false, "names no metric"},
		{"subquery", `max_over_time(btda_g` + sel + `[$__rate_interval:])`, false, "subquery"},
		{"quantile by le", `histogram_quantile(0.5, sum by (le) (rate(btda_h_bucket` + sel + `[$__rate_interval])))`, false, ""},
		{"quantile without le", `histogram_quantile(0.5, sum(rate(btda_h_bucket` + sel + `[$__rate_interval])))`, false, "aggregated by le"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := parser.ParseExpr(expandSentinels(tc.expr))
			if err != nil {
				t.Fatal(err)
			}
			problems := checkExpr(expr, Query{Expr: tc.expr, Instant: tc.instant}, known)
			joined := strings.Join(problems, "; ")
			if tc.want == "" && len(problems) > 0 {
				t.Fatalf("unexpected problems: %s", joined)
			}
			if tc.want != "" && !strings.Contains(joined, tc.want) {
				t.Fatalf("problems %q, want one containing %q", joined, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct{ in, want string }{
		{`rate(x{job=~"$job"}[$__rate_interval])`, `rate(x{job=~".+"}[1m])`},
		{`increase(x{instance=~"${instance}"}[$__range])`, `increase(x{instance=~".+"}[5m])`},
		{`x{a=~"${tracker:regex}"}[$__interval]`, `x{a=~".+"}[1m]`},
		{`x / $__range_s`, `x / 300`},
		{`x[$__unknown]`, `x[$__unknown]`},
		{`no variables`, `no variables`},
		{`cost$`, `cost$`},
	}
	for _, tc := range tests {
		if got := Expand(tc.in); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQueriesMatchesAllQueries(t *testing.T) {
	qs, err := Queries()
	if err != nil {
		t.Fatal(err)
	}
	all, err := AllQueries()
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != len(all) || len(qs) < 3 {
		t.Fatalf("Queries has %d dashboards, AllQueries %d", len(qs), len(all))
	}
	for file, exprs := range qs {
		if len(exprs) != len(all[file]) {
			t.Errorf("%s: %d expressions, want %d", file, len(exprs), len(all[file]))
		}
		vars := 0
		for _, q := range all[file] {
			if q.Variable {
				vars++
			}
		}
		if vars < 2 {
			t.Errorf("%s: %d variable selectors, want the job and instance ones", file, vars)
		}
	}
}

func TestParseQueriesErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", `{`, "decoding dashboard JSON"},
		{"empty expr", `{"panels":[{"title":"P","targets":[{"refId":"A","expr":" "}]}]}`, `panel "P" target "A": empty expr`},
		{"nested empty expr", `{"panels":[{"type":"row","panels":[{"title":"Q","targets":[{"refId":"B"}]}]}]}`, `panel "Q"`},
		{"bad variable", `{"templating":{"list":[{"name":"v","type":"query","query":5}]}}`, `variable "v"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseQueries([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	qs, err := ParseQueries([]byte(`{"templating":{"list":[
		{"name":"a","type":"query","query":"label_values(up{job=\"x\"}, instance)"},
		{"name":"b","type":"query","query":{"query":"label_values(btda_build_info, job)"}},
		{"name":"c","type":"query","query":"label_values(job)"},
		{"name":"d","type":"custom","query":"1,2"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range qs {
		got = append(got, q.Panel+"="+q.Expr)
	}
	want := []string{`variable a=up{job="x"}`, "variable b=btda_build_info"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("variable selectors %q, want %q", got, want)
	}
}

// TestProvisioning checks the Grafana provisioning files: a file provider
// for the dashboards and the default Prometheus data source.
func TestProvisioning(t *testing.T) {
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			OrgID                 int    `yaml:"orgId"`
			Type                  string `yaml:"type"`
			Folder                string `yaml:"folder"`
			FolderUID             string `yaml:"folderUid"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	// Unknown keys fail (readYAML decodes strictly), so a misspelt
	// setting that Grafana would silently ignore is caught here.
	readYAML(t, "provisioning/dashboards/btda.yml", &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 {
		t.Fatalf("dashboard provisioning: apiVersion %d, %d providers; want 1 and 1", dp.APIVersion, len(dp.Providers))
	}
	p := dp.Providers[0]
	if p.Type != "file" || !filepath.IsAbs(p.Options.Path) || p.AllowUIUpdates || p.UpdateIntervalSeconds <= 0 {
		t.Errorf("dashboard provider %+v: want type file, an absolute path, no UI updates, a reload interval", p)
	}

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			Access    string `yaml:"access"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
			Editable  bool   `yaml:"editable"`
			JSONData  struct {
				TimeInterval string `yaml:"timeInterval"`
				HTTPMethod   string `yaml:"httpMethod"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "provisioning/datasources/prometheus.yml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("data source provisioning: apiVersion %d, %d data sources; want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	d := ds.Datasources[0]
	if d.UID != "prometheus" || d.Type != "prometheus" || d.URL != "http://localhost:9090" || d.Access != "proxy" || !d.IsDefault {
		t.Errorf("data source %+v: want uid and type prometheus, proxy access to http://localhost:9090, default", d)
	}
	if _, err := time.ParseDuration(d.JSONData.TimeInterval); err != nil {
		t.Errorf("data source timeInterval %q: %v", d.JSONData.TimeInterval, err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// FuzzParseQueries: any input gives queries or an error, never a panic, and
// every query it returns has an expression.
func FuzzParseQueries(f *testing.F) {
	names, err := fs.Glob(FS(), "*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		data, err := fs.ReadFile(FS(), name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"panels":[{"targets":[{"expr":"up"}]}]}`))
	f.Add([]byte(`{"templating":{"list":[{"type":"query","query":{"query":"label_values(a, b)"}}]}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		qs, err := ParseQueries(data)
		if err != nil {
			return
		}
		for _, q := range qs {
			if strings.TrimSpace(q.Expr) == "" {
				t.Fatalf("query without expression: %+v", q)
			}
		}
	})
}

// FuzzExpand: Expand never panics, is idempotent, and leaves no dashboard
// variable or known Grafana interval behind.
func FuzzExpand(f *testing.F) {
	all, err := AllQueries()
	if err != nil {
		f.Fatal(err)
	}
	for _, qs := range all {
		for _, q := range qs {
			f.Add(q.Expr)
		}
	}
	f.Add(`x{a=~"${b:regex}"}[$__range_ms]`)
	f.Add(`$`)
	f.Add(`${`)
	f.Fuzz(func(t *testing.T, s string) {
		got := Expand(s)
		if again := Expand(got); again != got {
			t.Fatalf("Expand not idempotent: %q -> %q -> %q", s, got, again)
		}
		for _, ref := range variableRef.FindAllStringSubmatch(got, -1) {
			name := ref[1] + ref[2]
			if !strings.HasPrefix(name, "__") {
				t.Fatalf("Expand(%q) = %q keeps variable %q", s, got, ref[0])
			}
			if _, ok := builtins[name]; ok {
				t.Fatalf("Expand(%q) = %q keeps builtin %q", s, got, ref[0])
			}
		}
	})
}
