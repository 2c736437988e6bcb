package swarmtest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorFollowsTheTruth(t *testing.T) {
	clock := NewManualClock(t0)
	s := startTestSwarm(t, Config{Seed: 42, Torrents: 4, Peers: 300, Duration: time.Minute, Clock: clock})
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	want := len(s.Torrents()) * len(s.Config().Countries)
	if n := testutil.CollectAndCount(s.Collector(), "btswarm_truth_confirmed_downloads_total"); n != want {
		t.Errorf("%d crossing series, want %d pre-created", n, want)
	}
	for _, at := range []time.Duration{0, 20 * time.Second, 90 * time.Second, 10 * time.Minute} {
		clock.Set(t0.Add(at))
		tr := s.Truth(Window{From: 0, To: at + 1})
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[[2]string]float64{}
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() != "btswarm_truth_confirmed_downloads_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var k [2]string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "infohash":
						k[0] = l.GetValue()
					case "country":
						k[1] = l.GetValue()
					}
				}
				got[k] = m.GetCounter().GetValue()
				total += m.GetCounter().GetValue()
			}
		}
		if int(total) != tr.Total {
			t.Errorf("at %v: metrics count %v crossings, truth %d", at, total, tr.Total)
		}
		for _, c := range tr.Crossings {
			if got[[2]string{c.Torrent, c.Country}] != float64(c.Count) {
				t.Errorf("at %v: %s/%s = %v, truth %d", at, c.Torrent, c.Country, got[[2]string{c.Torrent, c.Country}], c.Count)
			}
		}
		if at == 10*time.Minute && total == 0 {
			t.Error("no crossing ever")
		}
	}
}
