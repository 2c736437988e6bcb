package store

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
)

func TestSchedule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, bad, err := s.LoadSchedule(); err != nil || len(got) != 0 || bad != 0 {
		t.Fatalf("fresh store: %v %d %v", got, bad, err)
	}
	var h1, h2 [20]byte
	h1[0], h2[0] = 1, 2
	first := []SchedulePeer{
		{Torrent: h1, Addr: netip.MustParseAddrPort("127.0.0.2:6881"), Source: 1},
		{Torrent: h1, Addr: netip.MustParseAddrPort("[::1]:51413"), Source: 3},
		{Torrent: h2, Addr: netip.MustParseAddrPort("10.1.2.3:1"), Source: 2},
	}
	second := first[1:2]
	for _, want := range [][]SchedulePeer{first, second, nil} {
		if err := s.SaveSchedule(want); err != nil {
			t.Fatal(err)
		}
		got, bad, err := s.LoadSchedule()
		if err != nil || bad != 0 {
			t.Fatal(err, bad)
		}
		sortPeers := func(ps []SchedulePeer) {
			slices.SortFunc(ps, func(a, b SchedulePeer) int { return a.Addr.Compare(b.Addr) })
		}
		sortPeers(got)
		w := slices.Clone(want)
		sortPeers(w)
		if !slices.Equal(got, w) {
			t.Fatalf("kept schedule %v, want %v (a save replaces the previous list)", got, w)
		}
	}
	if err := s.SaveSchedule(first); err != nil {
		t.Fatal(err)
	}
	if err := s.DropSchedule(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.LoadSchedule(); len(got) != 0 {
		t.Fatalf("after DropSchedule: %v", got)
	}
	if err := s.DropSchedule(); err != nil {
		t.Fatalf("dropping twice: %v", err)
	}
	// The store with a schedule bucket still opens (unknown buckets are not damage).
	if err := s.SaveSchedule(first); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen with a kept schedule: %v", err)
	}
	s2.Close()
}
