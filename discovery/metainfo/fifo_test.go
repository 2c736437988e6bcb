package metainfo

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadersRefuseNonRegular: a FIFO, a directory or an oversized file given as a
// .torrent or magnet file is refused promptly with an error naming it; a FIFO must not
// block the loader waiting for a writer.
func TestLoadersRefuseNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "x.torrent")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	huge := filepath.Join(dir, "huge.torrent")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxTorrentFileSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	loaders := map[string]func(string) error{
		"Load":        func(p string) error { _, err := Load(p); return err },
		"LoadMagnets": func(p string) error { _, _, err := LoadMagnets(p); return err },
	}
	cases := []struct{ name, path, want string }{
		{"fifo", fifo, "is not a regular file (it is a named pipe (FIFO))"},
		{"directory", dir, "is not a regular file (it is a directory)"},
		{"dev null", "/dev/null", "is not a regular file (it is a character device)"},
	}
	for lname, load := range loaders {
		for _, tc := range cases {
			t.Run(lname+"/"+tc.name, func(t *testing.T) {
				done := make(chan error, 1)
				go func() { done <- load(tc.path) }()
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("err = %v, want it to name %s and say %q", err, tc.path, tc.want)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the loader blocked on a non-regular file")
				}
			})
		}
	}
	if _, err := Load(huge); err == nil || !strings.Contains(err.Error(), "larger than the") {
		t.Fatalf("oversized torrent: err = %v", err)
	}
}
