package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/btda/btda/internal/svgchart"
)

//go:embed report.html.tmpl
var reportTmpl string

// Chart sizes.
const (
	chartWidth   = 640
	chartHeight  = 160
	speedWidth   = 300
	speedHeight  = 120
	maxCountries = 20 // bars in the by-country chart (the table lists all)
	maxSpeedCont = 8  // continents with a speed chart
)

// ProgressLabels name the progress bins (tenths; the last is complete).
var ProgressLabels = []string{"0–10%", "10–20%", "20–30%", "30–40%", "40–50%", "50–60%", "60–70%", "70–80%", "80–90%", "90–100%", "100%"}

// FuncMap holds the template helpers shared by the report and the status pages.
var FuncMap = template.FuncMap{
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"time":  FormatTime,
	"short": func(s string) string { return s[:min(len(s), 12)] },
}

// FormatTime prints a time in UTC to the second ("" for zero).
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

var tmpl = template.Must(template.New("report").Funcs(FuncMap).Parse(reportTmpl))

// section is one Figures prepared for the template.
type section struct {
	*Figures
	Key                 string // "all" or the info hash: the element ids' suffix
	Live                bool
	ScrapeDownloaded    int64
	HasScrape           bool
	HourStart           time.Time
	Hours               int
	PerHour, Country    template.HTML
	Progress, BySources template.HTML
	Countries           []CountryRow
	SpeedRows           []SpeedRow
	SpeedCharts         []Captioned
	SourceRows          []SourceRow
	SpeedLabels         []string
	ProgressRows        []Bin
}

// Captioned is a chart with a caption.
type Captioned struct {
	Caption string
	Chart   template.HTML
}

// Bin is one labelled count of a histogram table.
type Bin struct {
	Label string
	Count uint64
}

// PerHourChart draws a figures' confirmed downloads per hour up to until.
func PerHourChart(f *Figures, until time.Time, width, height int) (template.HTML, time.Time, int) {
	start, hours := f.PerHour(until)
	vals := make([]float64, len(hours))
	for i, n := range hours {
		vals[i] = float64(n)
	}
	last := start.Add(time.Duration(len(hours)-1) * time.Hour)
	return svgchart.Line("Confirmed downloads per hour", vals, start.Format("2006-01-02 15:00"), last.Format("2006-01-02 15:00"), width, height), start, len(hours)
}

// CountryChart draws the by-country bars (the first maxCountries).
func CountryChart(rows []CountryRow, width int) template.HTML {
	var bars []svgchart.Bar
	for _, r := range rows[:min(len(rows), maxCountries)] {
		bars = append(bars, svgchart.Bar{Label: r.Country, Value: float64(r.Confirmed)})
	}
	return svgchart.HBars("Confirmed downloads by country", bars, width)
}

func newSection(f *Figures, live bool, until time.Time) section {
	s := section{Figures: f, Key: f.Torrent.InfoHash, Live: live, SpeedLabels: SpeedLabels}
	if s.Key == "" {
		s.Key = "all"
	}
	s.ScrapeDownloaded, s.HasScrape = f.Scrape()
	s.PerHour, s.HourStart, s.Hours = PerHourChart(f, until, chartWidth, chartHeight)
	s.Countries = f.ByCountry()
	s.Country = CountryChart(s.Countries, chartWidth)
	var bins []svgchart.Bar
	for i, n := range f.First {
		bins = append(bins, svgchart.Bar{Label: fmt.Sprintf("%d", i*10), Value: float64(n)})
		s.ProgressRows = append(s.ProgressRows, Bin{ProgressLabels[i], n})
	}
	s.Progress = svgchart.Columns("Progress at first contact (% of pieces)", bins, chartWidth, chartHeight)
	s.SpeedRows = f.Speeds()
	for _, r := range s.SpeedRows[:min(len(s.SpeedRows), maxSpeedCont)] {
		var b []svgchart.Bar
		for i, n := range r.Bins {
			b = append(b, svgchart.Bar{Label: SpeedLabels[i], Value: float64(n)})
		}
		s.SpeedCharts = append(s.SpeedCharts, Captioned{r.Continent, svgchart.Columns("Peers by max download speed, "+r.Continent, b, speedWidth+100, speedHeight)})
	}
	s.SourceRows = f.BySource()
	var src []svgchart.Bar
	for _, r := range s.SourceRows {
		src = append(src, svgchart.Bar{Label: r.Source, Value: float64(r.Peers)})
	}
	s.BySources = svgchart.HBars("Peers by source", src, chartWidth)
	return s
}

// WriteHTML writes the report as one self-contained HTML document.
func (r *Report) WriteHTML(w io.Writer) error {
	data := struct {
		*Report
		CSS      template.CSS
		All      section
		Torrents []section
	}{Report: r, CSS: template.CSS(CSS)}
	data.All = newSection(r.All, r.Live, time.Time{})
	if len(r.Torrents) > 1 {
		for _, f := range r.Torrents {
			data.Torrents = append(data.Torrents, newSection(f, r.Live, time.Time{}))
		}
	}
	return tmpl.Execute(w, data)
}

// CSS is the style of the report and of the status pages.
const CSS = `body{font-family:sans-serif;margin:1.5em;color:#222;max-width:72em}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.9em}.note{color:#555;font-size:.9em}.charts{display:flex;flex-wrap:wrap;gap:1em}
nav a{margin-right:1em}figure{margin:0}figcaption{font-size:.9em;font-weight:bold}
` + svgchart.CSS

// WriteText writes the plain-text summary.
func (r *Report) WriteText(w io.Writer) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "btda report from %s, %s, %d torrent(s)\n", r.Source, FormatTime(r.Generated), len(r.Torrents))
	for _, f := range append([]*Figures{r.All}, r.Torrents...) {
		name := f.Torrent.Name
		if f.Torrent.InfoHash != "" {
			name = f.Torrent.InfoHash
			if f.Torrent.Name != "" {
				name += " " + f.Torrent.Name
			}
		}
		fmt.Fprintf(&sb, "\n%s\n", name)
		fmt.Fprintf(&sb, "  confirmed downloads: %d (download log: %d)\n", f.Torrent.Confirmed, f.Logged)
		switch n, ok := f.Scrape(); {
		case ok:
			fmt.Fprintf(&sb, "  trackers' scrape downloaded: %d\n", n)
		case !r.Live:
			fmt.Fprintf(&sb, "  trackers' scrape downloaded: not stored (report from a running btda with --url)\n")
		default:
			fmt.Fprintf(&sb, "  trackers' scrape downloaded: no scrape yet\n")
		}
		fmt.Fprintf(&sb, "  peers: %d stored, %d with a progress reading (first-contact success %.1f%%), %d read at least twice (%.1f%%)\n",
			f.Peers, f.WithPoint, 100*f.FirstContactSuccess(), f.Twice, 100*f.TwiceShare())
		var parts []string
		for _, c := range f.ByCountry()[:min(len(f.byCountry), 5)] {
			parts = append(parts, fmt.Sprintf("%s %d", c.Country, c.Confirmed))
		}
		if len(parts) > 0 {
			fmt.Fprintf(&sb, "  top countries: %s\n", strings.Join(parts, ", "))
		}
		parts = parts[:0]
		for _, s := range f.BySource() {
			parts = append(parts, fmt.Sprintf("%s %d", s.Source, s.Peers))
		}
		fmt.Fprintf(&sb, "  peers by source: %s\n", strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
