// Package store keeps btda's per-peer state and its aggregates in one bbolt file.
//
// Peers are keyed by a keyed hash (HMAC-SHA256 truncated to 16 bytes, secret kept in the
// store) of (torrent, IP, listen port), so the file holds no raw IP unless the operator asks.
// Every write goes through Update: a peer record and the aggregates it changes are committed
// in the same transaction, so a crash never leaves a counted crossing without its record.
package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/btda/btda/discovery/metainfo"
)

// SchemaVersion is the layout this code reads and writes. A store with a newer version is
// refused rather than misread.
const SchemaVersion = 1

// DefaultLockTimeout is how long Open waits for another process's lock.
const DefaultLockTimeout = time.Second

var (
	bucketMeta      = []byte("meta")
	bucketPeers     = []byte("peers")
	bucketHosts     = []byte("hosts")
	bucketTorrents  = []byte("agg_torrent")
	bucketConfirmed = []byte("agg_confirmed")
	bucketCountries = []byte("agg_country")
	bucketNetworks  = []byte("agg_network")
	bucketDownloads = []byte("downloads")
	// bucketClaims: crossings by (torrent, peer_id), added without a schema change (a
	// store without it gets it at open).
	bucketClaims = []byte("claims")

	allBuckets = [][]byte{bucketMeta, bucketPeers, bucketHosts, bucketTorrents,
		bucketConfirmed, bucketCountries, bucketNetworks, bucketDownloads, bucketClaims}

	keySchema  = []byte("schema")
	keySecret  = []byte("secret")
	keyCreated = []byte("created")
)

// ErrLocked is returned (wrapped) by Open when another process holds the store.
var ErrLocked = errors.New("locked by another btda process")

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// NoSync skips fsync after each commit (benchmarks only: a crash may lose commits).
	NoSync bool
	// BeforeCommit, when set, runs at the end of every write transaction; an error aborts
	// the transaction as a failed commit would. It exists to inject faults (a full disk) in
	// tests.
	BeforeCommit func() error
	// MaxSize caps the file size in bytes (0 = no cap); growing past it fails the commit.
	MaxSize int
}

// PeerKey is the pseudonymous key of one peer identity.
type PeerKey [16]byte

// HostKey is the pseudonymous key of one (torrent, IP).
type HostKey [16]byte

// Store is an open btda store. Its methods are safe for concurrent use; bbolt allows one
// writer at a time and any number of readers.
type Store struct {
	db     *bolt.DB
	path   string
	secret []byte
	before func() error
}

// Open opens (or creates) the store at path. An existing file is verified first (every
// page bbolt would read): a damaged one, or an empty one, is refused with a *DamagedError
// and left untouched. Records are not decoded here: one that does not decode is skipped
// where it is read (Check finds them all).
func Open(path string, opt Options) (s *Store, err error) {
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	// bbolt can panic on some corrupt files instead of returning an error.
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("store %s is corrupt: %v", path, r)
		}
	}()
	// Verify an existing file first: bbolt panics on some damage where no recover() can
	// catch it (see verify.go). The file is closed again (dropping the shared lock) before
	// bbolt takes its exclusive one.
	f, _, err := openVerified(path, opt.LockTimeout, false)
	if err != nil {
		return nil, err
	}
	if f != nil {
		_ = f.Close()
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opt.LockTimeout,
		NoSync:         opt.NoSync,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
		MaxSize:        opt.MaxSize,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("store %s is %w (waited %s)", path, ErrLocked, opt.LockTimeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
			return nil, fmt.Errorf("store %s is corrupt or not a bbolt file: %w", path, err)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s = &Store{db: db, path: path, before: opt.BeforeCommit}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// init creates the schema on a new file, or checks the schema of an existing one.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("store %s is a bbolt file but not a btda store (no meta bucket)", s.path)
			}
			for _, b := range allBuckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return fmt.Errorf("store %s: create bucket %s: %w", s.path, b, err)
				}
			}
			meta = tx.Bucket(bucketMeta)
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return fmt.Errorf("store %s: secret: %w", s.path, err)
			}
			if err := meta.Put(keySecret, secret); err != nil {
				return err
			}
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return err
			}
			if err := meta.Put(keyCreated, binary.BigEndian.AppendUint64(nil, uint64(time.Now().Unix()))); err != nil {
				return err
			}
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return fmt.Errorf("store %s: meta bucket has no valid schema version", s.path)
		}
		if ver := binary.BigEndian.Uint32(v); ver != SchemaVersion {
			if ver > SchemaVersion {
				return fmt.Errorf("store %s has schema version %d, newer than this btda supports (%d): upgrade btda", s.path, ver, SchemaVersion)
			}
			return fmt.Errorf("store %s has schema version %d, which this btda cannot read (it reads %d)", s.path, ver, SchemaVersion)
		}
		sec := meta.Get(keySecret)
		if len(sec) != 32 {
			return fmt.Errorf("store %s: secret has %d bytes, want 32", s.path, len(sec))
		}
		s.secret = bytes.Clone(sec)
		if _, err := tx.CreateBucketIfNotExists(bucketClaims); err != nil {
			return fmt.Errorf("store %s: create bucket %s: %w", s.path, bucketClaims, err)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("store %s: bucket %s is missing", s.path, b)
			}
		}
		return nil
	})
}

