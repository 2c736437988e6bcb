package dashboards

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// files holds the dashboards, so tests in other packages (the real-Prometheus
// end-to-end test) can run every query without knowing where the tree is.
//
//go:embed *.json
var files embed.FS

// FS returns the embedded dashboard files (btda-*.json at its root).
func FS() fs.FS { return files }

// Query is one PromQL expression of a dashboard.
type Query struct {
	// Panel is the title of the panel the query belongs to, or "variable NAME"
	// for the selector of a template variable's label_values() query.
	Panel string
	// RefID is the target's refId (empty for variables).
	RefID string
	// Expr is the expression as the dashboard holds it, Grafana variables
	// included; pass it through Expand before handing it to Prometheus.
	Expr string
	// Instant is true for targets Grafana runs as instant queries (tables,
	// maps, stats over the whole range); only those may use $__range.
	Instant bool
	// Variable is true for a template variable's selector.
	Variable bool
}

// Queries returns every PromQL expression of every dashboard, keyed by file
// name: each panel target's expression, then the series selector of every
// label_values() template variable. Expressions keep their Grafana variables
// (see Expand).
func Queries() (map[string][]string, error) {
	all, err := AllQueries()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(all))
	for name, qs := range all {
		exprs := make([]string, 0, len(qs))
		for _, q := range qs {
			exprs = append(exprs, q.Expr)
		}
		out[name] = exprs
	}
	return out, nil
}

// AllQueries is Queries with each expression's panel and query kind.
func AllQueries() (map[string][]Query, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make(map[string][]Query, len(names))
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		qs, err := ParseQueries(data)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		out[name] = qs
	}
	return out, nil
}

// dashboard is the part of Grafana's dashboard model that holds queries.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Targets []target `json:"targets"`
	// Panels are the children of a collapsed row.
	Panels []panel `json:"panels"`
}

type target struct {
	RefID   string `json:"refId"`
	Expr    string `json:"expr"`
	Instant bool   `json:"instant"`
}

type variable struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Query is a string in old dashboards and an object in Grafana ≥ 10.
	Query json.RawMessage `json:"query"`
}

// labelValues matches label_values(selector, label); the one-argument form
// names no selector and is skipped.
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// ParseQueries returns the queries of one dashboard JSON document: panel
// targets (rows' children included) in panel order, then template variable
// selectors. It fails on malformed JSON and on a target without an
// expression, naming the panel.
func ParseQueries(data []byte) ([]Query, error) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decoding dashboard JSON: %w", err)
	}
	var out []Query
	var walk func(ps []panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("panel %q target %q: empty expr", p.Title, t.RefID)
				}
				out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr, Instant: t.Instant})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := variableQuery(v.Query)
		if err != nil {
			return nil, fmt.Errorf("variable %q: %w", v.Name, err)
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			out = append(out, Query{Panel: "variable " + v.Name, Expr: m[1], Variable: true})
		}
	}
	return out, nil
}

func variableQuery(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("no query")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("query is neither a string nor an object with a query: %w", err)
	}
	return o.Query, nil
}

// builtins are the values Expand gives Grafana's global variables. Grafana
// makes $__rate_interval at least four scrape intervals; 1m suits a test
// Prometheus scraping every 15 s or faster (rate() needs two samples in the
// window, so with prometheus.yml's 30 s a 1m window is the bare minimum).
var builtins = map[string]string{
	"__rate_interval":    "1m",
	"__rate_interval_ms": "60000",
	"__interval":         "1m",
	"__interval_ms":      "60000",
	"__range":            "5m",
	"__range_s":          "300",
	"__range_ms":         "300000",
}

// variableRef matches $name, ${name} and ${name:format}.
var variableRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z0-9_]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// Expand substitutes Grafana variables in expr so it parses and runs on a
// plain Prometheus: $__rate_interval and $__interval become 1m, $__range
// 5m (and their _s/_ms forms a number), and any dashboard variable ($job,
// $instance, $tracker, ${datasource}) becomes .+, which matches every value
// because the dashboards only use variables in =~ matchers (the tests
// check that). An unknown $__ name is left as it is, so the expression fails
// to parse rather than run with a guessed value.
func Expand(expr string) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1]
		if name == "" {
			name = m[2]
		}
		if v, ok := builtins[name]; ok {
			return v
		}
		if strings.HasPrefix(name, "__") {
			return ref
		}
		return ".+"
	})
}
