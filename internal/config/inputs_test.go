package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withinTimeout fails the test instead of hanging the suite when fn blocks.
func withinTimeout(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s blocked for 20 s", what)
	}
}

func TestLoadRefusesNonRegularAndHuge(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	huge := filepath.Join(dir, "huge.yml")
	if err := os.WriteFile(huge, []byte("# "+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.yml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, path, want string }{
		{"fifo", fifo, "named pipe"},
		{"directory", dir, "a directory"},
		{"dev zero", "/dev/zero", "character device"},
		{"huge", huge, "larger than the 1048576 byte limit"},
		{"empty", empty, "configuration file is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skip(err)
			}
			withinTimeout(t, "Load", func() {
				_, err := Load(tc.path)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
					t.Errorf("err = %v, want it to name %s and say %q", err, tc.path, tc.want)
				}
				if tc.name == "empty" && !errors.Is(err, ErrEmpty) {
					t.Errorf("err = %v, want ErrEmpty", err)
				}
			})
		})
	}
}

func TestCheckInputs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	write := func(yml string) *Config {
		t.Helper()
		p := filepath.Join(dir, "btda.yml")
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name, yml string
		want      []string // "E:" error or "N:" note, then a substring of the message
	}{
		{"defaults absent", "{}\n", []string{"N:torrents.directory: " + filepath.Join(dir, "input") + " (the default) does not exist",
			"N:torrents.magnet_file: " + filepath.Join(dir, "input/magnet.txt") + " (the default) does not exist"}},
		{"missing directory", "torrents:\n  directory: /nonexistent\n", []string{"E:torrents.directory: /nonexistent does not exist",
			"N:torrents.magnet_file"}},
		{"directory is a file", "torrents:\n  directory: " + file + "\n  magnet_file: " + file + "\n", []string{"E:torrents.directory: " + file + " is not a directory (it is a regular file)"}},
		{"magnet file missing", "torrents:\n  directory: " + dir + "\n  magnet_file: nope.txt\n", []string{"E:torrents.magnet_file: " + filepath.Join(dir, "nope.txt") + " does not exist"}},
		{"magnet file is a fifo", "torrents:\n  directory: " + dir + "\n  magnet_file: " + fifo + "\n", []string{"E:torrents.magnet_file: " + fifo + " is not a regular file (it is a named pipe (FIFO))"}},
		{"magnet file is a dir", "torrents:\n  directory: " + dir + "\n  magnet_file: " + dir + "\n", []string{"E:torrents.magnet_file: " + dir + " is not a regular file (it is a directory)"}},
		{"all fine", "torrents:\n  directory: " + dir + "\n  magnet_file: " + file + "\n", nil},
		{"disabled", "torrents:\n  directory: \"\"\n  magnet_file: \"\"\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var notes []InputNote
			withinTimeout(t, "CheckInputs", func() { notes = write(tc.yml).CheckInputs() })
			if len(notes) != len(tc.want) {
				t.Fatalf("notes = %v, want %d", notes, len(tc.want))
			}
			for i, w := range tc.want {
				kind, msg, _ := strings.Cut(w, ":")
				if notes[i].Err != (kind == "E") || !strings.Contains(notes[i].Msg, msg) {
					t.Errorf("note %d = %+v, want %s", i, notes[i], w)
				}
			}
		})
	}
}
