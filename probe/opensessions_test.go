package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// TestOpenSessions holds many probe sessions open at once against peers in a separate
// process (probe/internal/holdpeers) and reports the peak number of concurrent sessions
// and this process's peak RSS. It is a load check, not a unit test: it runs only with
// BTDA_BENCH_OPEN_SESSIONS=1 (BTDA_OPEN_SESSIONS sets the count, default 15000):
//
//	unshare -n sh -c 'ip link set lo up; BTDA_BENCH_OPEN_SESSIONS=1 go test -run TestOpenSessions -v -timeout 10m ./probe/'
func TestOpenSessions(t *testing.T) {
	if os.Getenv("BTDA_BENCH_OPEN_SESSIONS") != "1" {
		t.Skip("set BTDA_BENCH_OPEN_SESSIONS=1 to run the open-sessions load check")
	}
	total := 15000
	if s := os.Getenv("BTDA_OPEN_SESSIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("BTDA_OPEN_SESSIONS=%q: want a positive count", s)
		}
		total = n
	}
	const (
		pieces    = 1000
		quiet     = 30 * time.Second // long enough for every session to be open at once
		dialConc  = 256              // connects in flight (the listen backlog is finite)
		listeners = 4                // 127.0.0.2-5: spreads the 4-tuples
	)
	raiseNoFile(t, total)
	hp := startHoldpeers(t, listeners, pieces, 3*time.Minute)
	peers, stdin, sc := hp.peers, hp.stdin, hp.sc

	// Count open connections through the dial hook: a session is open from a successful
	// dial to its Close.
	var open, peak atomic.Int64
	sem := make(chan struct{}, dialConc)
	var d net.Dialer
	cfg := SessionConfig{Version: "bench", QuietWindow: quiet, SessionCap: 2 * quiet,
		DialTimeout: 30 * time.Second, HandshakeTimeout: 30 * time.Second,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			c, err := d.DialContext(ctx, network, addr)
			<-sem
			if err != nil {
				return nil, err
			}
			n := open.Add(1)
			for p := peak.Load(); n > p; p = peak.Load() { // peak = max(peak, n) under races
				if peak.CompareAndSwap(p, n) {
					break
				}
			}
			return &countedConn{Conn: c, open: &open}, nil
		}}
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hash := metainfo.Hash{0xB7, 0xDA}
	outcomes := make(map[Outcome]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	var wrong atomic.Int64
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := p.Probe(context.Background(), Target{Torrent: hash, Pieces: pieces, Addr: peers[i%len(peers)]})
			if o.Outcome == OutcomeOK && o.Last.Pieces != pieces/2 {
				wrong.Add(1)
			}
			mu.Lock()
			outcomes[o.Outcome]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	hwm, rss := procStatus(t, "VmHWM"), procStatus(t, "VmRSS")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	stdin.Close() // holdpeers reports and exits
	var tail []string
	for sc.Scan() {
		tail = append(tail, sc.Text())
	}
	t.Logf("%d sessions in %v; peak %d open at once; outcomes %v; holdpeers: %v", total, elapsed.Round(time.Millisecond), peak.Load(), outcomes, tail)
	t.Logf("prober process: VmHWM %d MiB, VmRSS after %d MiB; Go heap sys %d MiB, total sys %d MiB",
		hwm>>10, rss>>10, ms.HeapSys>>20, ms.Sys>>20)
	if outcomes[OutcomeOK] != total || wrong.Load() != 0 {
		t.Errorf("want %d ok sessions each reading %d pieces; outcomes %v, %d wrong counts", total, pieces/2, outcomes, wrong.Load())
	}
	if peak.Load() != int64(total) {
		t.Errorf("peak %d sessions open at once, want all %d", peak.Load(), total)
	}
	if hwm > 1<<20 { // KiB
		t.Errorf("peak RSS %d MiB, above the 1 GiB budget", hwm>>10)
	}
}

// holdpeersProc is a running probe/internal/holdpeers.
type holdpeersProc struct {
	peers []netip.AddrPort
	stdin io.Closer
	sc    *bufio.Scanner
}

// raiseNoFile raises RLIMIT_NOFILE to the hard limit and fails unless n sockets fit.
func raiseNoFile(t *testing.T, n int) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < uint64(n)+256 {
		t.Fatalf("RLIMIT_NOFILE hard limit %d is too low for %d sessions", rl.Max, n)
	}
}

