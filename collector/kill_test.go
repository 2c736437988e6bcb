package collector

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/probe"
)

const killChildEnv = "BTDA_COLLECTOR_KILL_CHILD"

// TestKillLeavesConsistentStore runs a collector in a child process, SIGKILLs it while it
// commits, and checks that the store's aggregates agree with its peer records and its download
// log, and that a restarted collector resumes exactly from them.
func TestKillLeavesConsistentStore(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		killChild(path)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for i, wait := range []time.Duration{0, 30 * time.Millisecond, 150 * time.Millisecond} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillLeavesConsistentStore$")
			cmd.Env = append(os.Environ(), killChildEnv+"="+path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The child says when crossings have been committed (its queue holds at most 200).
			line, err := bufio.NewReader(out).ReadString('\n')
			if line != "crossing\n" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child said %q, %v", line, err)
			}
			time.Sleep(wait)
			_ = cmd.Process.Kill() // SIGKILL, mid-commit or between commits
			_ = cmd.Wait()
			checkConsistent(t, path)
		})
	}
}

// killChild records crossing peers until it is killed (or 20 s pass).
func killChild(path string) {
	c, err := New(Config{StorePath: path, BatchSize: 50, BatchWait: 5 * time.Millisecond}, prometheus.NewRegistry(), quietLog())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c.AddTorrent(torrent, pieceLength)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	for k := 0; ctx.Err() == nil; k++ {
		// 500 peers seen first below the threshold, then (from their second round on) above
		// it: crossings, then duplicates of the same peers at later times.
		o := benchObs(k, 500)
		if k < 500 {
			o.First.Pieces, o.Last.Pieces = 10, 50
		} else {
			o.First.Pieces, o.Last.Pieces = 99, 100
		}
		if err := c.Record(ctx, o); err != nil {
			break
		}
		if k == 1000 {
			fmt.Println("crossing")
		}
	}
	os.Exit(0)
}

func checkConsistent(t *testing.T, path string) {
	t.Helper()
	c, _ := newCollector(t, path, Config{})
	defer c.Close()
	agg := c.Aggregates()
	var peers, counted, seeds, logged uint64
	err := c.store.View(func(tx *store.Tx) error {
		if err := tx.ForEachPeer(func(_ store.PeerKey, p *store.Peer) error {
			peers++
			if p.Has(store.FlagCounted) {
				counted++
			}
			if p.Has(store.FlagSeed) {
				seeds++
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Downloads(time.Unix(0, 0), t0.Add(1000*time.Hour), func(store.Download) error { logged++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	ta := agg.Torrents[torrent]
	var byPlace uint64
	for _, n := range agg.Confirmed {
		byPlace += n
	}
	if peers == 0 || counted == 0 {
		t.Fatalf("the child committed nothing useful (peers %d, counted %d)", peers, counted)
	}
	if ta.Peers != peers || ta.Confirmed != counted || byPlace != counted || logged != counted || ta.Seeds != seeds {
		t.Fatalf("inconsistent: records %d peers %d counted %d seeds, log %d; aggregates %+v, by place %d",
			peers, counted, seeds, logged, ta, byPlace)
	}
	// The restarted collector goes on from the stored totals.
	o := step{ip: "127.250.0.1", port: 1, first: 10, last: 100, dur: 5}.obs() // a new peer crossing at once
	c.flush([]probe.Observation{o})
	if n := c.Aggregates().Torrents[torrent].Confirmed; n != counted+1 {
		t.Fatalf("after restart: confirmed %d, want %d", n, counted+1)
	}
}
