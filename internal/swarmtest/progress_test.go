package swarmtest

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestCurveAt(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		c    Curve
		at   time.Duration
		want int
	}{
		{"flat", Curve{Pieces: 10, Start: 4}, time.Hour, 4},
		{"start", Curve{Pieces: 10, Start: 2, Interval: s}, 0, 2},
		{"just before a step", Curve{Pieces: 10, Start: 2, Interval: s}, s - 1, 2},
		{"on a step", Curve{Pieces: 10, Start: 2, Interval: s}, s, 3},
		{"capped", Curve{Pieces: 10, Start: 2, Interval: s}, time.Hour, 10},
		{"negative time", Curve{Pieces: 10, Start: 2, Interval: s}, -s, 2},
		{"stall start", Curve{Pieces: 100, Interval: s, StallAt: 5 * s, StallFor: 10 * s}, 5 * s, 5},
		{"in stall", Curve{Pieces: 100, Interval: s, StallAt: 5 * s, StallFor: 10 * s}, 14 * s, 5},
		{"after stall", Curve{Pieces: 100, Interval: s, StallAt: 5 * s, StallFor: 10 * s}, 16 * s, 6},
		{"before regress", Curve{Pieces: 100, Interval: s, RegressAt: 20 * s, RegressBy: 5}, 20*s - 1, 19},
		{"regressed", Curve{Pieces: 100, Interval: s, RegressAt: 20 * s, RegressBy: 5}, 20 * s, 15},
		{"regressed stays flat", Curve{Pieces: 100, Interval: s, RegressAt: 20 * s, RegressBy: 5}, 90 * s, 15},
		{"regress floors at zero", Curve{Pieces: 100, Start: 1, RegressAt: s, RegressBy: 5}, 2 * s, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.At(tt.at); got != tt.want {
				t.Errorf("At(%v) = %d, want %d", tt.at, got, tt.want)
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	tests := []struct {
		f      float64
		pieces int
		want   int
	}{
		{0.98, 100, 98}, {0.98, 50, 49}, {0.98, 20000, 19600}, {0.98, 51, 50}, {1, 7, 7}, {0.5, 3, 2},
		{0.95, 20, 19}, {0.9, 10, 9}, {0.99, 100, 99}, {0.98, 1, 1}, {0.000001, 50, 1},
	}
	for _, tt := range tests {
		if got := Threshold(tt.f, tt.pieces); got != tt.want {
			t.Errorf("Threshold(%v, %d) = %d, want %d", tt.f, tt.pieces, got, tt.want)
		}
	}
}

func randomCurve(r *rand.Rand) Curve {
	n := 1 + r.IntN(60)
	c := Curve{Pieces: n, Start: r.IntN(n + 1)}
	if r.IntN(4) > 0 {
		c.Interval = time.Duration(1 + r.IntN(5))
	}
	if r.IntN(3) == 0 {
		c.StallAt, c.StallFor = time.Duration(r.IntN(100)), time.Duration(1+r.IntN(50))
	}
	if r.IntN(3) == 0 {
		c.RegressAt, c.RegressBy = time.Duration(r.IntN(200)), 1+r.IntN(n)
	}
	return c
}

// TestCurveNextAndCrossing checks Next and the closed-form Crossing against
// stepping through every time unit.
func TestCurveNextAndCrossing(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const horizon = 400
	for k := 0; k < 600; k++ {
		c := randomCurve(r)
		thr := 1 + r.IntN(c.Pieces)
		// Brute force.
		wantCross, crossed := time.Duration(0), false
		below := c.At(0) < thr
		for tt := time.Duration(0); tt <= horizon; tt++ {
			if below && c.At(tt) >= thr {
				wantCross, crossed = tt, true
				break
			}
		}
		got, ok := c.Crossing(thr, horizon)
		if ok != crossed || got != wantCross {
			t.Fatalf("%+v thr %d: Crossing = %v,%v want %v,%v", c, thr, got, ok, wantCross, crossed)
		}
		for tt := time.Duration(0); tt < horizon; tt += time.Duration(1 + r.IntN(7)) {
			next, ok := c.Next(tt)
			// The first change after tt, by brute force.
			want, found := time.Duration(0), false
			for u := tt + 1; u <= 3*horizon; u++ {
				if c.At(u) != c.At(tt) {
					want, found = u, true
					break
				}
			}
			if found && (!ok || next != want) {
				t.Fatalf("%+v: Next(%v) = %v,%v want %v", c, tt, next, ok, want)
			}
			if !found && ok && c.At(next) != c.At(tt) {
				t.Fatalf("%+v: Next(%v) = %v but brute force saw no change", c, tt, next)
			}
		}
		// Knots agree with At.
		for _, kn := range c.Knots(horizon) {
			if c.At(kn.T) != kn.Pieces {
				t.Fatalf("%+v: knot %+v but At = %d", c, kn, c.At(kn.T))
			}
		}
	}
}

func TestApportion(t *testing.T) {
	got, err := apportion(10, []string{"a", "b", "c"}, func(k string) float64 {
		return map[string]float64{"a": 1, "b": 1, "c": 1}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if got["a"]+got["b"]+got["c"] != 10 || got["a"] < 3 || got["b"] < 3 || got["c"] < 3 {
		t.Errorf("apportion = %v", got)
	}
	if _, err := apportion(3, []string{"a"}, func(string) float64 { return 0 }); err == nil {
		t.Error("zero weights accepted")
	}
	if _, err := apportion(3, []string{"a"}, func(string) float64 { return -1 }); err == nil {
		t.Error("negative weight accepted")
	}
}
