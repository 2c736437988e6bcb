package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestAPIAuth serves the API with basic auth from --web.config.file: requests without
// credentials or with a wrong password are refused, the right ones get the data, and the
// write endpoints answer 403 without --web.enable-admin-api.
func TestAPIAuth(t *testing.T) {
	dir := t.TempDir()
	cfg := loopbackConfig(t, dir, "")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, fmt.Appendf(nil, "basic_auth_users:\n  alice: %s\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var stderr bytes.Buffer
	cmd := exec.Command(btdaBin, "run", "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port), "--web.config.file", webCfg)
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	get := func(method, path, user, pass string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"magnet":"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"}`))
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("GET", "/-/ready", "alice", "s3cret"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("btda not ready\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cases := []struct {
		method, path, user, pass string
		code                     int
		body                     string
	}{
		{"GET", "/api/v1/torrents", "", "", 401, "Unauthorized"},
		{"GET", "/api/v1/peers", "alice", "wrong", 401, "Unauthorized"},
		{"GET", "/api/v1/torrents", "alice", "s3cret", 200, `"status":"success"`},
		{"GET", "/api/v1/sources", "alice", "s3cret", 200, `"trackers":[]`},
		{"POST", "/api/v1/torrents", "", "", 401, "Unauthorized"},
		{"POST", "/api/v1/torrents", "alice", "s3cret", 403, "--web.enable-admin-api"},
		{"DELETE", "/api/v1/torrents/0123456789abcdef0123456789abcdef01234567", "alice", "s3cret", 403, "admin APIs disabled"},
	}
	for _, c := range cases {
		code, body := get(c.method, c.path, c.user, c.pass)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s %s as %q: %d %q, want %d with %q", c.method, c.path, c.user, code, clipBody(body), c.code, c.body)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, apiDirName)); !os.IsNotExist(err) {
		t.Errorf("a refused write created the API folder: %v", err)
	}
}
