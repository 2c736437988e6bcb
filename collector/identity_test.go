package collector

import (
	"testing"
	"time"

	"github.com/btda/btda/collector/store"

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
		seeds      uint64
		check      func(t *testing.T, c *Recorder, obs []probe.Observation)
	}{
		{"incoming without port joins the known-port identity with its peer_id", []probe.Observation{
			with(out("127.1.0.1", 6881, 10, 10, 10), "-TR3000-aaaaaaaaaaaa"),
			with(in("127.1.0.1", 50, 50, 40), "-TR3000-aaaaaaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-TR3000-aaaaaaaaaaaa"),
		}, 1, 1, 0, nil},
		{"another peer_id at the same IP stays apart", []probe.Observation{
			with(out("127.1.0.1", 6881, 10, 10, 10), "-TR3000-aaaaaaaaaaaa"),
			with(in("127.1.0.1", 50, 50, 40), "-lt20A0-bbbbbbbbbbbb"),
		}, 2, 0, 0, nil},
		{"two known ports at the IP: ambiguous, no merge", []probe.Observation{
			with(out("127.1.0.1", 6881, 10, 10, 10), "-TR3000-aaaaaaaaaaaa"),
			with(out("127.1.0.1", 6882, 10, 10, 11), "-TR3000-cccccccccccc"),
			with(in("127.1.0.1", 50, 50, 40), "-TR3000-aaaaaaaaaaaa"),
		}, 3, 0, 0, nil},
		{"listens on one address, connects from another: counted once", []probe.Observation{
			with(in("127.0.0.1", 10, 10, 10), "-CD0302-dddddddddddd"),
			with(out("127.0.0.15", 6895, 12, 12, 12), "-CD0302-dddddddddddd"),
			with(in("127.0.0.1", 99, 99, 80), "-CD0302-dddddddddddd"),
			with(out("127.0.0.15", 6895, 99, 99, 85), "-CD0302-dddddddddddd"),
		}, 2, 1, 0, nil},
		{"peer_ids drawn per connection: two addresses, two downloads", []probe.Observation{
			with(in("127.0.0.1", 10, 10, 10), "-lt20A0-111111111111"),
			with(out("127.0.0.15", 6895, 12, 12, 12), "-lt20A0-222222222222"),
			with(in("127.0.0.1", 99, 99, 80), "-lt20A0-333333333333"),
			with(out("127.0.0.15", 6895, 99, 99, 85), "-lt20A0-444444444444"),
		}, 2, 2, 0, nil},
		{"no peer_id: the per-IP rule alone", []probe.Observation{
			out("127.1.0.1", 6881, 10, 10, 10).obs(),
			in("127.1.0.1", 50, 50, 40).obs(),
			in("127.1.0.1", 99, 99, 80).obs(),
			out("127.1.0.1", 6881, 99, 99, 85).obs(),
		}, 2, 1, 0, nil},
		// An unknown-port identity stored before the known-port one (adoptUnknown).
		{"unknown port first, then visited at its port with its peer_id: one identity, the spanning crossing counted", []probe.Observation{
			with(in("127.1.0.1", 10, 10, 10), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-A2-1-36-0-aaaaaaaa"),
		}, 1, 1, 0, func(t *testing.T, c *Recorder, obs []probe.Observation) {
			rec := peerRecord(t, c, obs[1])
			if !rec.Has(store.FlagCounted) || rec.CrossedAt != at(90) || rec.WindowStart != at(10) || rec.Contacts != 2 ||
				rec.First.Pieces != 10 || rec.Has(store.FlagSeed) {
				t.Fatalf("merged record %+v", rec)
			}
			if !noRecord(t, c, obs[0]) {
				t.Fatal("the unknown-port record is still stored")
			}
		}},
		{"unknown port counted first: the known-port identity carries it, another client there still counts", []probe.Observation{
			with(in("127.1.0.1", 10, 10, 10), "-A2-1-36-0-aaaaaaaa"),
			with(in("127.1.0.1", 99, 99, 50), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6882, 10, 10, 100), "-TR3000-bbbbbbbbbbbb"),
			with(out("127.1.0.1", 6882, 99, 99, 150), "-TR3000-bbbbbbbbbbbb"),
		}, 2, 2, 0, func(t *testing.T, c *Recorder, obs []probe.Observation) {
			if rec := peerRecord(t, c, obs[2]); !rec.Has(store.FlagCounted) || rec.CrossedAt != at(50) {
				t.Fatalf("merged record %+v", rec)
			}
		}},
		{"a later session without port goes to the merged identity", []probe.Observation{
			with(in("127.1.0.1", 10, 10, 10), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6881, 50, 50, 40), "-A2-1-36-0-aaaaaaaa"),
			with(in("127.1.0.1", 99, 99, 80), "-A2-1-36-0-aaaaaaaa"),
		}, 1, 1, 0, func(t *testing.T, c *Recorder, obs []probe.Observation) {
			if rec := peerRecord(t, c, obs[1]); rec.CrossedAt != at(80) || rec.WindowStart != at(40) {
				t.Fatalf("merged record %+v", rec)
			}
		}},
		{"the known port told by a later incoming session", []probe.Observation{
			with(in("127.1.0.1", 10, 10, 10), "-A2-1-36-0-aaaaaaaa"),
			with(step{ip: "127.1.0.1", port: 6881, dir: probe.Incoming, first: 99, last: 99, at: 90}, "-A2-1-36-0-aaaaaaaa"),
		}, 1, 1, 0, nil},
		{"unknown-port seed, then its port: one seed", []probe.Observation{
			with(in("127.1.0.1", 99, 99, 10), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-A2-1-36-0-aaaaaaaa"),
		}, 1, 0, 1, nil},
		{"unknown port first, another peer_id at the known port: no merge", []probe.Observation{
			with(in("127.1.0.1", 10, 10, 10), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-TR3000-bbbbbbbbbbbb"),
		}, 2, 0, 1, nil},
		{"unknown port first, no peer_id: no merge", []probe.Observation{
			in("127.1.0.1", 10, 10, 10).obs(),
			out("127.1.0.1", 6881, 99, 99, 90).obs(),
		}, 2, 0, 1, nil},
		{"unknown port first, a second known port there already: no merge", []probe.Observation{
			with(out("127.1.0.1", 6882, 10, 10, 5), "-TR3000-bbbbbbbbbbbb"),
			with(in("127.1.0.1", 10, 10, 10), "-A2-1-36-0-aaaaaaaa"),
			with(out("127.1.0.1", 6881, 99, 99, 90), "-A2-1-36-0-aaaaaaaa"),
		}, 3, 0, 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCollector(t, t.TempDir()+"/s.db", Config{})
			defer c.Close()
			for _, o := range tc.obs {
				c.flush([]probe.Observation{o}) // one batch each, as sessions end apart
			}
			agg := c.Aggregates().Torrents[torrent]
			if agg.Peers != tc.identities || agg.Confirmed != tc.confirmed || agg.Seeds != tc.seeds {
				t.Fatalf("identities %d confirmed %d seeds %d, want %d %d %d", agg.Peers, agg.Confirmed, agg.Seeds,
					tc.identities, tc.confirmed, tc.seeds)
			}
			if n := storedPeers(t, c); uint64(n) != tc.identities {
				t.Fatalf("%d peer records stored for %d identities", n, tc.identities)
			}
			if tc.check != nil {
				tc.check(t, c, tc.obs)
			}
		})
	}
}

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// noRecord reports whether o's identity has no stored record.
func noRecord(t *testing.T, c *Recorder, o probe.Observation) bool {
	t.Helper()
	var found bool
	err := c.store.View(func(tx *store.Tx) error {
		var err error
		_, found, err = tx.Peer(c.store.PeerKey(o.Torrent, o.Addr.Addr(), peerPort(&o)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return !found
}

func storedPeers(t *testing.T, c *Recorder) int {
	t.Helper()
	n := 0
	if err := c.store.View(func(tx *store.Tx) error {
		return tx.ForEachPeer(func(store.PeerKey, *store.Peer) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
