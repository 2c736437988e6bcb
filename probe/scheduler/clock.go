package scheduler

import "time"

// Clock is the scheduler's source of time. It is an interface so that tests can drive the
// scheduler with a fake clock instead of sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a started timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the subset of *time.Timer the scheduler uses.
type Timer interface {
	C() <-chan time.Time
	// ResetAt re-arms the timer to fire at when (an absolute time, so that time passing
	// between computing a deadline and arming the timer cannot delay it). A value of a
	// previous firing that was not received may still arrive; the scheduler treats every
	// wake-up as a hint only.
	ResetAt(when time.Time)
	Stop()
}

// RealClock is the wall clock (with Go's monotonic reading).
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time    { return r.t.C }
func (r realTimer) ResetAt(when time.Time) { r.t.Reset(time.Until(when)) }
func (r realTimer) Stop()                  { r.t.Stop() }
