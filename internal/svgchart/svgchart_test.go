package svgchart

import (
	"encoding/xml"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// wellFormed parses s as XML: every chart must be a valid standalone SVG element.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
	}
}

func TestCharts(t *testing.T) {
	cases := []struct {
		name    string
		svg     string
		want    []string // substrings that must appear
		notWant []string
	}{
		{"hbars", string(HBars("by country", []Bar{{"DE", 4}, {"FR", 2}}, 400)),
			[]string{`>DE<`, `>4<`, `>2<`, `width="210.0"`, `width="105.0"`, `<title>by country</title>`}, nil},
		{"hbars empty", string(HBars("none", nil, 400)), []string{"no data"}, []string{"<rect"}},
		{"hbars escapes", string(HBars(`<x>&"`, []Bar{{"<script>", 1}}, 400)),
			[]string{"&lt;script&gt;", "&lt;x&gt;&amp;&#34;"}, []string{"<script>"}},
		{"hbars bad values", string(HBars("nan", []Bar{{"a", math.NaN()}, {"b", math.Inf(1)}, {"c", -3}, {"d", 1}}, 400)),
			[]string{`>0<`, `>1<`}, []string{"NaN", "Inf"}},
		{"columns", string(Columns("progress", []Bar{{"0", 1}, {"50", 3}, {"100", 0}}, 304, 120)),
			[]string{`height="84.0"`, `height="28.0"`, `height="0.0"`, `>50<`}, nil},
		{"columns all zero", string(Columns("zero", []Bar{{"a", 0}}, 100, 60)), []string{`height="0.0"`}, []string{"NaN"}},
		{"line", string(Line("per hour", []float64{0, 2, 1}, "10:00", "12:00", 248, 100)),
			[]string{`points="40.0,82.0 140.0,14.0 240.0,48.0"`, ">10:00<", ">12:00<", ">2<"}, nil},
		{"line one value", string(Line("per hour", []float64{7}, "10:00", "10:00", 248, 100)), []string{`<circle`, ">7<"}, []string{"polyline"}},
		{"sparkline", string(Sparkline("s", []float64{1, 3}, 52, 12)), []string{`points="1.0,7.7 51.0,1.0"`}, nil},
		{"sparkline one", string(Sparkline("s", []float64{5}, 52, 12)), []string{`<circle`}, nil},
		{"sparkline none", string(Sparkline("s", nil, 52, 12)), []string{`<title>s</title></svg>`}, []string{"polyline"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wellFormed(t, c.svg)
			for _, w := range c.want {
				if !strings.Contains(c.svg, w) {
					t.Errorf("missing %q in\n%s", w, c.svg)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(c.svg, w) {
					t.Errorf("unexpected %q in\n%s", w, c.svg)
				}
			}
		})
	}
}

// TestGolden pins one chart of each kind byte for byte (go test -update rewrites it).
func TestGolden(t *testing.T) {
	got := string(HBars("Confirmed downloads by country", []Bar{{"DE", 12}, {"US", 7}, {"ZZ", 1}}, 420)) + "\n" +
		string(Columns("Progress at first contact", []Bar{{"0%", 5}, {"50%", 2}, {"100%", 8}}, 300, 140)) + "\n" +
		string(Line("Confirmed downloads per hour", []float64{1, 4, 2, 0, 3}, "2026-12-01 10:00", "14:00", 400, 120)) + "\n" +
		string(Sparkline("per hour", []float64{0, 1, 3, 2}, 80, 16)) + "\n"
	path := filepath.Join("testdata", "charts.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("charts differ from %s (go test -update to rewrite):\n%s", path, got)
	}
}
