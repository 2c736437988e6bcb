// Package svgchart draws the small charts of the status pages and of `btda report` as inline
// SVG: horizontal bar charts, column histograms and line charts (with a bare sparkline
// form). Hand-written because three chart kinds do not justify a plotting library, and the
// output must be self-contained (no fonts, scripts or external references). Every label is
// escaped; numbers are printed with fixed precision so the output is deterministic.
package svgchart

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Bar is one labelled value.
type Bar struct {
	Label string
	Value float64
}

// Layout constants (SVG user units, which are CSS pixels at the default scale).
const (
	barHeight  = 18
	barGap     = 4
	labelWidth = 120
	valueWidth = 70
	fontSize   = 12
)

func esc(s string) string { return template.HTMLEscapeString(s) }

// num prints a value compactly: integers without decimals, others with up to two.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func coord(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func maxOf(bars []Bar) float64 {
	m := 0.0
	for _, b := range bars {
		if b.Value > m && !math.IsInf(b.Value, 0) {
			m = b.Value
		}
	}
	return m
}

func clean(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

func open(sb *strings.Builder, title string, w, h int) {
	fmt.Fprintf(sb, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		w, h, w, h, esc(title))
	fmt.Fprintf(sb, `<title>%s</title>`, esc(title))
}

// HBars draws one horizontal bar per item, its label on the left and its value on the
// right, width wide. An empty list draws a "no data" note.
func HBars(title string, bars []Bar, width int) template.HTML {
	if width < labelWidth+valueWidth+50 {
		width = labelWidth + valueWidth + 50
	}
	if len(bars) == 0 {
		return empty(title, width)
	}
	h := len(bars)*(barHeight+barGap) + barGap
	var sb strings.Builder
	open(&sb, title, width, h)
	m := maxOf(bars)
	span := float64(width - labelWidth - valueWidth)
	for i, b := range bars {
		y := barGap + i*(barHeight+barGap)
		v := clean(b.Value)
		w := 0.0
		if m > 0 {
			w = span * v / m
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="%d" text-anchor="end">%s</text>`, labelWidth-6, y+barHeight-5, fontSize, esc(b.Label))
		fmt.Fprintf(&sb, `<rect class="bar" x="%d" y="%d" width="%s" height="%d"><title>%s: %s</title></rect>`,
			labelWidth, y, coord(w), barHeight, esc(b.Label), num(v))
		fmt.Fprintf(&sb, `<text x="%s" y="%d" font-size="%d">%s</text>`, coord(float64(labelWidth)+w+4), y+barHeight-5, fontSize, num(v))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) //nolint:gosec // built from escaped parts only
}

// Columns draws a column chart (a histogram when the bars are bins), width × height, with
// the bin labels under the columns and the counts above them.
func Columns(title string, bins []Bar, width, height int) template.HTML {
	if len(bins) == 0 {
		return empty(title, width)
	}
	const top, bottom, left = 16, 20, 4
	var sb strings.Builder
	open(&sb, title, width, height)
	m := maxOf(bins)
	colW := float64(width-2*left) / float64(len(bins))
	plotH := float64(height - top - bottom)
	base := float64(height - bottom)
	fmt.Fprintf(&sb, `<line class="axis" x1="%d" y1="%s" x2="%d" y2="%s"/>`, left, coord(base), width-left, coord(base))
	for i, b := range bins {
		v := clean(b.Value)
		hh := 0.0
		if m > 0 {
			hh = plotH * v / m
		}
		x := float64(left) + float64(i)*colW
		fmt.Fprintf(&sb, `<rect class="bar" x="%s" y="%s" width="%s" height="%s"><title>%s: %s</title></rect>`,
			coord(x+1), coord(base-hh), coord(math.Max(colW-2, 1)), coord(hh), esc(b.Label), num(v))
		mid := coord(x + colW/2)
		fmt.Fprintf(&sb, `<text x="%s" y="%s" font-size="%d" text-anchor="middle">%s</text>`, mid, coord(base-hh-3), fontSize-2, num(v))
		fmt.Fprintf(&sb, `<text x="%s" y="%d" font-size="%d" text-anchor="middle">%s</text>`, mid, height-6, fontSize-2, esc(b.Label))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) //nolint:gosec // built from escaped parts only
}

// Line draws values at equal steps as a line chart width × height with the first and last
// labels under the x axis and the maximum on the y axis (labels may be nil).
func Line(title string, values []float64, first, last string, width, height int) template.HTML {
	if len(values) == 0 {
		return empty(title, width)
	}
	const top, bottom, left, right = 14, 18, 40, 8
	var sb strings.Builder
	open(&sb, title, width, height)
	m := 0.0
	for _, v := range values {
		m = math.Max(m, clean(v))
	}
	base := float64(height - bottom)
	fmt.Fprintf(&sb, `<line class="axis" x1="%d" y1="%s" x2="%d" y2="%s"/>`, left, coord(base), width-right, coord(base))
	fmt.Fprintf(&sb, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%s"/>`, left, top, left, coord(base))
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="%d" text-anchor="end">%s</text>`, left-4, top+4, fontSize-2, num(m))
	fmt.Fprintf(&sb, `<text x="%d" y="%s" font-size="%d" text-anchor="end">0</text>`, left-4, coord(base), fontSize-2)
	if len(values) == 1 { // a line needs two points: show the one value as a dot
		x := float64(left) + float64(width-left-right)/2
		fmt.Fprintf(&sb, `<circle class="dot" cx="%s" cy="%d" r="3"><title>%s</title></circle>`, coord(x), top, num(m))
	} else {
		sb.WriteString(`<polyline class="line" fill="none" points="`)
		sb.WriteString(points(values, m, float64(left), float64(top), float64(width-left-right), base-top))
		sb.WriteString(`"/>`)
	}
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="%d">%s</text>`, left, height-4, fontSize-2, esc(first))
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="%d" text-anchor="end">%s</text>`, width-right, height-4, fontSize-2, esc(last))
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) //nolint:gosec // built from escaped parts only
}

