package scheduler

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// safety bounds a wait that should end at once; hitting it is a failure, not a timing check.
const safety = 30 * time.Second

// checkGoroutines fails the test if goroutines started during it are still running.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(safety)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// eventually polls cond until it holds; giving up after the safety bound fails the test.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

func startRun(t *testing.T, s *Scheduler) (cancel func(), done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- s.Run(ctx) }()
	return cancel, ch
}

func waitRun(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(safety):
		t.Fatal("Run did not return")
	}
}

func TestRunBoundsAndOneConnectionPerIP(t *testing.T) {
	checkGoroutines(t)
	const limit, ips, perIP = 7, 40, 6
	var (
		cur, peak atomic.Int32
		mu        sync.Mutex
		byIP      = map[netip.Addr]int{}
		visits    = map[string]int{}
		errs      []string
		gate      = make(chan struct{})
		results   = make(chan struct{}, ips*perIP)
	)
	probeFn := func(ctx context.Context, tg Target) probe.Observation {
		n := cur.Add(1)
		for p := peak.Load(); n > p; p = peak.Load() { // peak = max(peak, n) under races
			if peak.CompareAndSwap(p, n) {
				break
			}
		}
		mu.Lock()
		byIP[tg.Addr.Addr()]++
		if byIP[tg.Addr.Addr()] > 1 {
			errs = append(errs, fmt.Sprintf("two sessions to %v", tg.Addr.Addr()))
		}
		visits[fmt.Sprintf("%v/%x", tg.Addr, tg.Torrent[0])]++
		mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
		}
		mu.Lock()
		byIP[tg.Addr.Addr()]--
		mu.Unlock()
		cur.Add(-1)
		return probe.Observation{Torrent: tg.Torrent, Addr: tg.Addr, Outcome: probe.OutcomeOK}
	}
	clk := newFakeClock()
	s, err := New(Config{Probe: probeFn, Clock: clk, MaxInFlight: limit,
		OnResult: func(Target, probe.Observation) { results <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.AddTorrent(hash(i), 10); err != nil {
			t.Fatal(err)
		}
	}
	cancel, done := startRun(t, s)
	defer cancel()
	// Two sources add at once, as the daemon's filter stage and the listener would.
	var adders sync.WaitGroup
	for half := range 2 {
		adders.Go(func() {
			for i := range ips {
				for j := half; j < perIP; j += 2 {
					s.Add(discovery.Sighting{Torrent: hash(j % 3), Addr: ap(fmt.Sprintf("10.0.%d.1:%d", i, 1+j/3)), Source: discovery.SourceDHT})
				}
			}
		})
	}
	for range ips * perIP {
		select {
		case gate <- struct{}{}:
		case <-time.After(safety):
			t.Fatalf("stuck: stats %+v", s.Stats())
		}
		<-results
	}
	adders.Wait()
	// OnResult runs before the slot is freed: wait for the last one.
	eventually(t, func() bool { return s.Stats().InFlight == 0 })
	if st := s.Stats(); st.SessionsStarted != ips*perIP || st.WaitingIP != 0 || st.Queued != ips*perIP {
		t.Errorf("stats after all sessions: %+v", st)
	}
	cancel()
	waitRun(t, done)
	if p := peak.Load(); p > limit || p < 1 {
		t.Errorf("peak concurrency %d, limit %d", p, limit)
	}
	for _, e := range errs {
		t.Error(e)
	}
	if len(visits) != ips*perIP {
		t.Errorf("%d peers probed, want %d", len(visits), ips*perIP)
	}
	for k, n := range visits {
		if n != 1 {
			t.Errorf("%s probed %d times", k, n)
		}
	}
}

func TestRunRevisitsOnTimer(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	results := make(chan Target, 10)
	s, err := New(Config{Clock: clk, RevisitDelay: time.Minute,
		Probe: func(_ context.Context, tg Target) probe.Observation {
			return probe.Observation{Torrent: tg.Torrent, Addr: tg.Addr, Outcome: probe.OutcomeOK}
		},
		OnResult: func(tg Target, _ probe.Observation) { results <- tg }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddTorrent(hash(0), 10); err != nil {
		t.Fatal(err)
	}
	cancel, done := startRun(t, s)
	defer cancel()
	s.Add(discovery.Sighting{Torrent: hash(0), Addr: ap("127.0.0.1:1"), Source: discovery.SourceTracker})
	for visit := range 3 {
		select {
		case tg := <-results:
			if tg.Revisit != (visit > 0) {
				t.Errorf("visit %d: revisit %v", visit, tg.Revisit)
			}
		case <-time.After(safety):
			t.Fatalf("visit %d never came: %+v", visit, s.Stats())
		}
		// OnResult runs before the peer is rescheduled: wait for that, then let time pass.
		eventually(t, func() bool { st := s.Stats(); return st.InFlight == 0 && st.Queued == 1 })
		clk.Advance(time.Minute)
	}
	cancel()
	waitRun(t, done)
}

func TestRunShutdownGrace(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	const grace = 5 * time.Second
	release, quickDone := make(chan struct{}), make(chan struct{})
	started := make(chan Target, 2)
	var quickErr, slowErr atomic.Value
	s, err := New(Config{Clock: clk, ShutdownGrace: grace,
		Probe: func(ctx context.Context, tg Target) probe.Observation {
			started <- tg
			if tg.Addr.Port() == 1 { // quick: ends on its own during the grace period
				<-release
				quickErr.Store(fmt.Sprint(ctx.Err()))
				close(quickDone)
			} else { // slow: ends only when its context is cancelled
				<-ctx.Done()
				slowErr.Store(fmt.Sprint(ctx.Err()))
			}
			return probe.Observation{Torrent: tg.Torrent, Addr: tg.Addr, Outcome: probe.OutcomeOK}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddTorrent(hash(0), 10); err != nil {
		t.Fatal(err)
	}
	cancel, done := startRun(t, s)
	s.Add(discovery.Sighting{Torrent: hash(0), Addr: ap("127.0.0.1:1"), Source: discovery.SourceTracker})
	s.Add(discovery.Sighting{Torrent: hash(0), Addr: ap("127.0.0.2:2"), Source: discovery.SourceTracker})
	for range 2 {
		<-started
	}
	for len(clk.armed) > 0 { // forget earlier armings
		<-clk.armed
	}
	cancel()
	for d := range clk.armed { // the grace timer exists
		if d == grace {
			break
		}
	}
	close(release)
	<-quickDone
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with a session still running", err)
	default:
	}
	s.Add(discovery.Sighting{Torrent: hash(0), Addr: ap("127.0.0.3:3"), Source: discovery.SourceTracker})
	clk.Advance(grace)
	waitRun(t, done)
	if q, sl := quickErr.Load(), slowErr.Load(); q != "<nil>" || sl != context.Canceled.Error() {
		t.Errorf("quick session saw %v, slow one %v", q, sl)
	}
	if st := s.Stats(); st.SessionsStarted != 2 || st.InFlight != 0 {
		t.Errorf("stats after shutdown: %+v", st)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}
