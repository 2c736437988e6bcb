package scheduler_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// How btda drives the scheduler: every sighting goes in through Add, the ProbeFunc runs
// each target, and OnResult gets every observation, whose PEX peers the caller sends back
// through Add like any other source's. Here the ProbeFunc answers at once from a table
// instead of dialling.
func Example() {
	hash := metainfo.Hash{1, 2, 3} // a watched torrent
	var (
		seed    = netip.MustParseAddrPort("192.0.2.1:6881") // a seed that knows another peer
		gone    = netip.MustParseAddrPort("192.0.2.2:6881") // refuses the connection
		leecher = netip.MustParseAddrPort("192.0.2.3:6881") // learnt from the seed by PEX
	)
	session := func(_ context.Context, t scheduler.Target) probe.Observation {
		obs := probe.Observation{Torrent: t.Torrent, Addr: t.Addr, Outcome: probe.OutcomeOK, Known: true}
		switch t.Addr {
		case seed:
			obs.Flags.Seed, obs.Last.Pieces = true, 1000
			obs.PEX = []netip.AddrPort{leecher}
		case gone:
			obs = probe.Observation{Torrent: t.Torrent, Addr: t.Addr, Outcome: probe.OutcomeRefused}
		default:
			obs.Last.Pieces = 500
		}
		return obs
	}

	var (
		s       *scheduler.Scheduler
		err     error
		results = make(chan string, 3)
	)
	s, err = scheduler.New(scheduler.Config{
		Probe: session,
		OnResult: func(t scheduler.Target, obs probe.Observation) {
			results <- fmt.Sprintf("%v from %v: %v, %d pieces", t.Addr, t.Source, obs.Outcome, obs.Last.Pieces)
			for _, a := range obs.PEX { // the daemon's job: PEX peers take the sightings' route
				s.Add(discovery.Sighting{Torrent: t.Torrent, Addr: a, Source: discovery.SourcePEX})
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := s.AddTorrent(hash, 980); err != nil { // threshold: ceil(0.98 × 1000 pieces)
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Add(discovery.Sighting{Torrent: hash, Addr: seed, Source: discovery.SourceTracker})
	s.Add(discovery.Sighting{Torrent: hash, Addr: gone, Source: discovery.SourceDHT})

	// Sessions run concurrently: sort what they report.
	var lines []string
	for range 3 {
		lines = append(lines, <-results)
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))

	cancel() // (btda cancels on SIGTERM); Run waits for the sessions still running
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	st := s.Stats() // what /metrics reads at scrape time
	fmt.Printf("known %d, queued %d, done %d, sessions %d, retries %d\n",
		st.Known, st.Queued, st.Done, st.SessionsStarted, st.RetriesScheduled)
	fmt.Printf("new peers: tracker %d, dht %d, pex %d\n",
		st.New[discovery.SourceTracker], st.New[discovery.SourceDHT], st.New[discovery.SourcePEX])
	// Output:
	// 192.0.2.1:6881 from tracker: ok, 1000 pieces
	// 192.0.2.2:6881 from dht: refused, 0 pieces
	// 192.0.2.3:6881 from pex: ok, 500 pieces
	// known 3, queued 2, done 1, sessions 3, retries 1
	// new peers: tracker 1, dht 1, pex 1
}
