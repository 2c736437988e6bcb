package probe

import (
	"bufio"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btda/btda/probe/wire"
)

// Idle sessions end after the grace window, not the quiet window; peers that move, or
// have not reported, still get the quiet window. (QuietWindow is long here: a session that
// ends before it proves the grace ended it, with no timing assertion.)
func TestIdleGrace(t *testing.T) {
	checkGoroutines(t)
	const pieces = 64
	cases := []struct {
		name      string
		script    func(p *peerConn)
		quiet     time.Duration
		outcome   Outcome
		first     int
		last      int
		endsEarly bool
	}{
		{"seed ends early", func(p *peerConn) {
			p.send(wire.Message{Type: wire.HaveAll})
			p.readFor(8 * time.Second)
		}, time.Minute, OutcomeOK, pieces, pieces, true},
		{"leecher not moving ends early", func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1, 2, 3)})
			p.readFor(8 * time.Second)
		}, time.Minute, OutcomeOK, 3, 3, true},
		{"lazy haves back to back are part of the report", func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1, 2, 3)})
			p.send(have(10))
			p.send(have(11))
			p.readFor(8 * time.Second)
		}, time.Minute, OutcomeOK, 5, 5, true},
		{"a have after the report is movement: the quiet window applies", func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1, 2, 3)})
			time.Sleep(600 * time.Millisecond) // > settleGap, < IdleGrace
			p.send(have(10))
			p.readFor(8 * time.Second)
		}, 2 * time.Second, OutcomeOK, 3, 4, false},
		{"no report: the quiet window applies", func(p *peerConn) {
			p.readFor(8 * time.Second)
		}, 2 * time.Second, OutcomeNoProgress, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := startPeer(t, func(p *peerConn) {
				p.readHandshake()
				p.handshake(fastExt, testHash, "-TR3000-000000000000")
				tc.script(p)
			})
			cfg := testConfig()
			cfg.QuietWindow, cfg.SessionCap = tc.quiet, 2*time.Minute
			o := probeOnce(t, cfg, addr, pieces)
			if o.Outcome != tc.outcome || o.First.Pieces != tc.first || o.Last.Pieces != tc.last {
				t.Fatalf("outcome %v first %+v last %+v", o.Outcome, o.First, o.Last)
			}
			if tc.endsEarly && o.Timings.Total >= tc.quiet {
				t.Fatalf("session lasted %v, the quiet window", o.Timings.Total)
			}
		})
	}
}

// TestIdleGraceOff: a negative IdleGrace waits out the quiet window as before.
func TestIdleGraceOff(t *testing.T) {
	addr := startPeer(t, func(p *peerConn) {
		p.readHandshake()
		p.handshake(fastExt, testHash, "")
		p.send(wire.Message{Type: wire.HaveAll})
		p.readFor(5 * time.Second)
	})
	cfg := testConfig()
	cfg.IdleGrace, cfg.QuietWindow = -1, 1500*time.Millisecond
	if o := probeOnce(t, cfg, addr, 64); o.Outcome != OutcomeOK || o.Timings.Total < cfg.QuietWindow {
		t.Fatalf("outcome %v after %v", o.Outcome, o.Timings.Total)
	}
}