// Path returns the file name.
func (s *Store) Path() string { return s.path }

// Close closes the file. Call it after the last Update.
func (s *Store) Close() error { return s.db.Close() }

// Size returns the file's size in bytes (0 if it cannot be read).
func (s *Store) Size() int64 {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func canon(a netip.Addr) [16]byte { return a.Unmap().As16() }

// PeerKey returns the keyed hash of (torrent, IP, listen port); port 0 means unknown.
func (s *Store) PeerKey(t metainfo.Hash, a netip.Addr, port uint16) PeerKey {
	m := hmac.New(sha256.New, s.secret)
	var buf [1 + 20 + 16 + 2]byte
	buf[0] = 'p'
	copy(buf[1:], t[:])
	ip := canon(a)
	copy(buf[21:], ip[:])
	binary.BigEndian.PutUint16(buf[37:], port)
	m.Write(buf[:])
	var k PeerKey
	copy(k[:], m.Sum(nil))
	return k
}

// HostKey returns the keyed hash of (torrent, IP), in a separate domain from PeerKey.
func (s *Store) HostKey(t metainfo.Hash, a netip.Addr) HostKey {
	m := hmac.New(sha256.New, s.secret)
	var buf [1 + 20 + 16]byte
	buf[0] = 'h'
	copy(buf[1:], t[:])
	ip := canon(a)
	copy(buf[21:], ip[:])
	m.Write(buf[:])
	var k HostKey
	copy(k[:], m.Sum(nil))
	return k
}

// ClaimKey is the pseudonymous key of one (torrent, peer_id).
type ClaimKey [16]byte

// ClaimKey returns the keyed hash of (torrent, peer_id), in its own domain.
func (s *Store) ClaimKey(t metainfo.Hash, peerID [20]byte) ClaimKey {
	m := hmac.New(sha256.New, s.secret)
	var buf [1 + 20 + 20]byte
	buf[0] = 'c'
	copy(buf[1:], t[:])
	copy(buf[21:], peerID[:])
	m.Write(buf[:])
	var k ClaimKey
	copy(k[:], m.Sum(nil))
	return k
}

// PeerIDTag is a short keyed hash of a peer_id, to recognise it again without storing it.
func (s *Store) PeerIDTag(peerID [20]byte) [8]byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte{'i'})
	m.Write(peerID[:])
	var tag [8]byte
	copy(tag[:], m.Sum(nil))
	return tag
}

// Claim reads when a crossing was counted for (torrent, peer_id); ok is false when none was.
func (t *Tx) Claim(k ClaimKey) (at time.Time, ok bool) {
	v := t.claims.Get(k[:])
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), true
}