// Sparkline draws values as a bare line width × height (for table cells); the title says
// what it shows and is the tooltip.
func Sparkline(title string, values []float64, width, height int) template.HTML {
	var sb strings.Builder
	open(&sb, title, width, height)
	m := 0.0
	for _, v := range values {
		m = math.Max(m, clean(v))
	}
	switch len(values) {
	case 0:
	case 1:
		y := float64(height - 1)
		if m > 0 {
			y = 1
		}
		fmt.Fprintf(&sb, `<circle class="dot" cx="%s" cy="%s" r="2"/>`, coord(float64(width)/2), coord(y))
	default:
		sb.WriteString(`<polyline class="line" fill="none" points="`)
		sb.WriteString(points(values, m, 1, 1, float64(width-2), float64(height-2)))
		sb.WriteString(`"/>`)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) //nolint:gosec // built from escaped parts only
}

// points maps values to polyline coordinates in the box (x, y, w, h), m the top value.
func points(values []float64, m, x, y, w, h float64) string {
	var sb strings.Builder
	step := 0.0
	if len(values) > 1 {
		step = w / float64(len(values)-1)
	}
	for i, v := range values {
		py := y + h
		if m > 0 {
			py = y + h - h*clean(v)/m
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(coord(x + float64(i)*step))
		sb.WriteByte(',')
		sb.WriteString(coord(py))
	}
	return sb.String()
}

func empty(title string, width int) template.HTML {
	var sb strings.Builder
	open(&sb, title, width, 24)
	fmt.Fprintf(&sb, `<text x="4" y="16" font-size="%d">no data</text></svg>`, fontSize)
	return template.HTML(sb.String()) //nolint:gosec // built from escaped parts only
}

// CSS is the charts' style, for a page's <style> element.
const CSS = `svg.chart{font-family:sans-serif;overflow:visible}
svg.chart .bar{fill:#3b76b0}
svg.chart .line{stroke:#3b76b0;stroke-width:1.5}
svg.chart .dot{fill:#3b76b0}
svg.chart .axis{stroke:#888;stroke-width:1}
svg.chart text{fill:#222}`
