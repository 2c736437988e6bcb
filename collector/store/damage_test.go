package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/btda/btda/discovery/metainfo"
)

// writeFilledStore writes a store of n peers (with hosts, downloads and aggregates) to
// path, so that its pages fill most of the file.
func writeFilledStore(t testing.TB, path string, n int) {
	t.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := metainfo.Hash{9}
	err = s.Update(func(tx *Tx) error {
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			p := samplePeer()
			p.Contacts = uint32(i)
			if err := tx.PutPeer(s.PeerKey(h, a, 6881), &p); err != nil {
				return err
			}
			if err := tx.PutHost(s.HostKey(h, a), Host{KnownCounted: 1}); err != nil {
				return err
			}
			if i%4 == 0 {
				d := Download{At: time.Unix(1700000000+int64(i), 0).UTC(), Peer: s.PeerKey(h, a, 6881), Torrent: h,
					Country: "DE", Continent: "EU", Network: netip.MustParsePrefix("10.0.0.0/24")}
				if err := tx.LogDownload(&d); err != nil {
					return err
				}
			}
		}
		d := NewAggregates()
		d.Torrents[h] = TorrentAgg{Peers: uint64(n), Confirmed: uint64(n / 4)}
		d.Countries["DE"] = CountryAgg{Bytes: 1, Seconds: 1}
		d.Networks["AS1 Example"] = NetworkAgg{Peers: 1}
		return tx.AddAggregates(d)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// damagedStores writes a healthy store and the damaged copies of it that the issue's
// attacker made, and returns their paths by name.
func damagedStores(t testing.TB, dir string) map[string]string {
	t.Helper()
	good := filepath.Join(dir, "good.db")
	writeFilledStore(t, good, 3000)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	damage := map[string]func([]byte) []byte{
		"truncated to half":    func(b []byte) []byte { return b[:len(b)/2] },
		"truncated to 3 pages": func(b []byte) []byte { return b[:3*pageSize] },
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
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".db")
		if err := os.WriteFile(p, f(bytes.Clone(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestOpenDamaged opens real damaged files: each must give one *DamagedError naming the
// file, the damage and what to do, and leave the file as it was.
func TestOpenDamaged(t *testing.T) {
	for name, p := range damagedStores(t, t.TempDir()) {
		t.Run(name, func(t *testing.T) {
			before := fileSum(t, p)
			s, err := Open(p, Options{})
			if err == nil {
				s.Close()
				t.Fatal("opened a damaged store")
			}
			var de *DamagedError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want a *DamagedError", err, err)
			}
			msg := err.Error()
			for _, want := range []string{"store " + p + " is damaged: ", "restore it from a backup", "move it aside"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			if fileSum(t, p) != before {
				t.Error("Open changed the damaged file")
			}
			if _, err := Check(p, Options{}); !errors.As(err, &de) {
				t.Errorf("Check: err = %v, want a *DamagedError", err)
			}
			t.Logf("%s", msg)
		})
	}
}

// TestOpenTruncatedEverywhere cuts a store at every page boundary: Open either succeeds
// (only unused pages were cut) or refuses, and never panics.
func TestOpenTruncatedEverywhere(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeFilledStore(t, good, 300)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "cut.db")
	for n := 0; n <= len(orig); n += 4096 {
		if err := os.WriteFile(p, orig[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Options{})
		if err == nil {
			if err := s.View(func(tx *Tx) error {
				return tx.ForEachPeer(func(PeerKey, *Peer) error { return nil })
			}); err != nil {
				t.Errorf("cut at %d: opened, but reading failed: %v", n, err)
			}
			s.Close()
			continue
		}
		var de *DamagedError
		if !errors.As(err, &de) {
			t.Errorf("cut at %d: err = %v, want a *DamagedError", n, err)
		}
	}
}

// TestOpenFlippedEverywhere flips one byte in every page of a store, one page at a time.
func TestOpenFlippedEverywhere(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeFilledStore(t, good, 300)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "flip.db")
	r := rand.New(rand.NewPCG(14, 3))
	for off := 0; off < len(orig); off += 4096 {
		for _, at := range []int{off + 8, off + 10, off + 16 + r.IntN(4096-16)} { // flags, count, body
			b := bytes.Clone(orig)
			b[at] ^= 0xFF
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(p, Options{})
			if err == nil {
				s.Close()
				continue
			}
			// Always the verifier's error: a panic inside bbolt (even one recover() catches)
			// leaves its file lock held, and every later Open of the file would time out.
			var de *DamagedError
			if !errors.As(err, &de) {
				t.Errorf("flip at %d: err = %v, want a *DamagedError", at, err)
			}
		}
	}
}

// TestOpenBranchKeyAboveChild raises a branch page's key above the first key of the page it
// points to. bbolt's free-page scan finds that in a goroutine of its own and panics (a data
// race and a held file lock, no clean error); the verifier must find it first.
func TestOpenBranchKeyAboveChild(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeFilledStore(t, good, 300)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	for off := 2 * 4096; off+4096 <= len(b) && !done; off += 4096 {
		if native.Uint16(b[off+8:]) != flagBranch || native.Uint16(b[off+10:]) < 2 {
			continue
		}
		e := off + pageHeaderSize + elemSize // element 1
		pos, ksize := int(native.Uint32(b[e:])), int(native.Uint32(b[e+4:]))
		if last := e + pos + ksize - 1; ksize > 0 && b[last] < 0xFF {
			b[last]++
			done = true
		}
	}
	if !done {
		t.Fatal("the filled store has no branch page with two keys; the test proves nothing")
	}
	p := filepath.Join(dir, "branch.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(p, Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a store whose branch key is above its child's first key")
	}
	var de *DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "below its parent's key") {
		t.Fatalf("err = %v, want a *DamagedError naming the key order", err)
	}
}

func TestOpenRefusesNonRegular(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a directory")
	}
	if !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckAndBackup(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "good.db")
	writeFilledStore(t, p, 500)
	rep, err := Check(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records["peers"] != 500 || rep.Records["hosts"] != 500 || rep.Records["downloads"] != 125 {
		t.Fatalf("records = %v", rep.Records)
	}

	// Offline backup.
	var buf bytes.Buffer
	if _, err := Backup(p, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := Check(copyPath, Options{}); err != nil || rep.Records["peers"] != 500 {
		t.Fatalf("offline copy: %v, %v", rep, err)
	}

	// Backup of an open store, through HTTP, while it is being written.
	s, err := Open(p, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Check(p, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check of an open store: %v, want ErrLocked", err)
	}
	if _, err := Backup(p, io.Discard, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Backup of an open store: %v, want ErrLocked", err)
	}
	srv := httptest.NewServer(BackupHandler(s))
	defer srv.Close()
	if err := s.Update(func(tx *Tx) error {
		p := samplePeer()
		return tx.PutPeer(PeerKey{0xff}, &p)
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || int64(len(body)) != resp.ContentLength {
		t.Fatalf("GET: %v, status %d, %d bytes of %d", err, resp.StatusCode, len(body), resp.ContentLength)
	}
	httpCopy := filepath.Join(dir, "http.db")
	if err := os.WriteFile(httpCopy, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := Check(httpCopy, Options{}); err != nil || rep.Records["peers"] != 501 {
		t.Fatalf("HTTP copy: %+v, %v", rep, err)
	}
	if resp, err := http.Post(srv.URL, "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %v %v", resp, err)
	}
}

// TestRecordDamage: a peer record that does not decode, in an intact bbolt file, does not
// stop Open (the collector skips and counts such records); Check names it, Verify and
// Backup, which look at the structure only, pass.
func TestRecordDamage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.db")
	writeFilledStore(t, p, 10)
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPeers).Put(bytes.Repeat([]byte{0xee}, 16), []byte{recordVersion, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(p, Options{})
	if err != nil {
		t.Fatalf("Open refused a store with one bad record: %v", err)
	}
	s.Close()
	_, err = Check(p, Options{})
	var de *DamagedError
	if !errors.As(err, &de) || de.Total != 1 || !strings.Contains(de.Problems[0], "peer eeeeeeee") {
		t.Fatalf("Check: %v", err)
	}
	if rep, err := Verify(p, Options{}); err != nil || rep.Records["peers"] != 11 {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
	if _, err := Backup(p, io.Discard, Options{}); err != nil {
		t.Fatalf("Backup: %v", err)
	}
}

// BenchmarkVerify measures Open's structural check on a store of 20,000 peers (the file
// is in the page cache after the first iteration).
func BenchmarkVerify(b *testing.B) {
	p := filepath.Join(b.TempDir(), "s.db")
	writeFilledStore(b, p, 20000)
	fi, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for b.Loop() {
		rep, err := verifyFile(p, f, fi.Size(), false)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Pages), "pages")
	}
}