// A downloading peer below the threshold is held past the quiet window and the session
// ends with the crossing read on the wire.
func TestWatchHoldsUntilCrossing(t *testing.T) {
	checkGoroutines(t)
	const pieces, threshold = 64, 10
	cases := []struct {
		name   string
		script func(p *peerConn)
		prev   func(now time.Time) Point
	}{
		{"moved during the session", func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1, 2, 3, 4, 5)})
			time.Sleep(400 * time.Millisecond)
			p.send(have(6))                     // 6 pieces: movement
			time.Sleep(1500 * time.Millisecond) // past the quiet window: held
			for i := 7; i <= 10; i++ {
				p.send(have(i))
				time.Sleep(100 * time.Millisecond)
			}
			p.readFor(5 * time.Second)
		}, func(time.Time) Point { return Point{} }},
		{"moved since the previous point", func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1, 2, 3, 4, 5, 6)})
			time.Sleep(2 * time.Second) // past the idle grace: held
			for i := 7; i <= 10; i++ {
				p.send(have(i))
			}
			p.readFor(5 * time.Second)
		}, func(now time.Time) Point { return Point{Pieces: 2, At: now.Add(-time.Minute)} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := startPeer(t, func(p *peerConn) {
				p.readHandshake()
				p.handshake(fastExt, testHash, "-TR3000-000000000000")
				tc.script(p)
			})
			cfg := testConfig()
			cfg.QuietWindow = time.Second
			w := NewWatcher(WatchConfig{Budget: 1, Silence: 5 * time.Second})
			cfg.Watch = w
			p, err := NewProber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var held atomic.Int32
			var interim Observation
			o := p.Probe(context.Background(), Target{Torrent: testHash, Pieces: pieces, Addr: addr,
				Watch:  WatchInfo{Threshold: threshold, Prev: tc.prev(time.Now())},
				OnHold: func(in Observation) { held.Add(1); interim = in }})
			if !interim.Interim || !interim.Known || interim.Outcome != OutcomeOK || interim.Last.Pieces >= threshold ||
				interim.Last.Pieces < 6 || len(interim.Bitfield) == 0 {
				t.Errorf("interim report %+v", interim)
			}
			if o.Outcome != OutcomeOK || !o.Held || held.Load() != 1 || o.Last.Pieces != threshold || o.First.Pieces >= threshold {
				t.Fatalf("outcome %v held %v (%d) first %+v last %+v", o.Outcome, o.Held, held.Load(), o.First, o.Last)
			}
			if w.Held() != 0 {
				t.Fatalf("%d connections still held", w.Held())
			}
		})
	}
}

// Peers that are not downloading, or not below the threshold, are never held; a held
// peer that falls silent is let go.
func TestWatchNotHeld(t *testing.T) {
	checkGoroutines(t)
	const pieces = 64
	cases := []struct {
		name   string
		ext    wire.ExtHandshake
		script func(p *peerConn)
		thr    int
		held   bool
	}{
		{"not downloading", wire.ExtHandshake{}, func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1, 2)})
			p.readFor(4 * time.Second)
		}, 10, false},
		{"threshold unknown", wire.ExtHandshake{}, func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1)})
			time.Sleep(400 * time.Millisecond)
			p.send(have(2))
			p.readFor(4 * time.Second)
		}, 0, false},
		{"partial seed", wire.ExtHandshake{UploadOnly: true}, func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1)})
			time.Sleep(400 * time.Millisecond)
			p.send(have(2))
			p.readFor(4 * time.Second)
		}, 10, false},
		{"held, then silent", wire.ExtHandshake{}, func(p *peerConn) {
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(pieces, 1)})
			time.Sleep(400 * time.Millisecond)
			p.send(have(2))
			p.readFor(6 * time.Second)
		}, 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := startPeer(t, func(p *peerConn) {
				p.readHandshake()
				p.handshake(fastExt, testHash, "-TR3000-000000000000")
				tc.ext.Reqq, tc.ext.MetadataSize, tc.ext.CompleteAgo = -1, -1, -1
				p.extHandshake(tc.ext)
				tc.script(p)
			})
			cfg := testConfig()
			cfg.QuietWindow = time.Second
			cfg.Watch = NewWatcher(WatchConfig{Budget: 5, Silence: time.Second})
			p, err := NewProber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			o := p.Probe(context.Background(), Target{Torrent: testHash, Pieces: pieces, Addr: addr,
				Watch: WatchInfo{Threshold: tc.thr}})
			if o.Outcome != OutcomeOK || o.Held != tc.held {
				t.Fatalf("outcome %v held %v, want held %v", o.Outcome, o.Held, tc.held)
			}
		})
	}
}

