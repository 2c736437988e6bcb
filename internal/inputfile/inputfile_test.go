package inputfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	big := filepath.Join(dir, "big")
	fifo := filepath.Join(dir, "fifo")
	os.WriteFile(small, []byte("hello"), 0o600)
	os.WriteFile(big, make([]byte, 2048), 0o600)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string // "" for success
	}{
		{"regular", small, ""},
		{"too large", big, "is 2048 bytes, larger than the 1024 byte limit"},
		{"fifo", fifo, "is not a regular file (it is a named pipe (FIFO))"},
		{"directory", dir, "is not a regular file (it is a directory)"},
		{"device", "/dev/zero", "is not a regular file (it is a character device)"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				data, err = Read(tt.path, 1024)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Read blocked") // a FIFO must never block it
			}
			if tt.want == "" {
				if err != nil || string(data) != "hello" {
					t.Fatalf("Read = %q, %v", data, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("Read error %v, want one naming %s and saying %q", err, tt.path, tt.want)
			}
		})
	}
	var nr *NotRegularError
	if _, err := Read(fifo, 10); !errors.As(err, &nr) {
		t.Errorf("a FIFO's error is %T, want *NotRegularError", err)
	}
}
