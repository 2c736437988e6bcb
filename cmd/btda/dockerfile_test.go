package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/internal/config"
)

// dockerInstr is one Dockerfile instruction with continuation lines joined.
type dockerInstr struct {
	line int
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, path string) []dockerInstr {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstr
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, cont := strings.CutSuffix(l, "\\"); cont {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(l)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfile checks the Dockerfile without a container runtime: its structure against
// what btda needs (a cgo-capable builder on the go.mod Go version, a non-root runtime
// stage, the ports of the shipped configuration exposed, the store on a volume, a health
// check on /-/healthy), that .dockerignore keeps what the build needs, and, where they are
// installed, hadolint and dockerfile-utils report nothing.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	dockerfile := filepath.Join(root, "Dockerfile")
	instrs := parseDockerfile(t, dockerfile)
	cfgPath := filepath.Join(root, "examples", "etc", "btda", "btda.yml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("structure", func(t *testing.T) {
		var froms []dockerInstr
		for _, in := range instrs {
			if in.cmd == "FROM" {
				froms = append(froms, in)
			}
		}
		if len(froms) < 2 {
			t.Fatalf("%d FROM instructions, want a build stage and a runtime stage", len(froms))
		}
		// The builder's Go is the one go.mod asks for.
		gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		if goVer == nil || !strings.HasPrefix(froms[0].args, "golang:"+string(goVer[1])+"-") {
			t.Errorf("build stage FROM %s, want golang:%s-… (go.mod)", froms[0].args, goVer[1])
		}
		last := froms[len(froms)-1]
		if strings.Contains(last.args, "golang") {
			t.Errorf("runtime stage FROM %s ships the toolchain", last.args)
		}
		var final []dockerInstr
		for _, in := range instrs {
			if in.line >= last.line {
				final = append(final, in)
			}
		}
		args := func(cmd string) []string {
			var a []string
			for _, in := range final {
				if in.cmd == cmd {
					a = append(a, in.args)
				}
			}
			return a
		}
		if u := args("USER"); len(u) == 0 || slices.Contains([]string{"root", "0", "0:0", "root:root"}, u[len(u)-1]) {
			t.Errorf("runtime stage USER %v: must end as a non-root user", u)
		} else if !regexp.MustCompile(`^\d+(:\d+)?$`).MatchString(u[len(u)-1]) {
			t.Errorf("USER %s: numeric, so that Kubernetes' runAsNonRoot can check it", u[len(u)-1])
		}
		exposed := strings.Fields(strings.Join(args("EXPOSE"), " "))
		port := func(addr string) string {
			_, p, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
			return p
		}
		metricsPort := port(defaultWebAddress)
		for _, want := range []string{metricsPort + "/tcp", port(cfg.Peer.ListenAddress) + "/tcp",
			port(cfg.Peer.ListenAddress) + "/udp", port(cfg.DHT.ListenAddress) + "/udp"} {
			if !slices.Contains(exposed, want) {
				t.Errorf("EXPOSE %v lacks %s", exposed, want)
			}
		}
		if v := strings.Join(args("VOLUME"), " "); !strings.Contains(v, `"`+filepath.Dir(cfg.Storage.Path)+`"`) {
			t.Errorf("VOLUME %s does not hold the store's directory %s", v, filepath.Dir(cfg.Storage.Path))
		}
		if h := strings.Join(args("HEALTHCHECK"), " "); !strings.Contains(h, ":"+metricsPort+"/-/healthy") {
			t.Errorf("HEALTHCHECK %q does not probe /-/healthy on port %s", h, metricsPort)
		}
		if c := strings.Join(args("COPY"), " "); !strings.Contains(c, "examples/etc/btda/btda.yml /etc/btda/btda.yml") {
			t.Errorf("the image does not ship examples/etc/btda/btda.yml as /etc/btda/btda.yml: COPY %s", c)
		}
		var cmd []string
		if c := args("CMD"); len(c) == 0 || json.Unmarshal([]byte(c[len(c)-1]), &cmd) != nil || !slices.Contains(cmd, "--config.file=/etc/btda/btda.yml") {
			t.Errorf("CMD %v does not run with --config.file=/etc/btda/btda.yml (exec form)", c)
		}
		var built bool
		for _, in := range instrs {
			if in.cmd == "RUN" && strings.Contains(in.args, "scripts/build") {
				built = true
			}
		}
		if !built {
			t.Error("the build stage does not use scripts/build: the image's btda would have no version")
		}
	})

	t.Run("dockerignore", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
		if err != nil {
			t.Fatal(err)
		}
		var patterns []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				patterns = append(patterns, strings.TrimPrefix(l, "/"))
			}
		}
		if !slices.Contains(patterns, ".git") {
			t.Error(".dockerignore does not leave out .git")
		}
		for _, need := range []string{"go.mod", "go.sum", "VERSION", "version.go", "scripts/build", "cmd/btda/main.go", "examples/etc/btda/btda.yml"} {
			for _, p := range patterns {
				for dir := need; dir != "."; dir = filepath.Dir(dir) {
					if ok, _ := filepath.Match(p, dir); ok {
						t.Errorf(".dockerignore pattern %q leaves out %s, which the build needs", p, need)
					}
				}
			}
		}
	})

	lint := func(t *testing.T, name string, args ...string) string {
		bin, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("%s not installed: the Dockerfile is NOT linted with it (.ci/run installs it when its registry is reachable)", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, dockerfile)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Run("hadolint", func(t *testing.T) {
		// Exit status 1 on any warning or error; inline `# hadolint ignore=` comments say why.
		if out := lint(t, "hadolint", "--failure-threshold", "style"); out != "" {
			t.Errorf("hadolint:\n%s", out)
		}
	})
	t.Run("dockerfile-utils", func(t *testing.T) {
		// The Dockerfile language service's validator: syntax and instruction arguments.
		if out := lint(t, "dockerfile-utils", "lint", "--json"); out != "[]" {
			t.Errorf("dockerfile-utils lint:\n%s", out)
		}
	})
}
