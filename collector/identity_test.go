package collector

import (
	"testing"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// TestOneIdentityPerClient: identities and confirmed downloads when a client's sessions
// show up under several addresses, linked (or not) by their peer_id.
func TestOneIdentityPerClient(t *testing.T) {
	id := func(s string) [20]byte {
		var p [20]byte
		copy(p[:], s)
		return p
	}
	with := func(s step, peerID string) probe.Observation {
		o := s.obs()
		o.Client.PeerID = id(peerID)
		return o
	}
	in := func(ip string, first, last, at int) step {
		return step{ip: ip, dir: probe.Incoming, first: first, last: last, at: at}
	}
	out := func(ip string, port uint16, first, last, at int) step {
		return step{ip: ip, port: port, src: discovery.SourceTracker, first: first, last: last, at: at}
	}
	cases := []struct {
		name       string
		obs        []probe.Observation
		identities uint64
		confirmed  uint64
	}{
		{"incoming without port joins the known-port identity with its peer_id", []probe.Observation{
			with(out("127.1.0.1", 6881, 10, 10, 10), "-TR3000-aaaaaaaaaaaa"),
			with(in("127.1.0.1", 50, 50, 40), "-TR3000-aaaaaaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-TR3000-aaaaaaaaaaaa"),
		}, 1, 1},
		{"another peer_id at the same IP stays apart", []probe.Observation{
			with(out("127.1.0.1", 6881, 10, 10, 10), "-TR3000-aaaaaaaaaaaa"),
			with(in("127.1.0.1", 50, 50, 40), "-lt20A0-bbbbbbbbbbbb"),
		}, 2, 0},
		{"two known ports at the IP: ambiguous, no merge", []probe.Observation{
			with(out("127.1.0.1", 6881, 10, 10, 10), "-TR3000-aaaaaaaaaaaa"),
			with(out("127.1.0.1", 6882, 10, 10, 11), "-TR3000-cccccccccccc"),
			with(in("127.1.0.1", 50, 50, 40), "-TR3000-aaaaaaaaaaaa"),
		}, 3, 0},
		{"listens on one address, connects from another: counted once", []probe.Observation{
			with(in("127.0.0.1", 10, 10, 10), "-CD0302-dddddddddddd"),
			with(out("127.0.0.15", 6895, 12, 12, 12), "-CD0302-dddddddddddd"),
			with(in("127.0.0.1", 99, 99, 80), "-CD0302-dddddddddddd"),
			with(out("127.0.0.15", 6895, 99, 99, 85), "-CD0302-dddddddddddd"),
		}, 2, 1},
		{"peer_ids drawn per connection: two addresses, two downloads", []probe.Observation{
			with(in("127.0.0.1", 10, 10, 10), "-lt20A0-111111111111"),
			with(out("127.0.0.15", 6895, 12, 12, 12), "-lt20A0-222222222222"),
			with(in("127.0.0.1", 99, 99, 80), "-lt20A0-333333333333"),
			with(out("127.0.0.15", 6895, 99, 99, 85), "-lt20A0-444444444444"),
		}, 2, 2},
		{"no peer_id: the per-IP rule alone", []probe.Observation{
			out("127.1.0.1", 6881, 10, 10, 10).obs(),
			in("127.1.0.1", 50, 50, 40).obs(),
			in("127.1.0.1", 99, 99, 80).obs(),
			out("127.1.0.1", 6881, 99, 99, 85).obs(),
		}, 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCollector(t, t.TempDir()+"/s.db", Config{})
			defer c.Close()
			for _, o := range tc.obs {
				c.flush([]probe.Observation{o}) // one batch each, as sessions end apart
			}
			agg := c.Aggregates().Torrents[torrent]
			if agg.Peers != tc.identities || agg.Confirmed != tc.confirmed {
				t.Fatalf("identities %d confirmed %d, want %d %d", agg.Peers, agg.Confirmed, tc.identities, tc.confirmed)
			}
		})
	}
}
