package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNonRegularInputs: a FIFO (or /dev/zero) where btda expects a .torrent, magnet or
// configuration file gives a prompt exit 1 naming it, never a hang (runBTDA kills btda
// after a minute, which fails the test).
func TestNonRegularInputs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "x.torrent")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cfgDir := t.TempDir()
	cfg := loopbackConfig(t, cfgDir, "")
	b, _ := os.ReadFile(cfg)
	magnetFIFO := filepath.Join(cfgDir, "torrents", "magnets.txt")
	if err := syscall.Mkfifo(magnetFIFO, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoCfg := filepath.Join(cfgDir, "fifo-magnets.yml")
	if err := os.WriteFile(fifoCfg, []byte(strings.Replace(string(b), "magnet_file: "+filepath.Join(repoRoot(t), "examples", "magnets.txt"), "magnet_file: "+magnetFIFO, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"inspect", []string{"inspect", fifo}, "not a regular file"},
		{"announce", []string{"announce", "--config.file", cfg, "--torrent", fifo, "--timeout", "5s"}, "not a regular file"},
		{"config file", []string{"--config.file", fifo, "--config.check"}, "named pipe"},
		{"config /dev/zero", []string{"--config.file", "/dev/zero", "--config.check"}, "character device"},
		{"magnet file", []string{"--config.file", fifoCfg, "--config.check"}, "torrents.magnet_file: " + magnetFIFO + " is not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runBTDA(t, tc.args...)
			if code != 1 || !strings.Contains(out+stderr, tc.want) {
				t.Fatalf("exit %d, want 1 saying %q\nstdout: %s\nstderr: %s", code, tc.want, out, stderr)
			}
		})
	}
}

// TestMissingInputsConfigCheck: --config.check refuses an explicitly configured
// torrents.directory that is missing or not a directory, and only notes absent defaults.
func TestMissingInputsConfigCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		name, yml, want string
		code            int
	}{
		{"nonexistent", "torrents:\n  directory: /nonexistent\n  magnet_file: \"\"\n", "torrents.directory: /nonexistent does not exist", 1},
		{"regular file", "torrents:\n  directory: " + file + "\n  magnet_file: \"\"\n", "is not a directory", 1},
		{"defaults absent", "storage:\n  path: x.db\n", "(the default) does not exist", 0},
		{"empty", "\n", "configuration file is empty", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "btda.yml")
			os.WriteFile(p, []byte(tc.yml), 0o600)
			out, stderr, code := runBTDA(t, "--config.file", p, "--config.check")
			if code != tc.code || !strings.Contains(out+stderr, tc.want) {
				t.Fatalf("exit %d, want %d saying %q\nstdout: %s\nstderr: %s", code, tc.code, tc.want, out, stderr)
			}
		})
	}
}
