package store

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/btda/btda/discovery/metainfo"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "btda.db")
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, p
}

func samplePeer() Peer {
	at := time.Date(2026, 11, 24, 0, 0, 0, 123, time.UTC)
	return Peer{
		Flags: FlagHasPoint | FlagBelowSeen | FlagConfirmed | FlagCounted, Sources: 1<<1 | 1<<4,
		Contacts: 7, FirstSeen: at, LastContact: at.Add(time.Hour), NumPieces: 1000,
		First: Point{10, at}, Prev: Point{500, at.Add(time.Minute)}, Last: Point{990, at.Add(2 * time.Minute)},
		LastBelow: at.Add(time.Minute), CrossedAt: at.Add(2 * time.Minute), WindowStart: at.Add(time.Minute),
		MaxSpeed: 12345.5, Client: "Transmission", Country: "DE", Continent: "EU", City: "Berlin",
		ASN: 3320, Org: "Deutsche Telekom AG", Domain: "telekom.de",
		Network: netip.MustParsePrefix("10.1.2.0/24"), NetLabel: "AS3320 Deutsche Telekom AG",
	}
}

func TestPeerRoundTrip(t *testing.T) {
	cases := map[string]Peer{
		"full":  samplePeer(),
		"empty": {},
		"v6": {Network: netip.MustParsePrefix("2001:db8:1::/48"), Addr: netip.MustParseAddr("2001:db8:1::5"),
			Country: "ZZ", Continent: "ZZ"},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var q Peer
			if err := q.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", q, p)
			}
		})
	}
}

func TestPeerDecodeErrors(t *testing.T) {
	p := samplePeer()
	good, _ := p.MarshalBinary()
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"empty":     {nil, "field version: truncated"},
		"version":   {[]byte{9}, "unknown record version 9"},
		"truncated": {good[:len(good)-3], "truncated"},
		"trailing":  {append(append([]byte{}, good...), 1), "trailing bytes"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var q Peer
			err := q.UnmarshalBinary(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzPeerRecord(f *testing.F) {
	p := samplePeer()
	b, _ := p.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var q Peer
		if err := q.UnmarshalBinary(in); err != nil {
			return
		}
		// A record that decodes re-encodes to something that decodes to the same value.
		out, err := q.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r Peer
		if err := r.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(q, r) {
			t.Fatalf("unstable: %+v vs %+v", q, r)
		}
	})
}

func FuzzDownloadLog(f *testing.F) {
	d := Download{At: time.Unix(1700000000, 5).UTC(), Country: "FR", Continent: "EU", Speed: 3,
		Network: netip.MustParsePrefix("192.0.2.0/24"), NetLabel: "x"}
	f.Add(d.key(), d.marshal())
	f.Add(make([]byte, 24), []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		_, _ = UnmarshalDownload(k, v)
	})
}

