package scheduler

import (
	"testing"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

func TestWatching(t *testing.T) {
	h := newHarness(t, Config{})
	h.add(0, "10.0.0.1:1", discovery.SourceTracker)
	h.add(0, "10.0.0.2:2", discovery.SourceDHT)
	h.add(1, "10.0.0.3:3", discovery.SourcePEX)
	watching := func() map[string]discovery.Source {
		got := map[string]discovery.Source{}
		h.s.Watching(func(sg discovery.Sighting) { got[sg.Addr.String()] = sg.Source })
		return got
	}
	if got := watching(); len(got) != 3 || got["10.0.0.2:2"] != discovery.SourceDHT {
		t.Fatalf("watching %v, want the three queued peers with their sources", got)
	}
	// In a session it is still watched; done (a seed), no longer.
	ls := h.step()
	if len(ls) != 3 {
		t.Fatalf("launched %d sessions, want 3", len(ls))
	}
	if got := watching(); len(got) != 3 {
		t.Fatalf("in flight: watching %v, want 3", got)
	}
	h.finish(ls[0], probe.OutcomeOK, func(o *probe.Observation) { o.Known, o.Flags.Seed = true, true })
	if got := watching(); len(got) != 2 {
		t.Fatalf("after one seed: watching %v, want 2", got)
	}
}
