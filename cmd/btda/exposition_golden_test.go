package main

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/config"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/exposition.golden")

// volatileValue lists families whose values depend on the machine or the clock; the golden
// file keeps their series but not their values.
var volatileValue = regexp.MustCompile(`^(btda_store_size_bytes|btda_config_last_reload_success_timestamp_seconds)[ {]`)

// TestDaemonExpositionGolden builds the whole registry as `btda run` does (every part of
// newServices, the reloader's gauges, one torrent and one pending magnet loaded, trackers,
// the DHT and reverse DNS on) and compares every btda_* family, with its help, type and
// series, to testdata/exposition.golden, then lints it. Nothing runs, so nothing is sent.
func TestDaemonExpositionGolden(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`peer:
  listen_address: "127.0.0.1:0"
dht:
  listen_address: "127.0.0.1:0"
  bootstrap_nodes: []
storage:
  path: %s
geoip:
  reverse_dns: true
`, filepath.Join(dir, "btda.db"))))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(versioncollector.NewCollector("btda"), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rl := newReloader(runOptions{}, cfg, reg, logger)
	d, err := newServices(cfg, daemon.Shard{}, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rl.daemon = d
	sintel := filepath.Join(repoRoot(t), "examples", "torrents", "sintel.torrent")
	if _, rep, err := d.Load(t.Context(), discovery.WatchSources{Args: []string{sintel,
		"magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=Big+Buck+Bunny&tr=udp%3A%2F%2F127.0.0.1%3A9%2Fannounce"}}); err != nil || len(rep.Failed) > 0 {
		t.Fatalf("load: %v %v", err, rep.Failed)
	}
	rl.ok.Set(1)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "btda_") || mf.GetName() == "btda_build_info" {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	var got strings.Builder
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if volatileValue.MatchString(line) {
			line = line[:strings.LastIndexByte(strings.TrimSuffix(line, "\n"), ' ')] + " X\n"
		}
		got.WriteString(line)
	}
	problems, err := promlint.New(strings.NewReader(buf.String())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	golden := filepath.Join("testdata", "exposition.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestDaemonExpositionGolden ./cmd/btda/ -args -update writes it)", err)
	}
	if got.String() != string(want) {
		gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("exposition differs from %s at line %d:\n got: %s\nwant: %s\n(rerun with -args -update if the change is intended, and update the README's metrics tables)", golden, i+1, g, w)
			}
		}
	}
}