// The budget goes to the peers closest to their threshold.
func TestWatcherBudget(t *testing.T) {
	w := NewWatcher(WatchConfig{Budget: 2})
	var woken []string
	wake := func(name string) func() { return func() { woken = append(woken, name) } }
	a := w.acquire(10*time.Minute, wake("a"))
	b := w.acquire(5*time.Minute, wake("b"))
	if a == nil || b == nil || w.Held() != 2 {
		t.Fatal("budget of 2 not granted")
	}
	if c := w.acquire(20*time.Minute, wake("c")); c != nil {
		t.Fatal("a peer farther than every held one took a place")
	}
	d := w.acquire(time.Minute, wake("d"))
	if d == nil || !a.evicted.Load() || b.evicted.Load() || len(woken) != 1 || woken[0] != "a" || w.Held() != 2 {
		t.Fatalf("closer peer: got %v, evicted a %v b %v, woken %v", d != nil, a.evicted.Load(), b.evicted.Load(), woken)
	}
	w.release(a) // an evicted hold's release is harmless
	w.release(b)
	w.release(d)
	if w.Held() != 0 {
		t.Fatalf("held %d after release", w.Held())
	}
	if none := NewWatcher(WatchConfig{Budget: -1}); none.acquire(0, func() {}) != nil || none.Budget() != 0 {
		t.Fatal("negative budget holds connections")
	}
	var nilW *Watcher
	if nilW.Held() != 0 || nilW.Budget() != 0 {
		t.Fatal("nil watcher")
	}
}

