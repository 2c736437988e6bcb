package swarmtest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	anacrolix "github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// TestAnacrolixReadsSwarmPeers: anacrolix/torrent, a client nobody here
// wrote, fetches the info dictionary from swarm peers over ut_metadata
// (BEP 9) with nothing but a magnet and a peer address, and learns other
// peers through their ut_pex messages.
func TestAnacrolixReadsSwarmPeers(t *testing.T) {
	s := startTestSwarm(t, Config{Seed: 12, Torrents: 2, Peers: 12, Versions: map[Version]float64{V1: 1, Hybrid: 1},
		Mix: map[Profile]float64{Libtorrent: 1, Transmission: 1}})
	cfg := anacrolix.NewDefaultClientConfig()
	cfg.DataDir = t.TempDir()
	cfg.DefaultStorage = storage.NewFile(cfg.DataDir)
	cfg.NoDHT, cfg.DisableTrackers, cfg.DisableUTP, cfg.DisableIPv6 = true, true, true, true
	cfg.DisableWebtorrent, cfg.DisableWebseeds, cfg.NoDefaultPortForwarding = true, true, true
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.ListenPort = 0
	cfg.Slogger = slog.New(slog.DiscardHandler)
	cl, err := anacrolix.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tor := range s.Torrents() {
		m, err := metainfo.ParseMagnetV2Uri(tor.Magnet(nil))
		if err != nil {
			t.Fatal(err)
		}
		at, err := cl.AddMagnet(m.String())
		if err != nil {
			t.Fatal(err)
		}
		var peers []anacrolix.PeerInfo
		for _, p := range s.Peers() {
			if p.Torrent == tor {
				peers = append(peers, anacrolix.PeerInfo{Addr: &net.TCPAddr{IP: p.Addr.Addr().AsSlice(), Port: int(p.Addr.Port())}, Trusted: true})
				break // one address is enough; PEX names the others
			}
		}
		if len(peers) == 0 {
			continue
		}
		at.AddPeers(peers)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		select {
		case <-at.GotInfo():
		case <-ctx.Done():
			cancel()
			t.Fatalf("torrent %d (%s): anacrolix got no metadata from %s", tor.Index, tor.Version, peers[0].Addr)
		}
		cancel()
		if mi := at.Metainfo(); !bytes.Equal(mi.InfoBytes, tor.Info) {
			t.Errorf("torrent %d: metadata differs from the info dictionary", tor.Index)
		}
		// PEX: anacrolix learns the torrent's other peers from the one it
		// was given. (Stats, not KnownSwarm: in v1.59.1 KnownSwarm reads a
		// map without the client lock, a data race under -race.)
		others := 0
		for _, p := range s.Peers() {
			if p.Torrent == tor {
				others++
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		known := 0
		for time.Now().Before(deadline) {
			if known = at.Stats().TotalPeers; known > 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if others > 1 && (known < 2 || known > others) {
			t.Errorf("torrent %d: anacrolix knows %d peers, the swarm has %d; PEX did not reach it", tor.Index, known, others)
		}
		at.Drop()
	}
}
