package store

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// fill writes n peers (every third of torrent 2) and n downloads one second apart.
func fill(t *testing.T, s *Store, n int) time.Time {
	t.Helper()
	t0 := time.Unix(1700000000, 0).UTC()
	if err := s.Update(func(tx *Tx) error {
		for i := range n {
			p := samplePeer()
			p.Torrent = metainfo.Hash{1}
			if i%3 == 0 {
				p.Torrent = metainfo.Hash{2}
			}
			var k PeerKey
			binary.BigEndian.PutUint32(k[:], uint32(i))
			if err := tx.PutPeer(k, &p); err != nil {
				return err
			}
			d := Download{At: t0.Add(time.Duration(i) * time.Second), Peer: k, Torrent: p.Torrent, Country: "DE", Continent: "EU"}
			if err := tx.LogDownload(&d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return t0
}

func TestWalkPeersPagesAndResumes(t *testing.T) {
	s, _ := openTemp(t)
	const n = 2*DefaultReadPage + 17
	fill(t, s, n)
	ctx := context.Background()
	var got []PeerKey
	if err := s.WalkPeers(ctx, nil, func(k PeerKey, p *Peer) error {
		if p.Torrent.IsZero() {
			t.Fatalf("peer %x without its torrent", k[:4])
		}
		got = append(got, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("walked %d peers, want %d", len(got), n)
	}
	for i := 1; i < len(got); i++ {
		if string(got[i-1][:]) >= string(got[i][:]) {
			t.Fatalf("keys out of order at %d", i)
		}
	}
	// Resume after the 1500th key, stop after 10.
	var resumed []PeerKey
	err := s.WalkPeers(ctx, &got[1499], func(k PeerKey, _ *Peer) error {
		resumed = append(resumed, k)
		if len(resumed) == 10 {
			return ErrStop
		}
		return nil
	})
	if err != nil || len(resumed) != 10 || resumed[0] != got[1500] {
		t.Fatalf("resume: err %v, %d keys, first %x want %x", err, len(resumed), resumed[0][:4], got[1500][:4])
	}
	if c, err := s.CountPeers(); err != nil || c != n {
		t.Fatalf("CountPeers = %d, %v", c, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WalkPeers(cctx, nil, func(PeerKey, *Peer) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled walk: %v", err)
	}
}

func TestWalkDownloadsSinceAndAfter(t *testing.T) {
	s, _ := openTemp(t)
	t0 := fill(t, s, DefaultReadPage+5)
	ctx := context.Background()
	var all []Download
	if err := s.WalkDownloads(ctx, time.Time{}, nil, func(d Download) error { all = append(all, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != DefaultReadPage+5 {
		t.Fatalf("%d downloads", len(all))
	}
	var since []Download
	if err := s.WalkDownloads(ctx, t0.Add(10*time.Second), nil, func(d Download) error { since = append(since, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(since) != len(all)-10 || !since[0].At.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("since: %d, first %v", len(since), since[0].At)
	}
	k := all[20].Key()
	var after []Download
	if err := s.WalkDownloads(ctx, t0.Add(10*time.Second), &k, func(d Download) error { after = append(after, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(after) != len(all)-21 || after[0].Key() != all[21].Key() {
		t.Fatalf("after: %d", len(after))
	}
}

func TestOpenReadOnly(t *testing.T) {
	s, p := openTemp(t)
	fill(t, s, 3)
	if _, err := OpenReadOnly(p, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "--url") {
		t.Fatalf("open while held: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, _ := r.CountPeers(); n != 3 {
		t.Fatalf("%d peers", n)
	}
	if a, err := r.ReadAggregates(); err != nil || a == nil {
		t.Fatalf("aggregates: %v", err)
	}
	if _, err := OpenReadOnly(p+".absent", Options{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("absent: %v", err)
	}
}

func TestPeerRecordVersion1(t *testing.T) {
	p := samplePeer()
	p.Torrent = metainfo.Hash{9}
	b, _ := p.MarshalBinary()
	v1 := append([]byte{1}, b[1:len(b)-len(p.Torrent)]...)
	var q Peer
	if err := q.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	if !q.Torrent.IsZero() || q.Client != p.Client {
		t.Fatalf("v1 record: %+v", q)
	}
}
