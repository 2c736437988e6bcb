package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultReadPage is how many records one read transaction holds at most. A bbolt read
// transaction pins the pages it sees until it ends, so the writer's file grows while a long
// one is open: walks read a page of records per transaction and resume from a key.
const DefaultReadPage = 1000

// ErrStop ends a walk early without an error when its callback returns it.
var ErrStop = errors.New("stop the walk")

// OpenReadOnly opens an existing store for reading only, for exports and reports. It never
// creates or changes the file. A running btda holds the file's lock: OpenReadOnly then
// fails after opt.LockTimeout with an error wrapping ErrLocked.
func OpenReadOnly(path string, opt Options) (s *Store, err error) {
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("store %s is corrupt: %v", path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opt.LockTimeout})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("store %s is %w (waited %s): stop it, or read through its API with --url", path, ErrLocked, opt.LockTimeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
			return nil, fmt.Errorf("store %s is corrupt or not a bbolt file: %w", path, err)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s = &Store{db: db, path: path}
	if err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("store %s is not a btda store (no meta bucket)", path)
		}
		v := meta.Get(keySchema)
		if len(v) != 4 || binary.BigEndian.Uint32(v) != SchemaVersion {
			return fmt.Errorf("store %s: schema version %x, this btda reads %d", path, v, SchemaVersion)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("store %s: bucket %s is missing", path, b)
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// walk calls fn for every record of bucket from start (nil: the first; inclusive says
// whether start itself is included), in key order, page records per read transaction.
func (s *Store) walk(ctx context.Context, bucket, start []byte, inclusive bool, page int, fn func(k, v []byte) error) error {
	if page <= 0 {
		page = DefaultReadPage
	}
	from := bytes.Clone(start)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := 0
		var last []byte
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			var k, v []byte
			if from == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(from)
				if !inclusive && k != nil && bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < page; k, v = c.Next() {
				if err := fn(k, v); err != nil {
					return err
				}
				n++
				last = k
			}
			if last != nil {
				last = bytes.Clone(last) // keys are only valid inside the transaction
			}
			return nil
		})
		if errors.Is(err, ErrStop) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < page {
			return nil
		}
		from, inclusive = last, false
	}
}

// WalkPeers calls fn for every stored peer whose key is after `after` (nil: from the first),
// in key order, reading DefaultReadPage records per read transaction so the writer is never
// held back long and the memory used does not grow with the store. fn runs inside a read
// transaction: it must not write to the store. Returning ErrStop ends the walk.
func (s *Store) WalkPeers(ctx context.Context, after *PeerKey, fn func(PeerKey, *Peer) error) error {
	var from []byte
	if after != nil {
		from = after[:]
	}
	return s.walk(ctx, bucketPeers, from, false, DefaultReadPage, func(k, v []byte) error {
		if len(k) != len(PeerKey{}) {
			return fmt.Errorf("peer key of %d bytes", len(k))
		}
		var p Peer
		if err := p.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("peer %x: %w", k[:4], err)
		}
		return fn(PeerKey(k), &p)
	})
}

// DownloadKey is the position of one entry in the download log: its crossing time and peer.
type DownloadKey [24]byte

// Key returns the log position of d.
func (d *Download) Key() DownloadKey { return DownloadKey(d.key()) }

// WalkDownloads calls fn for every logged download after `after` (nil: from since), with
// At >= since, in time order, a page of entries per read transaction. Returning ErrStop
// ends the walk.
func (s *Store) WalkDownloads(ctx context.Context, since time.Time, after *DownloadKey, fn func(Download) error) error {
	var from []byte
	inclusive := true
	if !since.IsZero() {
		from = binary.BigEndian.AppendUint64(nil, uint64(since.UnixNano()))
	}
	if after != nil && (from == nil || bytes.Compare(after[:], from) >= 0) {
		from, inclusive = after[:], false
	}
	return s.walk(ctx, bucketDownloads, from, inclusive, DefaultReadPage, func(k, v []byte) error {
		d, err := UnmarshalDownload(k, v)
		if err != nil {
			return err
		}
		return fn(d)
	})
}

// ReadAggregates reads every stored aggregate in one short read transaction.
func (s *Store) ReadAggregates() (a *Aggregates, err error) {
	err = s.View(func(tx *Tx) error { a, err = tx.Aggregates(); return err })
	return a, err
}

// CountPeers returns the number of stored peer records.
func (s *Store) CountPeers() (n int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketPeers).Stats().KeyN; return nil })
	return n, err
}
