package probe

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// Bounds of TestListenerMemoryUnderAttack. Before body buffers grew with the bytes that
// arrived, each of these connections held a 1 MiB buffer: ~1 GiB for ~74 KB of traffic.
const (
	attackConns     = 1000
	attackClaim     = 1 << 20  // the extended message length each connection announces
	attackHeapBound = 64 << 20 // live heap growth allowed while all of them are held open
)

// attackListener counts, per accepted connection, whether the server side has asked for
// more bytes after reading the handshake and the 5-byte message header: by then the
// session's decoder has read the header and made whatever buffer it makes for the body.
type attackListener struct {
	net.Listener
	waiting atomic.Int64 // connections blocked reading the announced body
}

func (l *attackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &attackConn{Conn: c, l: l}, nil
}

type attackConn struct {
	net.Conn
	l       *attackListener
	read    atomic.Int64
	counted atomic.Bool
}

func (c *attackConn) Read(p []byte) (int, error) {
	if c.read.Load() >= int64(wire.HandshakeLen+5) && c.counted.CompareAndSwap(false, true) {
		c.l.waiting.Add(1)
	}
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// TestListenerMemoryUnderAttack is the regression test for unbounded memory under attack
// (issue 14): attackConns connections to a real Listener each send a valid handshake for a
// watched torrent, then a header announcing a 1 MiB extended message, and nothing more.
// While all of them are held open the live heap may grow by at most attackHeapBound; once
// they are closed, every session ends, no goroutine is left and the budget is whole again.
// It waits on counts, never on time (the deadlines are liveness bounds only).
func TestListenerMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if need := uint64(2*attackConns + 200); rl.Cur < need {
		rl.Cur = min(rl.Max, need)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < need {
			t.Skipf("open-file limit %d is below the %d this test needs (%v)", rl.Cur, need, err)
		}
	}
	baseGoroutines := runtime.NumGoroutine()

	// Long timeouts: no session may end on its own while the heap is measured.
	budget := wire.NewBudget(DefaultBufferBudget)
	p, err := NewProber(SessionConfig{Version: "test", HandshakeTimeout: 5 * time.Minute,
		QuietWindow: 5 * time.Minute, SessionCap: 10 * time.Minute, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	var delivered atomic.Int64
	var outcomes sync.Map // Outcome → *atomic.Int64
	l, err := NewListener(p, ListenerConfig{
		Lookup: func(h metainfo.Hash) (int, bool) { return n, h == testHash },
		Deliver: func(o Observation) {
			c, _ := outcomes.LoadOrStore(o.Outcome, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
			delivered.Add(1)
		},
		HandshakeTimeout: 5 * time.Minute, MaxPerIP: attackConns, MaxTotal: attackConns,
	})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &attackListener{Listener: inner}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx, ln) }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	defer stop()

	// waitFor polls cond; the deadline only keeps a broken build from hanging.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}

	before := heap()
	attack := wire.AppendHandshake(nil, wire.Handshake{InfoHash: testHash, PeerID: pid("-XX0001-attackattack")})
	attack = binary.BigEndian.AppendUint32(attack, attackClaim)
	attack = append(attack, byte(wire.Extended))
	conns := make([]net.Conn, 0, attackConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: time.Minute}
	for range attackConns {
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := c.Write(attack); err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
	}
	waitFor("the listener to accept every connection", func() bool {
		return l.Stats().Sessions == attackConns
	})
	waitFor("every session to wait for its announced body", func() bool {
		return ln.waiting.Load() == attackConns
	})
	held := heap()
	growth := int64(held) - int64(before)
	t.Logf("%d connections each announcing %d bytes: live heap %d → %d MiB (%+.1f KiB per connection, both ends); budget in use %d",
		attackConns, attackClaim, before>>20, held>>20, float64(growth)/1024/attackConns, budget.Used())
	if growth > attackHeapBound {
		t.Errorf("live heap grew by %d MiB while %d connections held a 1 MiB header each, want at most %d MiB",
			growth>>20, attackConns, attackHeapBound>>20)
	}
	if delivered.Load() != 0 {
		t.Errorf("%d sessions ended while the connections were held open", delivered.Load())
	}

	// Closing ends every session (the body never came: reset), and nothing is left.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor("every session to end", func() bool { return delivered.Load() == attackConns })
	if c, ok := outcomes.Load(OutcomeReset); !ok || c.(*atomic.Int64).Load() != attackConns {
		outcomes.Range(func(k, v any) bool {
			t.Errorf("outcome %v: %d sessions", k, v.(*atomic.Int64).Load())
			return true
		})
		t.Errorf("want all %d sessions to end in %v", attackConns, OutcomeReset)
	}
	if u := budget.Used(); u != 0 {
		t.Errorf("budget %d bytes still in use after every session ended", u)
	}
	stop()
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseGoroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutine leak: %d before, %d after\n%s", baseGoroutines, g, buf[:runtime.Stack(buf, true)])
	}
}
