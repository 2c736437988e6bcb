package swarmtest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, 4, 0, 0, 0, 7})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 3, 20, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < 100; i++ {
			m, err := readMessage(r)
			if err != nil {
				return
			}
			if len(m.payload) >= maxMessage {
				t.Fatalf("payload of %d bytes accepted", len(m.payload))
			}
		}
	})
}

func FuzzReadHandshake(f *testing.F) {
	good := handshake{}.marshal()
	f.Add(good)
	f.Add(good[:20])
	f.Add(bytes.Repeat([]byte{0x13}, 68))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readHandshake(bytes.NewReader(b))
		if err == nil && !bytes.Equal(h.marshal(), b[:handshakeLen]) {
			t.Fatalf("handshake does not round-trip")
		}
	})
}

// FuzzPeerSession feeds arbitrary bytes after a valid handshake to a
// libtorrent-profile peer: whatever a reader sends, the peer must neither
// panic nor hang (serve returns once the input ends).
func FuzzPeerSession(f *testing.F) {
	tor, err := GenerateTorrent(rand.New(rand.NewPCG(1, 1)), 0, Hybrid, nil)
	if err != nil {
		f.Fatal(err)
	}
	ext := func(id byte, payload string) []byte { return appendExtended(nil, id, []byte(payload)) }
	f.Add(ext(0, "d1:md6:ut_pexi4e11:ut_metadatai3e11:lt_donthavei5eee"))
	f.Add(append(ext(0, "d1:md11:ut_metadatai3eee"), ext(extMetadata, "d8:msg_typei0e5:piecei0ee")...))
	f.Add(append(ext(0, "d1:md11:ut_metadatai3eee"), ext(extMetadata, "d8:msg_typei0e5:piecei-1ee")...))
	f.Add(ext(extMetadata, "d8:msg_typei0e5:piecei99999999999ee"))
	f.Add(ext(0, "l1:me"))
	f.Add([]byte{0, 0, 0, 1, 20})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Swarm{cfg: Config{HandshakeTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}.withDefaults(),
			log: slog.New(slog.DiscardHandler), clock: NewManualClock(t0), start: t0, byTor: [][]*Peer{nil}}
		p := &Peer{Torrent: tor, Profile: Libtorrent, behaviour: Libtorrent.Behaviour(), permA: 1,
			Curve: Curve{Pieces: tor.Pieces, Start: 3, Interval: time.Second}}
		s.byTor[0] = []*Peer{p}
		p.behaviour.IdleTimeout = 5 * time.Second
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serve(context.Background(), p, server, false)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		var hs handshake
		hs.reserved[reservedExt] = maskExt
		hs.reserved[reservedFast] = maskFast
		hs.infoHash = tor.WireHash
		_, _ = client.Write(append(hs.marshal(), in...))
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("peer session did not end after its input closed")
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("seed: 1\ntorrents: 3\npeers: 20\nduration: 90s\nmix: {libtorrent: 3, refuse: 1}\n"))
	f.Add([]byte("tracker: {enabled: true}\ndht: {nodes: 3}\ncountries: [{iso_code: US, continent: NA, octet: 10, weight: 1}]\n"))
	f.Add([]byte("peers: [1]\n"))
	f.Add([]byte("unknown_field: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		_ = c.withDefaults().validate() // must not panic
	})
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`
seed: 9
torrents: 2
peers: 30
duration: 90s
threshold: 0.95
dialout: 127.0.0.1:6881
mix: {libtorrent: 3, rtorrent: 1}
versions: {v2: 1}
tracker: {enabled: true, interval: 5m}
dht: {nodes: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Seed != 9 || c.Peers != 30 || c.Duration != 90*time.Second || c.Threshold != 0.95 ||
		c.Mix[Rtorrent] != 1 || c.Versions[V2] != 1 || !c.Tracker.Enabled || c.Tracker.Interval != 5*time.Minute ||
		c.DHT.Nodes != 4 || c.DialOut != "127.0.0.1:6881" {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range []string{"peers: many\n", "duraton: 5s\n", "duration: soon\n", "mix: [1]\n"} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if c, err := ParseConfig(nil); err != nil || c.Peers != 0 {
		t.Errorf("empty config: %+v, %v", c, err)
	}
}