func TestOpenCreatesAndKeepsSecret(t *testing.T) {
	s, p := openTemp(t)
	h := metainfo.Hash{1}
	a := netip.MustParseAddr("127.1.0.1")
	k1 := s.PeerKey(h, a, 6881)
	if k1 == s.PeerKey(h, a, 6882) || k1 == s.PeerKey(metainfo.Hash{2}, a, 6881) {
		t.Fatal("peer keys collide across ports or torrents")
	}
	if s.PeerKey(h, netip.MustParseAddr("::ffff:127.1.0.1"), 6881) != k1 {
		t.Fatal("a v4-mapped address must key like its v4 form")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.PeerKey(h, a, 6881) != k1 {
		t.Fatal("the secret changed across a reopen")
	}
	other, _ := openTemp(t)
	if other.PeerKey(h, a, 6881) == k1 {
		t.Fatal("two stores share a secret")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 2000)), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
	_ = db.Close()

	newer := filepath.Join(dir, "newer.db")
	s, err := Open(newer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
	})
	_ = s.Close()

	cases := map[string]struct{ path, want string }{
		"garbage": {garbage, "is damaged: neither of its two bbolt meta pages is valid"},
		"foreign": {foreign, "not a btda store"},
		"newer":   {newer, "newer than this btda supports"},
		"no dir":  {filepath.Join(dir, "missing", "x.db"), "no such file"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Open(c.path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Fatalf("err = %v, want it to name %s and say %q", err, c.path, c.want)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	s, p := openTemp(t)
	_ = s
	_, err := Open(p, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "store "+p+" is locked by another btda process") {
		t.Fatalf("err = %v", err)
	}
}

func TestAggregatesAndLog(t *testing.T) {
	s, _ := openTemp(t)
	h := metainfo.Hash{7}
	d := NewAggregates()
	d.Torrents[h] = TorrentAgg{Peers: 3, Seeds: 1, PartialSeeds: 1, Confirmed: 1}
	d.Confirmed[ConfirmedKey{h, "DE", "EU"}] = 1
	d.Countries["DE"] = CountryAgg{Bytes: 100, Seconds: 2.5}
	d.Networks["AS1 Example"] = NetworkAgg{Peers: 3, Confirmed: 1}
	dl := Download{At: time.Unix(1700000000, 0).UTC(), WindowStart: time.Unix(1699999000, 0).UTC(),
		Peer: PeerKey{1}, Torrent: h, Country: "DE", Continent: "EU", Speed: 10, MaxSpeed: 20,
		Network: netip.MustParsePrefix("127.1.0.0/24"), NetLabel: "AS1 Example"}
	for range 2 {
		if err := s.Update(func(tx *Tx) error {
			if err := tx.AddAggregates(d); err != nil {
				return err
			}
			return tx.LogDownload(&dl)
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := NewAggregates()
	want.Add(d)
	want.Add(d)
	var got *Aggregates
	var logged []Download
	err := s.View(func(tx *Tx) (err error) {
		got, err = tx.Aggregates()
		if err != nil {
			return err
		}
		return tx.Downloads(dl.At, dl.At.Add(time.Second), func(d Download) error { logged = append(logged, d); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("aggregates:\n got %+v\nwant %+v", got, want)
	}
	if len(logged) != 1 || !reflect.DeepEqual(logged[0], dl) {
		t.Fatalf("log = %+v, want one %+v", logged, dl)
	}
}

func TestBeforeCommitAborts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	boom := errors.New("no space left on device")
	s, err := Open(p, Options{BeforeCommit: func() error { return boom }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := PeerKey{1}
	pr := samplePeer()
	if err := s.Update(func(tx *Tx) error { return tx.PutPeer(k, &pr) }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	_ = s.View(func(tx *Tx) error {
		if _, ok, _ := tx.Peer(k); ok {
			t.Fatal("an aborted transaction left a record")
		}
		return nil
	})
}

func FuzzHostRecord(f *testing.F) {
	f.Add(Host{KnownCounted: 3, UnknownCounted: true, Claimed: true}.marshal())
	f.Add(Host{KnownCounted: 1, KnownPorts: 2, Port: 6881, PeerID: [8]byte{1, 2}}.marshal())
	f.Add(Host{KnownPorts: 1, Port: 6881, PeerID: [8]byte{1, 2}, UnknownPeerID: [8]byte{3}}.marshal())
	f.Add(Host{KnownPorts: 1, Port: 6881, PeerID: [8]byte{1, 2}}.marshal()[:hostLenV1]) // version 1
	f.Add([]byte{0, 0, 0, 0, 4})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Host
		if err := h.unmarshal(in); err != nil {
			return
		}
		got := h.marshal()
		if len(in) < hostLen { // an old record gains zero known ports and unknown-port peer_id
			in = append(in[:len(in):len(in)], make([]byte, hostLen-len(in))...)
		}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("%x re-encodes as %x", in, got)
		}
	})
}

func TestDownloadLogVersions(t *testing.T) {
	d := Download{At: time.Unix(1700000000, 5).UTC(), WindowStart: time.Unix(1699999990, 0).UTC(),
		Peer: PeerKey{7}, Torrent: metainfo.Hash{3}, Country: "FR", Continent: "EU", Speed: 3, MaxSpeed: 4,
		Network: netip.MustParsePrefix("192.0.2.0/24"), NetLabel: "x",
		Below: 40, Above: 64, NumPieces: 64, Source: 2, Direction: 1}
	got, err := UnmarshalDownload(d.key(), d.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, d)
	}
	// A version-0 entry (written before the audit fields) ends after net_label.
	v0 := d.marshal()
	v0 = v0[:len(v0)-1-1-1-1-2] // version, three one-byte varints, source, direction
	old, err := UnmarshalDownload(d.key(), v0)
	if err != nil {
		t.Fatalf("version 0 entry: %v", err)
	}
	want := d
	want.Below, want.Above, want.NumPieces, want.Source, want.Direction = 0, 0, 0, 0, 0
	if !reflect.DeepEqual(old, want) {
		t.Fatalf("version 0:\n got %+v\nwant %+v", old, want)
	}
	for name, v := range map[string][]byte{
		"unknown version": append(v0[:len(v0):len(v0)], 9, 1, 1, 1, 0, 0),
		"truncated":       d.marshal()[:len(d.marshal())-1],
	} {
		if _, err := UnmarshalDownload(d.key(), v); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Host records of every version read (older ones without the known ports or the
// unknown-port identity's peer_id); a store holding them opens and passes Check; a merged
// identity's record is deleted.
func TestHostVersionsAndDeletePeer(t *testing.T) {
	s, p := openTemp(t)
	h := metainfo.Hash{4}
	cur := Host{KnownCounted: 1, KnownPorts: 1, Port: 6881, PeerID: [8]byte{1}, UnknownPeerID: [8]byte{2}}
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}
	raw := [][]byte{cur.marshal()[:hostLenV0], cur.marshal()[:hostLenV1], cur.marshal()}
	want := []Host{{KnownCounted: 1}, {KnownCounted: 1, KnownPorts: 1, Port: 6881, PeerID: [8]byte{1}}, cur}
	pk := s.PeerKey(h, addrs[0], 0)
	err := s.Update(func(tx *Tx) error {
		for i, a := range addrs {
			k := s.HostKey(h, a)
			if err := tx.hosts.Put(k[:], raw[i]); err != nil {
				return err
			}
		}
		sp := samplePeer()
		return tx.PutPeer(pk, &sp)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(p, Options{}); err != nil {
		t.Fatalf("check: %v", err)
	}
	s, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(func(tx *Tx) error {
		for i, a := range addrs {
			got, err := tx.Host(s.HostKey(h, a))
			if err != nil || got != want[i] {
				t.Errorf("host record version %d: %+v %v, want %+v", i, got, err, want[i])
			}
		}
		if err := tx.DeletePeer(pk); err != nil {
			return err
		}
		if _, ok, _ := tx.Peer(pk); ok {
			t.Error("deleted peer still there")
		}
		return tx.DeletePeer(pk) // a missing one is no error
	})
	if err != nil {
		t.Fatal(err)
	}
}
