package daemon

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
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
