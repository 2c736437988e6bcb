package swarmtest

import (
	"math"
	"time"
)

// Curve is a peer's scripted progress: Start pieces at swarm time 0, then one
// more piece every Interval (exact integer arithmetic, so the truth has no
// rounding), frozen during [StallAt, StallAt+StallFor), and, if RegressBy > 0,
// dropped by RegressBy pieces at RegressAt and frozen from then on (a re-check
// that found damaged pieces). Progress never exceeds Pieces.
//
// An Anchored curve's clock starts at the peer's first completed handshake instead of at
// swarm time 0: until then the peer has Start pieces. End-to-end tests use it so that the
// scripted crossings happen after btda first reached the peer however slow the machine is;
// the truth is computed from the recorded first-contact times (Peer.FirstContact).
type Curve struct {
	Pieces    int           `json:"pieces"`
	Start     int           `json:"start"`
	Interval  time.Duration `json:"interval_ns"` // 0: never progresses
	StallAt   time.Duration `json:"stall_at_ns,omitempty"`
	StallFor  time.Duration `json:"stall_for_ns,omitempty"`
	RegressAt time.Duration `json:"regress_at_ns,omitempty"`
	RegressBy int           `json:"regress_by,omitempty"`
	Anchored  bool          `json:"anchored,omitempty"`
	// LeaveAt, if positive, is when (on the curve's clock) the peer leaves the swarm: it
	// closes its connections, refuses new ones and stops dialling, like a client that
	// quits soon after it finished. Its crossing, if before, still counts.
	LeaveAt time.Duration `json:"leave_at_ns,omitempty"`
}

// active is the progressing time elapsed by t, with the stall cut out.
func (c Curve) active(t time.Duration) time.Duration {
	if t < 0 {
		return 0
	}
	if c.StallFor <= 0 || t < c.StallAt {
		return t
	}
	if t < c.StallAt+c.StallFor {
		return c.StallAt
	}
	return t - c.StallFor
}

func (c Curve) grown(t time.Duration) int {
	n := c.Start
	if c.Interval > 0 {
		steps := c.active(t) / c.Interval
		if steps > time.Duration(c.Pieces) {
			steps = time.Duration(c.Pieces)
		}
		n += int(steps)
	}
	return min(max(n, 0), c.Pieces)
}

// At is the number of pieces the peer has at swarm time t.
func (c Curve) At(t time.Duration) int {
	if c.RegressBy > 0 && t >= c.RegressAt {
		return max(c.grown(c.RegressAt)-c.RegressBy, 0)
	}
	return c.grown(t)
}

// Next returns the first swarm time after t at which At changes, or false if
// it never changes again.
func (c Curve) Next(t time.Duration) (time.Duration, bool) {
	if t < 0 {
		t = 0
	}
	regress := c.RegressBy > 0
	if regress && t >= c.RegressAt {
		return 0, false
	}
	var next time.Duration
	found := false
	cur := c.grown(t)
	if c.Interval > 0 && cur < c.Pieces {
		// Next step boundary of the active time, mapped back to swarm time.
		a := (c.active(t)/c.Interval + 1) * c.Interval
		if c.StallFor > 0 && a > c.StallAt {
			a += c.StallFor
		}
		next, found = a, true
	}
	if regress && (!found || c.RegressAt < next) {
		next, found = c.RegressAt, true
	}
	if found && next <= t {
		next = t + 1 // defensive: time must advance
	}
	return next, found
}

// PiecesPerSecond is the progressing rate (0 if the peer never progresses).
func (c Curve) PiecesPerSecond() float64 {
	if c.Interval <= 0 {
		return 0
	}
	return float64(time.Second) / float64(c.Interval)
}

// Threshold is the completion threshold in pieces: ceil(fraction × pieces),
// computed in integer millionths of the fraction so that 0.98 × 100 is 98
// (the float product is 98.00000000000001); btda's collector defines it the
// same way, and the truth must agree with it to the piece.
func Threshold(fraction float64, pieces int) int {
	ppm := int64(math.Round(fraction * 1e6))
	return int((ppm*int64(pieces) + 1e6 - 1) / 1e6)
}

// Crossing returns the first swarm time in [0, horizon] at which the curve
// reaches threshold having started below it. It is computed in closed form
// (tests check it against stepping through Next).
func (c Curve) Crossing(threshold int, horizon time.Duration) (time.Duration, bool) {
	if c.At(0) >= threshold || c.Interval <= 0 || threshold > c.Pieces {
		return 0, false
	}
	tc := time.Duration(max(threshold-c.Start, 0)) * c.Interval // active time needed
	if c.StallFor > 0 && tc > c.StallAt {
		tc += c.StallFor
	}
	if c.RegressBy > 0 && tc >= c.RegressAt {
		// The curve is flat from RegressAt on; only a crossing exactly there
		// (regressed value still at or above the threshold) is possible.
		if c.At(c.RegressAt) < threshold || c.RegressAt > horizon {
			return 0, false
		}
		tc = c.RegressAt
	}
	if tc > horizon {
		return 0, false
	}
	return tc, true
}

// Knot is one corner of the piecewise-linear progress curve.
type Knot struct {
	T      time.Duration `json:"t_ns"`
	Pieces int           `json:"pieces"`
}

// Knots lists the corners of the curve up to horizon: between two knots the
// count grows by one piece per Interval (or stays flat), so the truth file can
// describe pieces as a function of time without sampling.
func (c Curve) Knots(horizon time.Duration) []Knot {
	ts := []time.Duration{0}
	if c.StallFor > 0 {
		ts = append(ts, c.StallAt, c.StallAt+c.StallFor)
	}
	if c.Interval > 0 {
		// Time at which the curve reaches Pieces if nothing else happens.
		full := time.Duration(c.Pieces-c.Start) * c.Interval
		if c.StallFor > 0 && full > c.StallAt {
			full += c.StallFor
		}
		ts = append(ts, full)
	}
	if c.RegressBy > 0 {
		ts = append(ts, c.RegressAt)
	}
	ts = append(ts, horizon)
	var out []Knot
	last := time.Duration(-1)
	for _, t := range sortedDurations(ts) {
		if t < 0 || t > horizon || t == last {
			continue
		}
		if c.RegressBy > 0 && t > c.RegressAt && t != horizon {
			continue
		}
		last = t
		out = append(out, Knot{T: t, Pieces: c.At(t)})
	}
	return out
}

func sortedDurations(ts []time.Duration) []time.Duration {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j] < ts[j-1]; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
	return ts
}
