package probe

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// TestProbeSelf: trackers and the DHT hand btda its own address. Probing our own listener
// must end as OutcomeSelf on both sides, never as a peer observation.
func TestProbeSelf(t *testing.T) {
	checkGoroutines(t)
	p, err := NewProber(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var incoming []Observation
	l, err := NewListener(p, ListenerConfig{
		Lookup: func(h metainfo.Hash) (int, bool) { return 100, h == testHash },
		Deliver: func(o Observation) {
			mu.Lock()
			incoming = append(incoming, o)
			mu.Unlock()
		},
		ShutdownTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, ln) }()

	o := p.Probe(context.Background(), Target{Torrent: testHash, Pieces: 100, Addr: netip.MustParseAddrPort(ln.Addr().String())})
	if o.Outcome != OutcomeSelf || o.Outcome.Reached() || o.Known {
		t.Errorf("outgoing side: outcome %s reached %v known %v", o.Outcome, o.Outcome.Reached(), o.Known)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(incoming)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(incoming) != 1 || incoming[0].Outcome != OutcomeSelf {
		t.Fatalf("incoming side: %+v", incoming)
	}
}
