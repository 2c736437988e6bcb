package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The acceptance tests run the real binary, built once for the package.
var btdaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "btda-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	btdaBin = filepath.Join(dir, "btda")
	build := exec.Command("go", "build", "-race", "-o", btdaBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building btda:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func runBTDA(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, btdaBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("btda %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// TestInspectManifest checks `btda inspect` against MANIFEST.tsv for every test torrent.
func TestInspectManifest(t *testing.T) {
	root := filepath.Join(repoRoot(t), "testdata", "torrents")
	f, err := os.Open(filepath.Join(root, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type row struct{ file, expect, v1, v2, pieces, pieceLength string }
	var rows []row
	var paths []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) != 6 {
			t.Fatalf("bad manifest line %q", line)
		}
		rows = append(rows, row{c[0], c[1], c[2], c[3], c[4], c[5]})
		paths = append(paths, filepath.Join(root, c[0]))
	}
	out, stderr, code := runBTDA(t, append([]string{"inspect"}, paths...)...)
	if code != 1 { // the manifest has reject rows
		t.Errorf("exit status %d, want 1 (some inputs are invalid); stderr: %s", code, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for _, r := range rows {
		var got struct {
			Input       string `json:"input"`
			InfohashV1  string `json:"infohash_v1"`
			InfohashV2  string `json:"infohash_v2"`
			Pieces      int    `json:"pieces"`
			PieceLength int64  `json:"piece_length"`
			Magnet      string `json:"magnet"`
			Error       string `json:"error"`
		}
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: decoding inspect output: %v", r.file, err)
		}
		if !strings.HasSuffix(got.Input, r.file) {
			t.Fatalf("output out of order: got %s, want %s", got.Input, r.file)
		}
		switch r.expect {
		case "load":
			if got.Error != "" {
				t.Errorf("%s: error %q, want load", r.file, got.Error)
				continue
			}
			want := func(s string) string {
				if s == "-" {
					return ""
				}
				return s
			}
			if got.InfohashV1 != want(r.v1) || got.InfohashV2 != want(r.v2) || fmt.Sprint(got.Pieces) != r.pieces || fmt.Sprint(got.PieceLength) != r.pieceLength {
				t.Errorf("%s: got v1=%s v2=%s pieces=%d piece_length=%d, want %s %s %s %s",
					r.file, got.InfohashV1, got.InfohashV2, got.Pieces, got.PieceLength, r.v1, r.v2, r.pieces, r.pieceLength)
			}
			if !strings.HasPrefix(got.Magnet, "magnet:?xt=urn:bt") {
				t.Errorf("%s: magnet %q", r.file, got.Magnet)
			}
		case "reject":
			if got.Error == "" {
				t.Errorf("%s: loaded, want an error", r.file)
			}
		}
	}
}

func TestInspectMagnet(t *testing.T) {
	// 32-character base32 form of 08ada5a7a6183aae1e09d831df6748d566095a10 (Sintel).
	out, stderr, code := runBTDA(t, "inspect", "magnet:?xt=urn:btih:BCW2LJ5GDA5K4HQJ3AY56Z2I2VTASWQQ&dn=x&tr=udp://127.0.0.1:1/announce")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		InfohashV1 string     `json:"infohash_v1"`
		Name       string     `json:"name"`
		Trackers   [][]string `json:"trackers"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.InfohashV1 != "08ada5a7a6183aae1e09d831df6748d566095a10" || got.Name != "x" ||
		len(got.Trackers) != 1 || got.Trackers[0][0] != "udp://127.0.0.1:1/announce" {
		t.Fatalf("inspect magnet = %s", out)
	}

	_, _, code = runBTDA(t, "inspect", "magnet:?xt=urn:btih:nothex")
	if code != 1 {
		t.Fatalf("bad magnet: exit %d, want 1", code)
	}
}

func TestConfigCheck(t *testing.T) {
	out, stderr, code := runBTDA(t, "--config.file", filepath.Join(repoRoot(t), "examples", "btda.yml"), "--config.check")
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("example config: exit %d, %s %s", code, out, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("probe:\n  quiet_windw: 6s\n"), 0o600)
	_, stderr, code = runBTDA(t, "--config.file", bad, "--config.check")
	if code != 1 || !strings.Contains(stderr, "quiet_windw") || !strings.Contains(stderr, "line 2") {
		t.Fatalf("bad config: exit %d, stderr %s", code, stderr)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loopbackConfig writes a configuration that keeps every socket on loopback: no public DHT
// routers, no trackers (the example torrents name public ones).
func loopbackConfig(t *testing.T, dir string, extra string) string {
	t.Helper()
	root := repoRoot(t)
	cfg := fmt.Sprintf(`torrents:
  directory: %s
  magnet_file: %s
peer:
  listen_address: "127.0.0.1:0"
trackers:
  enabled: false
dht:
  enabled: true
  listen_address: "127.0.0.1:0"
  bootstrap_nodes: []
storage:
  path: %s
%s`, filepath.Join(dir, "torrents"), filepath.Join(root, "examples", "magnets.txt"), filepath.Join(dir, "btda.db"), extra)
	path := filepath.Join(dir, "btda.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "torrents"), 0o700)
	return path
}

type btdaProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedWriter
	done   chan error
}

func startDaemon(t *testing.T, cfgPath string, args ...string) *btdaProc {
	t.Helper()
	return startDaemonOn(t, cfgPath, args...)
}

func startDaemonOn(t *testing.T, cfgPath string, args ...string) *btdaProc {
	t.Helper()
	port := freePort(t)
	d := &btdaProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	d.cmd = exec.Command(btdaBin, append([]string{"run", "--config.file", cfgPath, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("btda stderr:\n%s", d.stderr)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(d.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("btda exited early: %v\n%s", err, d.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("btda not ready within 30 s\n%s", d.stderr)
	return nil
}

func (d *btdaProc) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s\n%s", resp.Status, b)
	}
	return string(b)
}

// stop sends sig and requires a clean exit within limit.
func (d *btdaProc) stop(t *testing.T, sig os.Signal, limit time.Duration) {
	t.Helper()
	start := time.Now()
	d.cmd.Process.Signal(sig)
	select {
	case err := <-d.done:
		d.done <- err // for Cleanup
		if err != nil {
			t.Fatalf("btda exited with %v after %v", err, time.Since(start))
		}
	case <-time.After(limit):
		t.Fatalf("btda still running %v after %v", limit, sig)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func metricLine(exposition, prefix string) string {
	for _, l := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestRunServesMetricsAndStops(t *testing.T) {
	dir := t.TempDir()
	cfg := loopbackConfig(t, dir, "")
	src, _ := os.ReadFile(filepath.Join(repoRoot(t), "examples", "torrents", "sintel.torrent"))
	os.WriteFile(filepath.Join(dir, "torrents", "sintel.torrent"), src, 0o600)

	d := startDaemon(t, cfg)
	m := d.scrape(t)
	for _, want := range []string{
		"btda_build_info{",
		"go_goroutines ",
		"process_open_fds ",
		`btda_torrents{kind="v1",state="active"} 1`,
		`btda_torrents{kind="magnet",state="pending_metadata"} 1`,
		"btda_config_last_reload_successful 1",
		"btda_config_last_reload_success_timestamp_seconds ",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(m)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: exposition lint left to the promlint unit tests")
	}
	for _, p := range []string{"/-/healthy", "/"} {
		resp, err := http.Get(d.url + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", p, err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	d.stop(t, syscall.SIGTERM, 5*time.Second)
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg := loopbackConfig(t, dir, "")
	d := startDaemon(t, cfg)
	if l := metricLine(d.scrape(t), `btda_torrents{kind="v1",state="active"}`); l != `btda_torrents{kind="v1",state="active"} 0` {
		t.Fatalf("before: %q", l)
	}
	src, _ := os.ReadFile(filepath.Join(repoRoot(t), "examples", "torrents", "sintel.torrent"))
	os.WriteFile(filepath.Join(dir, "torrents", "sintel.torrent"), src, 0o600)

	// SIGHUP picks up the new torrent.
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool {
		return metricLine(d.scrape(t), `btda_torrents{kind="v1",state="active"}`) == `btda_torrents{kind="v1",state="active"} 1`
	})

	// POST /-/reload picks up its removal.
	os.Remove(filepath.Join(dir, "torrents", "sintel.torrent"))
	resp, err := http.Post(d.url+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload: %v %v", err, resp)
	}
	resp.Body.Close()
	if l := metricLine(d.scrape(t), `btda_torrents{kind="v1",state="active"}`); l != `btda_torrents{kind="v1",state="active"} 0` {
		t.Fatalf("after removal: %q", l)
	}

	// A broken file keeps the running configuration and says so.
	os.WriteFile(cfg, []byte("probe:\n  nonsense: 1\n"), 0o600)
	resp, err = http.Post(d.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), "nonsense") {
		t.Fatalf("bad reload: %s %s", resp.Status, body)
	}
	if l := metricLine(d.scrape(t), "btda_config_last_reload_successful"); l != "btda_config_last_reload_successful 0" {
		t.Fatalf("reload failure not exported: %q", l)
	}
	d.stop(t, syscall.SIGINT, 5*time.Second)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met within 10 s")
}