// startHoldpeers builds and starts holdpeers on 127.0.0.2 onwards (one listener each),
// sending a bitfield of pieces (the first half set) and holding connections up to hold.
func startHoldpeers(t *testing.T, listeners, pieces int, hold time.Duration, extra ...string) holdpeersProc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "holdpeers")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/holdpeers").CombinedOutput(); err != nil {
		t.Fatalf("building holdpeers: %v\n%s", err, out)
	}
	var addrs []string
	for i := range listeners {
		addrs = append(addrs, fmt.Sprintf("127.0.0.%d:0", i+2))
	}
	args := append([]string{"-listen", strings.Join(addrs, ","), "-pieces", strconv.Itoa(pieces), "-hold", hold.String()}, extra...)
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var peers []netip.AddrPort
	for sc.Scan() && sc.Text() != "ready" {
		if a, ok := strings.CutPrefix(sc.Text(), "listen "); ok {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				t.Fatal(err)
			}
			peers = append(peers, ap)
		}
	}
	if len(peers) != listeners {
		t.Fatalf("holdpeers listening on %v", peers)
	}
	return holdpeersProc{peers: peers, stdin: stdin, sc: sc}
}

// countedConn decrements the open counter once, on the first Close.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// procStatus reads a kB field of /proc/self/status.
func procStatus(t *testing.T, field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatalf("/proc/self/status has no %s", field)
	return 0
}

// TestHeldSessions holds many sessions open through a Watcher, as btda holds downloading
// peers (probe.watch_budget), against holdpeers in a separate process, and reports this
// process's RSS with all of them held. Each target's previous point (10 pieces fewer a
// minute ago) and threshold (10 pieces above what the peer reports) give an estimated
// crossing a minute away, so every session is held once its idle grace passes. Env-gated
// like TestOpenSessions (BTDA_HELD_SESSIONS sets the count, default 15000):
//
//	unshare -n sh -c 'ip link set lo up; BTDA_BENCH_HELD_SESSIONS=1 go test -count=1 -run TestHeldSessions -v -timeout 10m ./probe/'
func TestHeldSessions(t *testing.T) {
	if os.Getenv("BTDA_BENCH_HELD_SESSIONS") != "1" {
		t.Skip("set BTDA_BENCH_HELD_SESSIONS=1 to run the held-sessions load check")
	}
	total := 15000
	if s := os.Getenv("BTDA_HELD_SESSIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("BTDA_HELD_SESSIONS=%q: want a positive count", s)
		}
		total = n
	}
	const (
		pieces    = 1000
		dialConc  = 256
		listeners = 4
		hold      = 10 * time.Minute // the Watcher's Max and Silence: no hold ends on its own
	)
	raiseNoFile(t, total)
	hp := startHoldpeers(t, listeners, pieces, 2*hold)
	base := procStatus(t, "VmRSS")

	sem := make(chan struct{}, dialConc)
	var d net.Dialer
	w := NewWatcher(WatchConfig{Budget: total, Max: hold, Silence: hold})
	w.fdLimit = func() int { return 0 } // the budget alone: btda takes limit/fdShare
	p, err := NewProber(SessionConfig{Version: "bench", Watch: w,
		DialTimeout: 30 * time.Second, HandshakeTimeout: 30 * time.Second,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { <-sem }()
			return d.DialContext(ctx, network, addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hash := metainfo.Hash{0xB7, 0xDA}
	var held atomic.Int64
	outcomes := make(map[Outcome]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := p.Probe(ctx, Target{Torrent: hash, Pieces: pieces, Addr: hp.peers[i%len(hp.peers)],
				Watch:  WatchInfo{Threshold: pieces/2 + 10, Prev: Point{Pieces: pieces/2 - 10, At: time.Now().Add(-time.Minute)}},
				OnHold: func(Observation) { held.Add(1) }})
			mu.Lock()
			outcomes[o.Outcome]++
			mu.Unlock()
		}()
	}
	deadline := time.Now().Add(5 * time.Minute)
	// Until every session is held, or ended without a hold (then what is held is measured).
	for held.Load()+int64(sumOutcomes(&mu, outcomes)) < int64(total) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	runtime.GC()
	rss, hwm := procStatus(t, "VmRSS"), procStatus(t, "VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	nHeld, gauge, goroutines := held.Load(), w.Held(), runtime.NumGoroutine()
	cancel()
	wg.Wait()
	hp.stdin.Close()
	var tail []string
	for hp.sc.Scan() {
		tail = append(tail, hp.sc.Text())
	}
	t.Logf("%d sessions, %d held (Watcher.Held %d) after %v; outcomes after cancelling %v; holdpeers: %v",
		total, nHeld, gauge, took.Round(time.Millisecond), outcomes, tail)
	t.Logf("process with all held: VmRSS %d MiB (%d MiB before the sessions), VmHWM %d MiB; %.1f KiB RSS per held connection; "+
		"Go heap in use %d MiB, stacks %d MiB, total sys %d MiB; goroutines %d",
		rss>>10, base>>10, hwm>>10, float64(rss-base)/float64(max(nHeld, 1)),
		ms.HeapInuse>>20, ms.StackInuse>>20, ms.Sys>>20, goroutines)
	if nHeld != int64(total) {
		t.Errorf("%d of %d sessions held", nHeld, total)
	}
	if hwm > 1<<20 { // KiB
		t.Errorf("peak RSS %d MiB, above the 1 GiB budget", hwm>>10)
	}
}

func sumOutcomes(mu *sync.Mutex, m map[Outcome]int) int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
