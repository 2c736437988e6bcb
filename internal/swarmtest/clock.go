package swarmtest

import (
	"sync"
	"time"
)

// Clock is the swarm's time source. Peers compute progress from it, so a test
// that injects a ManualClock knows the exact truth at every instant.
type Clock interface {
	Now() time.Time
	// At returns a channel closed once Now() >= t, and a stop function that
	// releases the timer (safe to call more than once).
	At(t time.Time) (<-chan struct{}, func())
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// At fires at wall time t.
func (RealClock) At(t time.Time) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	d := time.Until(t)
	if d <= 0 {
		close(ch)
		return ch, func() {}
	}
	tm := time.AfterFunc(d, func() { close(ch) })
	return ch, func() { tm.Stop() }
}

// ManualClock only moves when Advance or Set is called. Tests use it to read
// peers at exact swarm times.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[*manualWaiter]struct{}
}

type manualWaiter struct {
	at time.Time
	ch chan struct{}
}

// NewManualClock starts at t.
func NewManualClock(t time.Time) *ManualClock {
	return &ManualClock{now: t, waiters: map[*manualWaiter]struct{}{}}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At fires once the clock has been moved to t or later.
func (c *ManualClock) At(t time.Time) (<-chan struct{}, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &manualWaiter{at: t, ch: make(chan struct{})}
	if !c.now.Before(t) {
		close(w.ch)
		return w.ch, func() {}
	}
	c.waiters[w] = struct{}{}
	return w.ch, func() {
		c.mu.Lock()
		delete(c.waiters, w)
		c.mu.Unlock()
	}
}

// Advance moves the clock forward by d and fires every timer now due.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	t := c.now.Add(d)
	c.mu.Unlock()
	c.Set(t)
}

// Set moves the clock to t (never backwards) and fires every timer now due.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		return
	}
	c.now = t
	for w := range c.waiters {
		if !t.Before(w.at) {
			close(w.ch)
			delete(c.waiters, w)
		}
	}
}
