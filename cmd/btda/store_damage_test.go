package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
)

// writeTestStore writes a store holding n peers, most of its pages in use.
func writeTestStore(t *testing.T, path string, n int) {
	t.Helper()
	s, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := metainfo.Hash{3}
	err = s.Update(func(tx *store.Tx) error {
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			p := store.Peer{Flags: store.FlagHasPoint, Contacts: uint32(i), NumPieces: 100, Client: "Transmission",
				Country: "DE", Continent: "EU", Network: netip.MustParsePrefix("10.0.0.0/24")}
			if err := tx.PutPeer(s.PeerKey(h, a, 6881), &p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// damagedCopies writes the damaged stores of issue 14 next to good and returns them by name.
func damagedCopies(t *testing.T, good string) map[string]string {
	t.Helper()
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string]func([]byte) []byte{
		"truncated to half":    func(b []byte) []byte { return b[:len(b)/2] },
		"truncated to 3 pages": func(b []byte) []byte { return b[:3*4096] },
		"200 flipped bytes": func(b []byte) []byte {
			r := rand.New(rand.NewPCG(14, 1))
			for range 200 {
				b[r.IntN(len(b))] ^= 0xA5
			}
			return b
		},
		"zero bytes": func([]byte) []byte { return nil },
		"garbage": func(b []byte) []byte {
			r := rand.New(rand.NewPCG(14, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		},
	}
	out := map[string]string{}
	for name, f := range damage {
		p := filepath.Join(filepath.Dir(good), strings.ReplaceAll(name, " ", "_")+".db")
		if err := os.WriteFile(p, f(bytes.Clone(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

// TestDamagedStoreBinary: btda run on a damaged store exits 1 with one error line naming
// the file, the damage and what to do, no panic, and the file untouched; `btda store
// check` says DAMAGED and exits 1.
func TestDamagedStoreBinary(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeTestStore(t, good, 3000)
	for name, db := range damagedCopies(t, good) {
		t.Run(name, func(t *testing.T) {
			before, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			cfgDir := t.TempDir()
			cfg := loopbackConfig(t, cfgDir, "")
			b, _ := os.ReadFile(cfg)
			if err := os.WriteFile(cfg, bytes.Replace(b, []byte(filepath.Join(cfgDir, "btda.db")), []byte(db), 1), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := runBTDA(t, "run", "--config.file", cfg, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("btda panicked:\n%s", stderr)
			}
			var errLines []string
			for _, l := range strings.Split(stderr, "\n") {
				if strings.Contains(l, "level=ERROR") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], db+" is damaged: ") || !strings.Contains(errLines[0], "restore it from a backup") {
				t.Errorf("want one error line naming %s as damaged and saying what to do; stderr:\n%s", db, stderr)
			}
			if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
				t.Error("btda changed the damaged store")
			}

			out, stderr, code := runBTDA(t, "store", "check", db)
			if code != 1 || !strings.Contains(out, "DAMAGED") || strings.Contains(stderr, "panic") {
				t.Errorf("store check: exit %d, want 1 and DAMAGED\n%s%s", code, out, stderr)
			}
			if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
				t.Error("store check changed the damaged store")
			}
		})
	}
}

func TestStoreCheckAndBackupBinary(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeTestStore(t, good, 500)

	out, stderr, code := runBTDA(t, "store", "check", good)
	if code != 0 || !strings.Contains(out, good+": OK") || !strings.Contains(out, "peers") {
		t.Fatalf("check: exit %d\n%s%s", code, out, stderr)
	}
	if _, _, code := runBTDA(t, "store", "check"); code != 2 {
		t.Errorf("check without a file: exit %d, want 2", code)
	}
	if _, _, code := runBTDA(t, "store", "backup", "--url", "http://127.0.0.1:1", "--from", good, filepath.Join(dir, "x.db")); code != 2 {
		t.Errorf("backup with --url and --from: exit %d, want 2", code)
	}
	if _, _, code := runBTDA(t, "store", "backup", "--from", good, good); code != 2 {
		t.Errorf("backup onto the store itself: exit %d, want 2", code)
	}

	copyPath := filepath.Join(dir, "copy.db")
	out, stderr, code = runBTDA(t, "store", "backup", "--from", good, copyPath)
	if code != 0 || !strings.Contains(out, "500 peers") {
		t.Fatalf("backup --from: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := runBTDA(t, "store", "check", copyPath); code != 0 {
		t.Fatalf("check of the copy: exit %d\n%s%s", code, out, stderr)
	}

	// From a store held open by a running btda, through the backup handler.
	s, err := store.Open(good, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, stderr, code := runBTDA(t, "store", "check", good); code != 1 || !strings.Contains(stderr, "locked") {
		t.Errorf("check of an open store: exit %d, want 1 saying it is locked\n%s", code, stderr)
	}
	srv := httptest.NewServer(store.BackupHandler(s))
	defer srv.Close()
	httpCopy := filepath.Join(dir, "http.db")
	var o, e bytes.Buffer
	if code := storeBackup(context.Background(), storeBackupOptions{url: srv.URL, to: httpCopy}, &o, &e); code != 0 || !strings.Contains(o.String(), "500 peers") {
		t.Fatalf("backup --url: exit %d\n%s%s", code, &o, &e)
	}
	if out, stderr, code := runBTDA(t, "store", "check", httpCopy); code != 0 {
		t.Fatalf("check of the HTTP copy: exit %d\n%s%s", code, out, stderr)
	}
}
