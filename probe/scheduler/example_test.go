package scheduler_test

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// How btda wires the scheduler: sources feed one channel, the probe session runs each
// target, results go to the collector, and the listener's observations come back in.
func Example() {
	var (
		sightings = make(chan discovery.Sighting, 1024) // every discovery source sends here
		hash      metainfo.Hash                         // a watched torrent
		session   func(context.Context, scheduler.Target) probe.Observation
		record    func(probe.Observation) // the collector
	)
	s, err := scheduler.New(scheduler.Config{
		Probe:     session,
		OnResult:  func(_ scheduler.Target, obs probe.Observation) { record(obs) },
		Sightings: sightings,
		Logger:    slog.Default(),
	})
	if err != nil {
		return
	}
	_ = s.AddTorrent(hash, 980) // threshold: ceil(0.98 × 1000 pieces)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // (a real program cancels on SIGTERM)
	var g errgroup.Group
	g.Go(func() error { return s.Run(ctx) })
	// The listener calls s.Observed(obs) for every incoming session; /metrics reads s.Stats().
	_ = g.Wait()
}