func TestETA(t *testing.T) {
	t0 := time.Unix(1000, 0)
	obs := func(first, last int, dt time.Duration) *Observation {
		return &Observation{Known: true, First: Point{first, t0}, Last: Point{last, t0.Add(dt)}}
	}
	cases := []struct {
		name  string
		o     *Observation
		moved bool
		thr   int
		prev  Point
		want  time.Duration
		ok    bool
	}{
		{"in-session speed", obs(10, 20, 10*time.Second), true, 50, Point{}, 30 * time.Second, true},
		{"speed since prev", obs(20, 20, time.Second), false, 50, Point{10, t0.Add(-9 * time.Second)}, 30 * time.Second, true},
		{"no movement", obs(20, 20, time.Second), false, 50, Point{}, 0, false},
		{"prev not lower", obs(20, 20, time.Second), false, 50, Point{20, t0.Add(-time.Minute)}, 0, false},
		{"at threshold", obs(40, 50, time.Second), true, 50, Point{}, 0, false},
		{"no threshold", obs(40, 45, time.Second), true, 0, Point{}, 0, false},
		{"glacial", obs(0, 1, 1000*time.Hour), true, 1 << 20, Point{}, 1000 * time.Hour, true},
	}
	for _, tc := range cases {
		got, ok := eta(tc.o, tc.moved, tc.thr, tc.prev)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: eta %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// Held connections take at most an eighth of the descriptor limit, and Shed frees the one
// farthest from its threshold.
func TestWatcherDescriptors(t *testing.T) {
	w := NewWatcher(WatchConfig{Budget: 100})
	w.fdLimit = func() int { return 16 } // room for 2
	var woken int
	wake := func() { woken++ }
	a, b := w.acquire(time.Minute, wake), w.acquire(2*time.Minute, wake)
	if a == nil || b == nil || w.acquire(3*time.Minute, wake) != nil {
		t.Fatal("the descriptor share is not 2")
	}
	w.Shed()
	if !b.evicted.Load() || a.evicted.Load() || woken != 1 || w.Held() != 1 {
		t.Fatalf("shed: a %v b %v woken %d held %d", a.evicted.Load(), b.evicted.Load(), woken, w.Held())
	}
	w.fdLimit = func() int { return 0 } // unknown: the budget alone
	for range 99 {
		if w.acquire(time.Second, wake) == nil {
			t.Fatal("budget not granted")
		}
	}
	var nilW *Watcher
	nilW.Shed()
}

// Incoming sessions are held exactly as outgoing ones when the listener has Watch: the
// peer that reached us and downloads is held past the quiet window until its crossing, its
// hold is reported once, and it leaves the listener's total cap while held. One that Watch
// refuses (the caller visits it itself) or a listener without Watch ends as before.
func TestListenerHoldsIncoming(t *testing.T) {
	checkGoroutines(t)
	const threshold = 10 // of n pieces
	cases := []struct {
		name   string
		watch  bool // the listener has Watch
		ok     bool // Watch's answer
		held   bool
		pieces int // the last point
	}{
		{"held until the crossing", true, true, true, threshold},
		{"refused by Watch", true, false, false, 6},
		{"listener without Watch", false, false, false, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.QuietWindow = time.Second
			w := NewWatcher(WatchConfig{Budget: 1, Silence: 5 * time.Second})
			cfg.Watch = w
			var asked, holds atomic.Int32
			var port atomic.Uint32
			var interim Observation
			lc := ListenerConfig{MaxTotal: 1}
			if tc.watch {
				lc.Watch = func(o *Observation) (WatchInfo, bool) {
					asked.Add(1)
					port.Store(uint32(o.ListenPort))
					return WatchInfo{Threshold: threshold}, tc.ok
				}
				lc.OnHold = func(in Observation) { holds.Add(1); interim = in }
			}
			l, addr, obs, stop := testListener(t, cfg, lc)

			c := dialFrom(t, addr, "127.0.0.1")
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			sendHandshake(t, c, testHash, fastExt)
			br := bufio.NewReader(c)
			if _, err := wire.ReadHandshake(br, nil); err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = io.Copy(io.Discard, br) }() // btda's messages, keep-alives
			write := func(ms ...wire.Message) {
				var b []byte
				for _, m := range ms {
					b = wire.AppendMessage(b, m)
				}
				_, _ = c.Write(b)
			}
			ext, _ := wire.AppendExtHandshake(nil, wire.ExtHandshake{P: 6999, Reqq: -1, MetadataSize: -1, CompleteAgo: -1})
			write(wire.Message{Type: wire.Extended, Payload: ext},
				wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 1, 2, 3, 4, 5)})
			time.Sleep(400 * time.Millisecond) // > settleGap: the have is movement
			write(have(6))
			var o Observation
			if tc.held {
				// Past the quiet window it is held (a bounded wait, no timing assertion); the
				// listener gives back its MaxTotal place before OnHold, after the Watcher
				// counts it held.
				for deadline := time.Now().Add(10 * time.Second); (w.Held() == 0 || holds.Load() == 0) && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				// Held: its MaxTotal place is free, so a second peer gets a session.
				c2 := dialFrom(t, addr, "127.0.0.2")
				sendHandshake(t, c2, testHash, fastExt)
				if _, err := wire.ReadHandshake(bufio.NewReader(c2), nil); err != nil {
					t.Fatalf("a second peer while one is held: %v (over the total cap?)", err)
				}
				c2.Close()
				<-obs // its session
				for i := 7; i <= threshold; i++ {
					write(have(i))
				}
			}
			o = <-obs // held: at the crossing; else at the quiet window
			_ = c.Close()
			if o.Outcome != OutcomeOK || o.Held != tc.held || o.Last.Pieces != tc.pieces || o.ListenPort != 6999 {
				t.Fatalf("outcome %v held %v last %+v port %d", o.Outcome, o.Held, o.Last, o.ListenPort)
			}
			if tc.watch && (asked.Load() != 1 || port.Load() != 6999) {
				t.Fatalf("Watch asked %d times, with port %d", asked.Load(), port.Load())
			}
			if tc.held != (holds.Load() == 1) || holds.Load() > 1 {
				t.Fatalf("OnHold called %d times", holds.Load())
			}
			if tc.held && (!interim.Interim || !interim.Known || interim.Direction != Incoming || interim.Last.Pieces != 6) {
				t.Fatalf("interim report %+v", interim)
			}
			stop()
			if w.Held() != 0 {
				t.Fatalf("%d connections still held", w.Held())
			}
			l.mu.Lock()
			total, perIP := l.total, len(l.perIP)
			l.mu.Unlock()
			if total != 0 || perIP != 0 {
				t.Fatalf("listener counts %d connections (%d IPs) after every one ended", total, perIP)
			}
		})
	}
}
