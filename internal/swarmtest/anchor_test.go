package swarmtest

import (
	"testing"
	"time"
)

// TestAnchoredCurve: an anchored curve stays at Start until the peer's first handshake,
// then runs its script from there; the truth's crossing moves with it.
func TestAnchoredCurve(t *testing.T) {
	s := &Swarm{cfg: Config{Threshold: 0.98}}
	p := &Peer{Torrent: &Torrent{Pieces: 100}, Profile: Libtorrent,
		Curve: Curve{Pieces: 100, Start: 50, Interval: 100 * time.Millisecond, Anchored: true}}
	if got := Progress(p, time.Hour); got != 50 {
		t.Fatalf("before contact: %d pieces, want 50", got)
	}
	if _, ok := p.next(time.Hour); ok {
		t.Fatal("before contact the curve must not move")
	}
	if pt := s.PeerTruth(p, time.Hour); pt.Crosses || pt.Counted || pt.Class != "leecher" {
		t.Fatalf("before contact: %+v", pt)
	}
	p.touch(7 * time.Second)
	p.touch(9 * time.Second) // only the first contact counts
	if a, ok := p.FirstContact(); !ok || a != 7*time.Second {
		t.Fatalf("first contact %v %v", a, ok)
	}
	for _, c := range []struct {
		at   time.Duration
		want int
	}{{0, 50}, {7 * time.Second, 50}, {7*time.Second + 250*time.Millisecond, 52}, {time.Hour, 100}} {
		if got := Progress(p, c.at); got != c.want {
			t.Errorf("Progress at %v = %d, want %d", c.at, got, c.want)
		}
	}
	if n, ok := p.next(7 * time.Second); !ok || n != 7*time.Second+100*time.Millisecond {
		t.Errorf("next = %v %v", n, ok)
	}
	pt := s.PeerTruth(p, time.Hour)
	if !pt.Counted || *pt.CrossAt != 7*time.Second+48*100*time.Millisecond || *pt.FirstContact != 7*time.Second {
		t.Fatalf("truth %+v cross %v", pt, *pt.CrossAt)
	}
	if pt := s.PeerTruth(p, 10*time.Second); pt.Crosses {
		t.Fatal("a crossing after the horizon counted")
	}
}
