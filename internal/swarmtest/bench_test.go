package swarmtest

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	benchPeers    = flag.Int("swarm.peers", 2000, "peers in BenchmarkSwarmRead's own swarm")
	benchTorrents = flag.Int("swarm.torrents", 20, "torrents in BenchmarkSwarmRead's own swarm")
	benchTruth    = flag.String("swarm.truth", "", "read the peers of a running btswarm from its truth.json instead of starting a swarm")
	benchPar      = flag.Int("swarm.parallel", 200, "concurrent readers per CPU")
	benchHold     = flag.Int("swarm.hold", 0, "connections held open (handshake done, progress read) during the benchmark")
)

// benchTarget is a peer to read, with its truth.
type benchTarget struct {
	addr   netip.AddrPort
	hash   [20]byte
	pieces int
	curve  Curve
	piece  func(i int) int // nil: check the count only
}

// BenchmarkSwarmRead reads peers' progress with many concurrent readers and
// checks every read against the truth. Each op is one connection: dial,
// handshake, read until the count equals Progress at that moment. It reports
// the process's peak RSS (swarm plus readers when the swarm is in-process).
//
//	go test -run '^$' -bench SwarmRead -benchtime 20000x ./internal/swarmtest/ -swarm.peers 50000 -swarm.torrents 100
//	go test -run '^$' -bench SwarmRead -benchtime 20000x ./internal/swarmtest/ -swarm.truth out/truth.json
func BenchmarkSwarmRead(b *testing.B) {
	var targets []benchTarget
	var start time.Time
	if *benchTruth != "" {
		targets, start = loadTruthTargets(b, *benchTruth)
	} else {
		s, err := Start(context.Background(), Config{Seed: 1, Torrents: *benchTorrents, Peers: *benchPeers,
			Duration: time.Minute, MaxConns: 15000}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		start = s.StartTime()
		for _, p := range s.Peers() {
			if p.Behaviour().Talks {
				targets = append(targets, benchTarget{addr: p.Addr, hash: p.Torrent.WireHash,
					pieces: p.Torrent.Pieces, curve: p.Curve, piece: p.Piece})
			}
		}
		b.Logf("swarm: %d peers, %d torrents, listen mode %s", len(s.Peers()), len(s.Torrents()), s.ListenMode())
	}
	if len(targets) == 0 {
		b.Fatal("no peers to read")
	}
	var next, fails atomic.Int64
	// Held connections stay open through the run, like a prober that keeps
	// long-lived sessions to watch haves arrive.
	for i := 0; i < *benchHold && i < len(targets); i++ {
		tg := targets[len(targets)-1-i]
		r, err := dialReaderNoCleanup(tg.addr, tg.hash, tg.pieces)
		if err != nil {
			b.Fatalf("hold %d: %v", i, err)
		}
		defer r.conn.Close()
	}
	b.SetParallelism(*benchPar)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tg := targets[int(next.Add(1))%len(targets)]
			if err := benchRead(tg, start); err != nil {
				if fails.Add(1) <= 5 {
					b.Errorf("peer %s at swarm time %s: %v", tg.addr, time.Since(start).Round(time.Millisecond), err)
				}
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	if f := fails.Load(); f > 0 {
		b.Errorf("%d reads did not match the truth", f)
	}
}

func benchRead(tg benchTarget, start time.Time) error {
	r, err := dialReaderNoCleanup(tg.addr, tg.hash, tg.pieces)
	if err != nil {
		return err
	}
	defer r.conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		want := tg.curve.At(time.Since(start))
		ok := r.count == want
		if ok && tg.piece != nil {
			for i := 0; i < want && ok; i++ {
				ok = r.have[tg.piece(i)]
			}
		}
		// Peers with nothing and no Fast send nothing: count 0 is right.
		if ok && (r.first != "" || want == 0) {
			return nil
		}
		if err := r.next(deadline); err != nil {
			return fmt.Errorf("count %d, want %d: %w", r.count, want, err)
		}
	}
}

// dialReaderNoCleanup is dialReader without testing.T cleanups (benchmarks
// open many thousands of connections and close each one themselves).
func dialReaderNoCleanup(addr netip.AddrPort, hash [20]byte, n int) (*testReader, error) {
	return dialReaderT(nil, addr, hash, n, true, false)
}

func loadTruthTargets(b *testing.B, path string) ([]benchTarget, time.Time) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var tr Truth
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&tr); err != nil {
		b.Fatal(err)
	}
	var out []benchTarget
	for _, p := range tr.Peers {
		if !p.Reports {
			continue
		}
		h, err := hex.DecodeString(p.Torrent)
		if err != nil || len(h) != 20 {
			b.Fatalf("peer %d: torrent %q", p.Index, p.Torrent)
		}
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, benchTarget{addr: netip.AddrPortFrom(ip, p.Port), hash: [20]byte(h),
			pieces: p.Pieces, curve: p.Curve})
	}
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, tr.Start
}

// peakRSS is VmHWM from /proc/self/status, in bytes (0 if unavailable).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
