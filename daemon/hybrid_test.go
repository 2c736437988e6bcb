package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/dht"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/discovery/tracker"
	"github.com/btda/btda/internal/swarmtest"
	"github.com/btda/btda/internal/swarmtest/swarmdht"
	"github.com/btda/btda/internal/swarmtest/swarmtracker"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// v2OnlyPeer is a fake client that knows a hybrid torrent by its truncated v2 hash only (a
// v2-only client, or one that joined by a btmh magnet): it answers a handshake with that
// hash as a seed, and hangs up on any other. It reports the info hash of every handshake.
func v2OnlyPeer(t *testing.T, v2 metainfo.Hash, pieces int) (netip.AddrPort, <-chan metainfo.Hash) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan metainfo.Hash, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				var hs [68]byte
				if _, err := io.ReadFull(c, hs[:]); err != nil {
					return
				}
				var h metainfo.Hash
				copy(h[:], hs[28:48])
				seen <- h
				if h != v2 {
					return
				}
				reply := append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...)
				reply = append(reply, v2[:]...)
				reply = append(reply, "-LT2090-v2onlyclient"...)
				bf := bytes.Repeat([]byte{0xff}, (pieces+7)/8)
				if r := pieces % 8; r != 0 {
					bf[len(bf)-1] = byte(0xff << (8 - r))
				}
				msg := []byte{0, 0, 0, 0, 5}
				n := uint32(1 + len(bf))
				msg[0], msg[1], msg[2], msg[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
				reply = append(append(reply, msg...), bf...)
				if _, err := c.Write(reply); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c) // until btda ends the session
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).AddrPort(), seen
}

