package swarmtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/zeebo/bencode"
)

// TestTrackerAndDHTKnowThePeers checks the wiring: the torrents name the
// swarm's tracker, an HTTP announce returns swarm peers of that torrent,
// and the DHT cluster stores every peer under every lookup hash.
func TestTrackerAndDHTKnowThePeers(t *testing.T) {
	s := startTestSwarm(t, Config{Seed: 4, Torrents: 3, Peers: 60, Versions: map[Version]float64{Hybrid: 1},
		Tracker: TrackerConfig{Enabled: true}, DHT: DHTConfig{Nodes: 3}})
	if len(s.AnnounceURLs()) != 2 || len(s.DHTNodes()) != 3 {
		t.Fatalf("announce %v, dht %v", s.AnnounceURLs(), s.DHTNodes())
	}
	for _, tor := range s.Torrents() {
		mi, err := metainfo.Load(bytes.NewReader(tor.File))
		if err != nil {
			t.Fatal(err)
		}
		if mi.Announce != s.AnnounceURLs()[0] {
			t.Errorf("torrent %d announce %q", tor.Index, mi.Announce)
		}
		var want []netip.AddrPort
		for _, p := range s.Peers() {
			if p.Torrent == tor {
				want = append(want, p.Addr)
			}
		}
		slices.SortFunc(want, netip.AddrPort.Compare)
		for _, h := range tor.lookupHashes() {
			if got := s.DHT().Peers(h); !slices.Equal(got, want) {
				t.Errorf("torrent %d hash %x: DHT has %d peers, want %d", tor.Index, h, len(got), len(want))
			}
			known := s.Tracker().Peers(h)
			slices.SortFunc(known, netip.AddrPort.Compare)
			if !slices.Equal(known, want) {
				t.Errorf("torrent %d hash %x: tracker knows %d peers, want %d", tor.Index, h, len(known), len(want))
			}
			got := httpAnnounce(t, s.AnnounceURLs()[0], h)
			if len(got) == 0 || len(got) > len(want) {
				t.Errorf("torrent %d: tracker returned %d peers of %d", tor.Index, len(got), len(want))
			}
			for _, a := range got {
				if _, ok := slices.BinarySearchFunc(want, a, netip.AddrPort.Compare); !ok {
					t.Errorf("tracker returned %s, not a peer of torrent %d", a, tor.Index)
				}
			}
		}
	}
}

func httpAnnounce(t *testing.T, announce string, h [20]byte) []netip.AddrPort {
	t.Helper()
	body := httpAnnounceBody(t, announce, h)
	var d struct {
		Peers   string `bencode:"peers"`
		Failure string `bencode:"failure reason"`
	}
	if err := bencode.DecodeBytes(body, &d); err != nil || d.Failure != "" {
		t.Fatal(fmt.Errorf("announce reply %q: %v", body, err))
	}
	var out []netip.AddrPort
	for b := []byte(d.Peers); len(b) >= 6; b = b[6:] {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:6])))
	}
	return out
}

// httpAnnounceBody sends one compact HTTP announce for h and returns the reply's body.
func httpAnnounceBody(t *testing.T, announce string, h [20]byte) []byte {
	t.Helper()
	q := url.Values{"info_hash": {string(h[:])}, "peer_id": {"-RD0001-abcdefghijkl"}, "port": {"6881"},
		"uploaded": {"0"}, "downloaded": {"0"}, "left": {"1"}, "compact": {"1"}, "numwant": {"200"}}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(announce + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return body
}
