package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda"
)

// versionLineRE is the first line of `btda --version` (prometheus/common/version.Print).
var versionLineRE = regexp.MustCompile(`^btda, version (\S*) \(branch: (\S*), revision: (\S*)\)`)

// revisionRE is a full git commit hash, with -dirty when the checkout had changes.
var revisionRE = regexp.MustCompile(`^[0-9a-f]{40}(-dirty)?$`)

// TestVersion builds btda the two documented ways, scripts/build and a plain `go build`
// (what `go install` does from a checkout), and requires `--version` to show the VERSION
// file's version and a real git revision; for scripts/build also the branch, build user and
// date, and the same values in btda_build_info. The test binary itself carries no VCS
// stamp, so only freshly built binaries can tell.
func TestVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds btda twice")
	}
	root := repoRoot(t)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout (or no git): no revision to expect (%v)", err)
	}
	wantRev := strings.TrimSpace(string(head))
	dir := t.TempDir()

	t.Run("scripts/build", func(t *testing.T) {
		bin := filepath.Join(dir, "btda-release")
		goBuild(t, root, nil, filepath.Join(root, "scripts", "build"), "-o", bin)
		v := checkVersion(t, bin, wantRev)
		if v.branch == "" {
			t.Errorf("branch is empty; scripts/build sets it from git")
		}
		out := runVersion(t, bin)
		for _, field := range []string{"build user:", "build date:"} {
			if l := lineWith(out, field); strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), field)) == "" {
				t.Errorf("%s empty in --version:\n%s", field, out)
			}
		}
		// btda_build_info carries the same values.
		m := scrapeOnce(t, bin)
		want := fmt.Sprintf(`btda_build_info{branch=%q,goarch=`, v.branch)
		if l := metricLine(m, "btda_build_info{"); !strings.HasPrefix(l, want) ||
			!strings.Contains(l, fmt.Sprintf(`revision=%q`, v.revision)) || !strings.Contains(l, fmt.Sprintf(`version=%q`, btda.Version())) {
			t.Errorf("btda_build_info = %q, want branch %q, revision %q, version %q", l, v.branch, v.revision, btda.Version())
		}
	})

	t.Run("go build", func(t *testing.T) {
		// Go stamps VCS information only when the module sits in a git checkout whose .git
		// is a directory: a `git worktree` (.git is a file) gets none.
		if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
			t.Skipf("%s/.git is not a directory (a git worktree?): Go embeds no VCS information there, so a plain go build cannot know its revision; scripts/build still does", root)
		}
		bin := filepath.Join(dir, "btda-plain")
		// Go's default -buildvcs=auto, whatever GOFLAGS this machine's go env sets.
		goBuild(t, filepath.Join(root, "cmd", "btda"), []string{"GOFLAGS=-buildvcs=auto"}, "go", "build", "-o", bin, ".")
		checkVersion(t, bin, wantRev)
	})
}

type versionInfo struct{ version, branch, revision string }

// checkVersion requires bin's --version to name the VERSION file's version and wantRev.
func checkVersion(t *testing.T, bin, wantRev string) versionInfo {
	t.Helper()
	out := runVersion(t, bin)
	m := versionLineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--version printed no version line:\n%s", out)
	}
	v := versionInfo{version: m[1], branch: m[2], revision: m[3]}
	if v.version != btda.Version() {
		t.Errorf("version %q, want %q (VERSION)", v.version, btda.Version())
	}
	if !revisionRE.MatchString(v.revision) || !strings.HasPrefix(v.revision, wantRev) {
		t.Errorf("revision %q, want %s (HEAD), with -dirty if the checkout has changes", v.revision, wantRev)
	}
	t.Logf("%s", strings.SplitN(out, "\n", 2)[0])
	return v
}

func runVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	return string(out)
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// goBuild runs a build command in dir with extra environment, failing the test on error.
func goBuild(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// scrapeOnce runs bin on a loopback-only configuration and returns its first /metrics.
func scrapeOnce(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := loopbackConfig(t, dir, "")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := client.Get(url); err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b.String()
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("btda exited early: %v\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /metrics within 30 s")
		}
	}
}
