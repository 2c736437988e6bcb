package store

import (
	"errors"
	"fmt"
	"net/netip"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/btda/btda/discovery/metainfo"
)

// bucketSchedule holds the raw addresses of the peers the scheduler still watches, when the
// operator keeps them across restarts (storage.persist_schedule). It exists only then.
var bucketSchedule = []byte("schedule")

// SchedulePeer is one watched peer kept across a restart: its torrent, its raw address
// (personal data: only with storage.persist_schedule) and the source that first reported it.
type SchedulePeer struct {
	Torrent metainfo.Hash
	Addr    netip.AddrPort
	Source  uint8
}

// scheduleKey is the torrent, the address as 16 bytes and the port: 38 bytes.
func scheduleKey(p SchedulePeer) []byte {
	k := make([]byte, 0, 38)
	k = append(k, p.Torrent[:]...)
	a := p.Addr.Addr().As16()
	k = append(k, a[:]...)
	return append(k, byte(p.Addr.Port()>>8), byte(p.Addr.Port()))
}

// SaveSchedule replaces the kept schedule with peers, in one transaction, so a crash leaves
// either the previous list or this one.
func (s *Store) SaveSchedule(peers []SchedulePeer) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketSchedule); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		b, err := tx.CreateBucket(bucketSchedule)
		if err != nil {
			return err
		}
		for _, p := range peers {
			if err := b.Put(scheduleKey(p), []byte{p.Source}); err != nil {
				return err
			}
		}
		return nil
	})
}

// LoadSchedule returns the kept schedule (none when it was never saved); entries that do
// not decode are skipped and counted in bad.
func (s *Store) LoadSchedule() (peers []SchedulePeer, bad int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSchedule)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 38 || len(v) != 1 {
				bad++
				return nil
			}
			var p SchedulePeer
			copy(p.Torrent[:], k[:20])
			a := netip.AddrFrom16([16]byte(k[20:36])).Unmap()
			p.Addr = netip.AddrPortFrom(a, uint16(k[36])<<8|uint16(k[37]))
			p.Source = v[0]
			peers = append(peers, p)
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store %s: reading the kept schedule: %w", s.path, err)
	}
	return peers, bad, nil
}

// DropSchedule deletes the kept schedule: with storage.persist_schedule off, no raw address
// stays in the store.
func (s *Store) DropSchedule() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSchedule) == nil {
			return nil
		}
		return tx.DeleteBucket(bucketSchedule)
	})
	if err != nil {
		return fmt.Errorf("store %s: dropping the kept schedule: %w", s.path, err)
	}
	return nil
}
