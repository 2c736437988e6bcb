package daemon

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// daemonOn wires a daemon (never run) on the store at path.
func daemonOn(t *testing.T, path string, persist bool) *Daemon {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewPedanticRegistry()
	rec, err := collector.New(collector.Config{StorePath: path}, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	prober, err := probe.NewProber(probe.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Registry: discovery.NewRegistry(logger), Sightings: make(chan discovery.Sighting),
		Recorder: rec, Prober: prober, Scheduler: scheduler.Config{MaxInFlight: 1}, Threshold: 0.98,
		PersistSchedule: persist, Logger: logger}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPersistSchedule: with storage.persist_schedule the watched peers survive a restart;
// without it the kept list is deleted at the next start.
func TestPersistSchedule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "btda.db")
	v1 := loadTorrent(t, v1File)
	peers := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:6881"), netip.MustParseAddrPort("127.0.0.3:51413")}

	d := daemonOn(t, path, true)
	load(t, d, v1File)
	for _, p := range peers {
		d.route(discovery.Sighting{Torrent: v1.Hash(), Addr: p, Source: discovery.SourceDHT})
	}
	d.saveSchedule()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = daemonOn(t, path, true)
	if n := d.sched.Stats().Known; n != 0 {
		t.Fatalf("%d peers before the watch list is loaded", n)
	}
	load(t, d, v1File)
	if st := d.sched.Stats(); st.Known != len(peers) || st.New[discovery.SourceDHT] != uint64(len(peers)) {
		t.Fatalf("after a restart the scheduler knows %d peers (new from dht: %d), want %d", st.Known, st.New[discovery.SourceDHT], len(peers))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Turned off: the next start deletes the list, and the one after restores nothing.
	d = daemonOn(t, path, false)
	load(t, d, v1File)
	if n := d.sched.Stats().Known; n != 0 {
		t.Fatalf("persist_schedule off: %d peers restored", n)
	}
	kept, _, err := d.recorder.Store().LoadSchedule()
	if err != nil || len(kept) != 0 {
		t.Fatalf("persist_schedule off: %d addresses still kept (%v)", len(kept), err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