// PutClaim records that a crossing at at was counted for (torrent, peer_id).
func (t *Tx) PutClaim(k ClaimKey, at time.Time) error {
	return t.claims.Put(k[:], binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())))
}

// Tx is one store transaction.
type Tx struct {
	tx                  *bolt.Tx
	peers, hosts        *bolt.Bucket
	torrents, confirmed *bolt.Bucket
	countries, nets     *bolt.Bucket
	downloads, claims   *bolt.Bucket
}

func wrap(tx *bolt.Tx) *Tx {
	return &Tx{tx: tx, peers: tx.Bucket(bucketPeers), hosts: tx.Bucket(bucketHosts),
		torrents: tx.Bucket(bucketTorrents), confirmed: tx.Bucket(bucketConfirmed),
		countries: tx.Bucket(bucketCountries), nets: tx.Bucket(bucketNetworks),
		downloads: tx.Bucket(bucketDownloads), claims: tx.Bucket(bucketClaims)}
}

// Update runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := fn(wrap(tx)); err != nil {
			return err
		}
		if s.before != nil {
			return s.before()
		}
		return nil
	})
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(wrap(tx)) })
}

// Peer reads a peer record; ok is false when there is none.
func (t *Tx) Peer(k PeerKey) (p Peer, ok bool, err error) {
	v := t.peers.Get(k[:])
	if v == nil {
		return p, false, nil
	}
	if err := p.UnmarshalBinary(v); err != nil {
		return p, false, fmt.Errorf("peer %x: %w", k[:4], err)
	}
	return p, true, nil
}

// PutPeer writes a peer record.
func (t *Tx) PutPeer(k PeerKey, p *Peer) error {
	v, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	return t.peers.Put(k[:], v)
}

// DeletePeer removes a peer record (an identity merged into another); a missing one is no
// error.
func (t *Tx) DeletePeer(k PeerKey) error { return t.peers.Delete(k[:]) }

// ForEachPeer calls fn for every stored peer, in key order.
func (t *Tx) ForEachPeer(fn func(PeerKey, *Peer) error) error {
	return t.peers.ForEach(func(k, v []byte) error {
		var p Peer
		if len(k) != len(PeerKey{}) {
			return fmt.Errorf("peer key of %d bytes", len(k))
		}
		if err := p.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("peer %x: %w", k[:4], err)
		}
		return fn(PeerKey(k), &p)
	})
}

// Host reads the host marker of (torrent, IP); a missing one is the zero Host.
func (t *Tx) Host(k HostKey) (Host, error) {
	var h Host
	v := t.hosts.Get(k[:])
	if v == nil {
		return h, nil
	}
	if err := h.unmarshal(v); err != nil {
		return h, fmt.Errorf("host %x: %w", k[:4], err)
	}
	return h, nil
}

// PutHost writes the host marker of (torrent, IP).
func (t *Tx) PutHost(k HostKey, h Host) error { return t.hosts.Put(k[:], h.marshal()) }

// LogDownload appends a confirmed download to the log, keyed by crossing time.
func (t *Tx) LogDownload(d *Download) error { return t.downloads.Put(d.key(), d.marshal()) }