// TestHybridPeerFoundUnderV2Hash: a peer of a hybrid torrent that a tracker or the DHT
// listed under the truncated v2 hash only is a peer of the one torrent, and btda's
// session handshakes with the v2 hash (as libtorrent does), reads its progress and records
// it under the torrent's ID.
func TestHybridPeerFoundUnderV2Hash(t *testing.T) {
	d := newTestDaemon(t)
	load(t, d, hybridFile)
	hybrid := loadTorrent(t, hybridFile)
	id, v2 := hybrid.InfoHashV1, hybrid.InfoHashV2.Truncate()
	addr, seen := v2OnlyPeer(t, v2, hybrid.Pieces)

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	d.route(discovery.Sighting{Torrent: v2, Addr: addr, Source: discovery.SourceTracker})

	select {
	case h := <-seen:
		if h != v2 {
			t.Fatalf("btda's handshake named %s, want the v2 hash %s it found the peer under", h, v2)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("btda never dialled the peer")
	}
	var got bool
	for deadline := time.Now().Add(30 * time.Second); !got && time.Now().Before(deadline); {
		for _, p := range d.RecentProbes() {
			if p.Outcome == "ok" || p.Pieces > 0 {
				if p.Torrent != id.String() || p.Pieces != hybrid.Pieces {
					t.Fatalf("session %+v: want torrent %s (the ID) with %d pieces", p, id, hybrid.Pieces)
				}
				got = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !got {
		t.Fatalf("no session read the peer: %+v", d.RecentProbes())
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if st := d.sched.Stats(); st.Known != 1 || st.UnknownTorrent != 0 {
		t.Errorf("scheduler: %d peers known, %d unknown-torrent; want 1, 0", st.Known, st.UnknownTorrent)
	}
}

// TestWireHash: the hash btda handshakes a peer with.
func TestWireHash(t *testing.T) {
	d := newTestDaemon(t)
	load(t, d, v1File, hybridFile)
	v1, hybrid := loadTorrent(t, v1File), loadTorrent(t, hybridFile)
	for _, tt := range []struct {
		name  string
		id    metainfo.Hash
		hints discovery.Hints
		want  metainfo.Hash
	}{
		{"hybrid, found under its ID", hybrid.InfoHashV1, 0, hybrid.InfoHashV1},
		{"hybrid, found under its v2 hash", hybrid.InfoHashV1, discovery.HintOtherHash | discovery.HintUTP, hybrid.InfoHashV2.Truncate()},
		{"v1 torrent has no other hash", v1.Hash(), discovery.HintOtherHash, v1.Hash()},
	} {
		if got := d.wireHash(tt.id, tt.hints); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestHybridV2OnlySwarm runs the daemon with its real tracker announcer and DHT node against
// the test swarm's tracker and DHT cluster, for a hybrid torrent whose two peers are listed
// only under its truncated v2 hash (v2-only clients: one on the tracker, one in the DHT).
// btda finds both, handshakes with the v2 hash and reads them, all under the torrent's ID;
// the tracker saw btda's announces under both hashes.
func TestHybridV2OnlySwarm(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	tr, err := swarmtracker.Start(ctx, swarmtracker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cluster, err := swarmdht.Start(ctx, 4, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	tor, err := swarmtest.GenerateTorrent(rand.New(rand.NewPCG(7, 7)), 0, swarmtest.Hybrid, []string{tr.AnnounceURL(), tr.UDPAnnounceURL()})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hybrid.torrent")
	if err := os.WriteFile(path, tor.File, 0o600); err != nil {
		t.Fatal(err)
	}
	v1, v2 := metainfo.Hash(tor.InfoHashV1), metainfo.Hash(tor.InfoHashV2[:20])
	trackerPeer, trackerSeen := v2OnlyPeer(t, v2, tor.Pieces)
	dhtPeer, dhtSeen := v2OnlyPeer(t, v2, tor.Pieces)
	tr.SetPeers(v2, []netip.AddrPort{trackerPeer})
	cluster.Announce(v2, []netip.AddrPort{dhtPeer})

	reg := prometheus.NewPedanticRegistry()
	rec, err := collector.New(collector.Config{StorePath: filepath.Join(t.TempDir(), "btda.db")}, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	prober, err := probe.NewProber(probe.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sightings := make(chan discovery.Sighting, SightingsBuffer)
	ann, err := tracker.NewAnnouncer(tracker.Config{Port: 6881, HTTPTimeout: 5 * time.Second, Logger: logger}, reg, sightings)
	if err != nil {
		t.Fatal(err)
	}
	var boot []string
	for _, a := range cluster.Addrs() {
		boot = append(boot, a.String())
	}
	node, err := dht.New(dht.Config{Listen: "127.0.0.1:0", Bootstrap: boot, PeerPort: 6881}, sightings, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Registry: discovery.NewRegistry(logger), Sightings: sightings, Recorder: rec, Prober: prober,
		Scheduler: scheduler.Config{MaxInFlight: 2}, Trackers: ann, DHT: node, Threshold: 0.98, Logger: logger}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, rep, err := d.Load(ctx, discovery.WatchSources{Args: []string{path}}); err != nil || len(rep.Failed) > 0 {
		t.Fatalf("Load: %v %v", err, rep.Failed)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()

	for name, seen := range map[string]<-chan metainfo.Hash{"tracker peer": trackerSeen, "DHT peer": dhtSeen} {
		select {
		case h := <-seen:
			if h != v2 {
				t.Errorf("%s: handshake named %s, want the v2 hash", name, h)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s never dialled", name)
		}
	}
	read := map[string]bool{}
	for deadline := time.Now().Add(30 * time.Second); len(read) < 2 && time.Now().Before(deadline); {
		for _, p := range d.RecentProbes() {
			if p.Pieces == tor.Pieces && p.Torrent == v1.String() {
				read[p.Source] = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !read["tracker"] || !read["dht"] {
		t.Errorf("peers read, by source: %v; want tracker and dht\n%+v", read, d.RecentProbes())
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	for _, h := range []metainfo.Hash{v1, v2} {
		if len(tr.AnnouncesFor(h)) == 0 {
			t.Errorf("no announce under %s", h)
		}
	}
}
