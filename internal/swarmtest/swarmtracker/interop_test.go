package swarmtracker

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/torrent/tracker"
	"github.com/anacrolix/torrent/types/infohash"
)

// TestAnacrolixClientInterop runs anacrolix/torrent's tracker client (an implementation nobody
// here wrote) against the tracker over HTTP and UDP: if the server misread a spec, one of the
// two would disagree.
func TestAnacrolixClientInterop(t *testing.T) {
	tr := start(t, Config{Interval: 77 * time.Second})
	peers := v4Peers(8)
	tr.SetPeers(ihA, peers)
	tr.SetScrape(ihB, 4, 5, 6)
	for _, tc := range []struct {
		url string
		// anacrolix's HTTP client sends no numwant, so the default (50) applies.
		numWant, peers int
	}{{tr.AnnounceURL(), -1, 8}, {tr.UDPAnnounceURL(), 5, 5}} {
		u := tc.url
		t.Run(u[:4], func(t *testing.T) {
			tr.ClearRecords()
			cl, err := tracker.NewClient(u, tracker.NewClientOpts{})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			req := tracker.AnnounceRequest{InfoHash: ihA, PeerId: pid, Downloaded: 11, Left: 1 << 33, Uploaded: 22,
				Event: tracker.Started, NumWant: 5, Port: 6881, Key: 0x1234}
			res, err := cl.Announce(t.Context(), req, tracker.AnnounceOpt{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Interval != 77 || len(res.Peers) != tc.peers || res.Leechers != 9 || res.Seeders != 0 {
				t.Errorf("response %+v", res)
			}
			for _, p := range res.Peers {
				ap, ok := p.ToNetipAddrPort()
				if !ok || !slices.Contains(peers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())) {
					t.Errorf("peer %v not in the swarm", p)
				}
			}
			rec := tr.Announces()
			if len(rec) != 1 {
				t.Fatalf("%d announces recorded", len(rec))
			}
			a := rec[0]
			if a.InfoHash != ihA || a.PeerID != pid || a.Downloaded != 11 || a.Left != 1<<33 || a.Uploaded != 22 ||
				a.Event != "started" || a.NumWant != tc.numWant || a.Port != 6881 {
				t.Errorf("recorded %+v", a)
			}
			sr, err := cl.Scrape(t.Context(), []infohash.T{ihB})
			if err != nil {
				t.Fatal(err)
			}
			if len(sr) != 1 || sr[0].Seeders != 4 || sr[0].Leechers != 5 || sr[0].Completed != 6 {
				t.Errorf("scrape %+v", sr)
			}
		})
	}
}