// Downloads calls fn for every logged download with from <= At < to, in time order.
func (t *Tx) Downloads(from, to time.Time, fn func(Download) error) error {
	c := t.downloads.Cursor()
	start := binary.BigEndian.AppendUint64(nil, uint64(from.UnixNano()))
	for k, v := c.Seek(start); k != nil; k, v = c.Next() {
		d, err := UnmarshalDownload(k, v)
		if err != nil {
			return err
		}
		if !d.At.Before(to) {
			break
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func addU64(b *bolt.Bucket, k []byte, off int, n int, deltas ...uint64) error {
	v := make([]byte, n)
	copy(v, b.Get(k))
	for i, d := range deltas {
		o := off + 8*i
		binary.BigEndian.PutUint64(v[o:], binary.BigEndian.Uint64(v[o:])+d)
	}
	return b.Put(k, v)
}

// code2 makes a fixed two-byte code for aggregate keys.
func code2(s string) string {
	if len(s) != 2 {
		return "ZZ"
	}
	return s
}

// AddAggregates adds a delta to the stored aggregates.
func (t *Tx) AddAggregates(d *Aggregates) error {
	for h, a := range d.Torrents {
		if err := addU64(t.torrents, h[:], 0, 32, a.Peers, a.Seeds, a.PartialSeeds, a.Confirmed); err != nil {
			return err
		}
	}
	for k, n := range d.Confirmed {
		key := append(k.Torrent[:], code2(k.Country)+code2(k.Continent)...)
		if err := addU64(t.confirmed, key, 0, 8, n); err != nil {
			return err
		}
	}
	for c, a := range d.Countries {
		k := []byte(code2(c))
		v := make([]byte, 16)
		old := t.countries.Get(k)
		var ob uint64
		var osec float64
		if len(old) == 16 {
			ob = binary.BigEndian.Uint64(old)
			osec = math.Float64frombits(binary.BigEndian.Uint64(old[8:]))
		}
		binary.BigEndian.PutUint64(v, ob+a.Bytes)
		binary.BigEndian.PutUint64(v[8:], math.Float64bits(osec+a.Seconds))
		if err := t.countries.Put(k, v); err != nil {
			return err
		}
	}
	for name, a := range d.Networks {
		if name == "" || len(name) > maxString {
			return fmt.Errorf("network name of %d bytes", len(name))
		}
		// Two's-complement addition: a negative delta subtracts.
		if err := addU64(t.nets, []byte(name), 0, 16, uint64(a.Peers), uint64(a.Confirmed)); err != nil {
			return err
		}
	}
	return nil
}

// Aggregates reads every stored aggregate.
func (t *Tx) Aggregates() (*Aggregates, error) {
	a := NewAggregates()
	err := t.torrents.ForEach(func(k, v []byte) error {
		if len(k) != 20 || len(v) != 32 {
			return fmt.Errorf("torrent aggregate: key %d bytes, value %d bytes, want 20 and 32", len(k), len(v))
		}
		a.Torrents[metainfo.Hash(k)] = TorrentAgg{Peers: binary.BigEndian.Uint64(v),
			Seeds: binary.BigEndian.Uint64(v[8:]), PartialSeeds: binary.BigEndian.Uint64(v[16:]),
			Confirmed: binary.BigEndian.Uint64(v[24:])}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.confirmed.ForEach(func(k, v []byte) error {
		if len(k) != 24 || len(v) != 8 {
			return fmt.Errorf("confirmed aggregate: key %d bytes, value %d bytes, want 24 and 8", len(k), len(v))
		}
		a.Confirmed[ConfirmedKey{Torrent: metainfo.Hash(k[:20]), Country: string(k[20:22]), Continent: string(k[22:24])}] = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.countries.ForEach(func(k, v []byte) error {
		if len(k) != 2 || len(v) != 16 {
			return fmt.Errorf("country aggregate: key %d bytes, value %d bytes, want 2 and 16", len(k), len(v))
		}
		a.Countries[string(k)] = CountryAgg{Bytes: binary.BigEndian.Uint64(v), Seconds: math.Float64frombits(binary.BigEndian.Uint64(v[8:]))}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.nets.ForEach(func(k, v []byte) error {
		if len(v) != 16 {
			return fmt.Errorf("network aggregate %q: value %d bytes, want 16", k, len(v))
		}
		a.Networks[string(k)] = NetworkAgg{Peers: int64(binary.BigEndian.Uint64(v)), Confirmed: int64(binary.BigEndian.Uint64(v[8:]))}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Size returns the database size as seen by this transaction.
func (t *Tx) Size() int64 { return t.tx.Size() }
