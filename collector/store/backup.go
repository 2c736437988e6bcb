package store

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the store file at path without changing it: every page bbolt would read,
// every record decoded with the store's own decoders, then bbolt's consistency check
// (Tx.Check) and the schema. Damage is returned as a *DamagedError alongside the report; a
// store another process holds open is refused (wrapped ErrLocked).
func Check(path string, opt Options) (*CheckReport, error) {
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	db, f, rep, err := openReadOnly(path, opt)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	defer db.Close()
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, "bbolt check: "+err.Error())
		}
		if p := schemaProblem(tx); p != "" {
			problems = append(problems, p)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("store %s: %w", path, err)
	}
	if len(problems) > 0 {
		total := len(problems)
		if len(problems) > maxProblems {
			problems = problems[:maxProblems]
		}
		return rep, &DamagedError{Path: path, Problems: problems, Total: total}
	}
	return rep, nil
}

// schemaProblem describes what makes a verified bbolt file not a readable btda store.
func schemaProblem(tx *bolt.Tx) string {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return "it has no meta bucket (a bbolt file, but not a btda store)"
	}
	if v := meta.Get(keySchema); len(v) != 4 {
		return "its meta bucket has no valid schema version"
	} else if ver := binary.BigEndian.Uint32(v); ver != SchemaVersion {
		return fmt.Sprintf("it has schema version %d; this btda reads %d", ver, SchemaVersion)
	}
	if len(meta.Get(keySecret)) != 32 {
		return "its meta bucket has no valid secret"
	}
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			return fmt.Sprintf("bucket %s is missing", b)
		}
	}
	return ""
}

// openReadOnly verifies the existing store at path and opens it with bbolt read-only. The
// returned file holds a shared lock until closed (after db).
func openReadOnly(path string, opt Options) (*bolt.DB, *os.File, *CheckReport, error) {
	f, rep, err := openVerified(path, opt.LockTimeout)
	if err != nil {
		return nil, nil, rep, err
	}
	if f == nil {
		return nil, nil, nil, fmt.Errorf("store %s: %w", path, os.ErrNotExist)
	}
	// Read-only bbolt does not load the freelist at Open; Tx.Check loads it by walking the
	// pages just verified.
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: opt.LockTimeout,
		FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		_ = f.Close()
		return nil, nil, rep, fmt.Errorf("store %s: %w", path, err)
	}
	return db, f, rep, nil
}

// Backup writes a consistent copy of the store file at path, which no process may hold
// open for writing, to w. The file is verified first, so a damaged store is not copied.
func Backup(path string, w io.Writer, opt Options) (int64, error) {
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	db, f, _, err := openReadOnly(path, opt)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	defer db.Close()
	var n int64
	err = db.View(func(tx *bolt.Tx) (err error) {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// WriteTo writes a consistent copy of the open store to w (a bbolt file, readable by Open)
// from one read transaction, while writes go on.
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupHandler serves a consistent copy of the open store (GET only), with its length in
// Content-Length so that a client can tell a cut-off copy from a whole one. The copy is
// one read transaction: while it streams, bbolt cannot remap a growing file, so a slow
// client delays writes that grow the store.
func BackupHandler(s *Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// An error once the copy has started cannot change the status any more: the body
		// falls short of Content-Length, which the client checks.
		_ = s.db.View(func(tx *bolt.Tx) error {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Disposition", `attachment; filename="btda-store-backup.db"`)
			h.Set("Content-Length", strconv.FormatInt(tx.Size(), 10))
			if r.Method == http.MethodHead {
				return nil
			}
			_, err := tx.WriteTo(w)
			return err
		})
	})
}
