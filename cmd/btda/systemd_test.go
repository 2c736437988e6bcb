package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/internal/config"
)

// unitDirectives reads a systemd unit file into key → values (in order), ignoring comments.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := make(map[string][]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", path, l)
		}
		d[k] = append(d[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSystemdUnits checks examples/btda.service and the template examples/btda@.service:
// `systemd-analyze verify` accepts them (run where systemd-analyze exists, with ExecStart
// pointed at the test's btda binary, since verify requires it to exist), each configuration
// they name is valid, LimitNOFILE covers the configured sessions, and the template's
// instances get distinct ports and stores.
func TestSystemdUnits(t *testing.T) {
	root := repoRoot(t)
	etc := filepath.Join(root, "examples", "etc", "btda")
	units := map[string]string{
		"btda.service":  filepath.Join(root, "examples", "btda.service"),
		"btda@.service": filepath.Join(root, "examples", "btda@.service"),
	}
	// instances of the template that examples/etc/btda configures.
	instances := []string{"0-2", "1-2"}

	t.Run("directives", func(t *testing.T) {
		for name, path := range units {
			d := unitDirectives(t, path)
			for _, key := range []string{"Type", "ExecStart", "ExecReload", "StateDirectory", "WorkingDirectory",
				"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths",
				"RestrictAddressFamilies", "LimitNOFILE"} {
				if len(d[key]) == 0 {
					t.Errorf("%s: no %s=", name, key)
				}
			}
			// btda never calls sd_notify: Type=notify would time out at every start.
			if got := d["Type"]; len(got) != 1 || got[0] != "simple" {
				t.Errorf("%s: Type=%v, want simple", name, got)
			}
			if got := d["ExecReload"]; len(got) != 1 || got[0] != "/bin/kill -HUP $MAINPID" {
				t.Errorf("%s: ExecReload=%v, want SIGHUP to the main process", name, got)
			}
			if got := d["ProtectSystem"]; len(got) != 1 || got[0] != "strict" {
				t.Errorf("%s: ProtectSystem=%v, want strict", name, got)
			}
		}
	})

	t.Run("configurations", func(t *testing.T) {
		// check validates cfgPath, read by unit (an instance of unitFile).
		check := func(unitFile, unit, cfgPath string) *config.Config {
			t.Helper()
			configCheckElsewhere(t, unit, cfgPath)
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			d := unitDirectives(t, units[unitFile])
			nofile, err := strconv.Atoi(d["LimitNOFILE"][0])
			if err != nil {
				t.Fatalf("%s: LimitNOFILE=%s: %v", unit, d["LimitNOFILE"][0], err)
			}
			// Every session and incoming connection is a descriptor; 1000 more for
			// trackers, the DHT, the store, GeoIP and /metrics.
			if need := cfg.Probe.Concurrency + cfg.Peer.IncomingTotal + 1000; nofile < need {
				t.Errorf("%s: LimitNOFILE=%d < probe.concurrency %d + peer.incoming_total %d + 1000", unit, nofile, cfg.Probe.Concurrency, cfg.Peer.IncomingTotal)
			}
			if !strings.HasPrefix(cfg.Storage.Path, "/var/lib/btda/") {
				t.Errorf("%s: storage.path %s is outside the state directory /var/lib/btda", unit, cfg.Storage.Path)
			}
			return cfg
		}
		check("btda.service", "btda.service", filepath.Join(etc, "btda.yml"))
		if !strings.Contains(unitDirectives(t, units["btda.service"])["ExecStart"][0], "--config.file=/etc/btda/btda.yml") {
			t.Errorf("btda.service does not read /etc/btda/btda.yml")
		}
		tmpl := unitDirectives(t, units["btda@.service"])["ExecStart"][0]
		for _, want := range []string{"--config.file=/etc/btda/%i.yml", "--shard=%I", "--web.listen-address=${WEB_LISTEN_ADDRESS}"} {
			if !strings.Contains(tmpl, want) {
				t.Errorf("btda@.service: ExecStart lacks %s: %s", want, tmpl)
			}
		}
		ports := make(map[string]string)
		for _, inst := range instances {
			unit := "btda@" + inst + ".service"
			cfg := check("btda@.service", unit, filepath.Join(etc, inst+".yml"))
			if dir := filepath.Dir(cfg.Storage.Path); dir != "/var/lib/btda/"+inst {
				t.Errorf("%s: store in %s, want its own state directory /var/lib/btda/%s", unit, dir, inst)
			}
			env := unitDirectivesFromEnv(t, filepath.Join(etc, inst+".env"))
			for _, a := range []struct{ what, addr string }{
				{"peer.listen_address", cfg.Peer.ListenAddress},
				{"dht.listen_address", cfg.DHT.ListenAddress},
				{"WEB_LISTEN_ADDRESS", env["WEB_LISTEN_ADDRESS"]},
			} {
				_, port, err := net.SplitHostPort(a.addr)
				if err != nil {
					t.Errorf("%s: %s %q: %v", unit, a.what, a.addr, err)
					continue
				}
				// TCP and UDP are separate spaces, but one number for one use is clearer.
				if prev, dup := ports[port]; dup {
					t.Errorf("%s: %s port %s is also %s", unit, a.what, port, prev)
				}
				ports[port] = unit + " " + a.what
			}
			// The instance name is the shard escaped as systemd escapes it; %I undoes that.
			if esc, err := exec.LookPath("systemd-escape"); err == nil {
				out, err := exec.Command(esc, "--unescape", inst).Output()
				if err != nil {
					t.Fatalf("systemd-escape --unescape %s: %v", inst, err)
				}
				if shard := strings.TrimSpace(string(out)); !regexp.MustCompile(`^\d+/\d+$`).MatchString(shard) {
					t.Errorf("instance %s unescapes to %q, not a k/n shard", inst, shard)
				}
			}
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed (Debian package systemd): the units are NOT verified")
		}
		// verify requires ExecStart's binary to exist: point the units at this test's btda.
		dir := t.TempDir()
		for name, path := range units {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "/usr/local/bin/btda ") {
				t.Fatalf("%s: ExecStart does not run /usr/local/bin/btda", name)
			}
			unit := strings.ReplaceAll(string(b), "/usr/local/bin/btda ", btdaBin+" ")
			if err := os.WriteFile(filepath.Join(dir, name), []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"verify", "--man=no", filepath.Join(dir, "btda.service")}
		for _, inst := range instances {
			args = append(args, filepath.Join(dir, "btda@"+inst+".service"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, sa, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		// Unknown keys and bad values are only warnings (exit status 0): any line about
		// these units fails the test.
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, dir) || strings.Contains(l, "btda") {
				t.Errorf("systemd-analyze verify: %s", l)
			}
		}
		if len(out) > 0 {
			t.Logf("systemd-analyze verify output:\n%s", out)
		}
	})
}

// unitDirectivesFromEnv reads a systemd EnvironmentFile (KEY=value lines, # comments).
func unitDirectivesFromEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for k, v := range unitDirectives(t, path) {
		env[k] = v[len(v)-1]
	}
	return env
}

// configCheckElsewhere runs `btda --config.check` on an example configuration written for
// another machine: its watch-list inputs (/etc/btda/...) need not exist here, so the check
// may only fail because they are missing.
func configCheckElsewhere(t *testing.T, what, cfgPath string) {
	t.Helper()
	_, stderr, code := runBTDA(t, "--config.file", cfgPath, "--config.check")
	if code == 0 {
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		input := strings.Contains(line, "torrents.directory: /") || strings.Contains(line, "torrents.magnet_file: /")
		if !input || !strings.HasSuffix(line, "does not exist") {
			t.Fatalf("%s: %s: --config.check: %s", what, cfgPath, stderr)
		}
	}
}
