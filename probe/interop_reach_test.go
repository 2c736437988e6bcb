package probe

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	ametainfo "github.com/anacrolix/torrent/metainfo"

	"github.com/btda/btda/discovery/metainfo"
)

// Interop with anacrolix/torrent peers that btda could not read before: one that requires
// encryption (MSE) and one that speaks uTP only. Both directions: btda dials the peer, and
// the peer dials btda's listener. A seed is read as complete, to the piece.

// reachSeeder starts an anacrolix seeder of a fresh 64-piece torrent, configured by mod.
func reachSeeder(t *testing.T, mod func(*torrent.ClientConfig)) (*torrent.Client, *torrent.Torrent, metainfo.Hash) {
	t.Helper()
	dir := t.TempDir()
	payload := make([]byte, 64*interopPieceLen)
	_, _ = rand.Read(payload)
	path := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(path, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	info := ametainfo.Info{PieceLength: interopPieceLen}
	if err := info.BuildFromFilePath(path); err != nil {
		t.Fatal(err)
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	mi := &ametainfo.MetaInfo{InfoBytes: infoBytes}

	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.NoDHT, cfg.DisablePEX, cfg.DisableIPv6, cfg.DisableTrackers = true, true, true, true
	cfg.NoDefaultPortForwarding, cfg.DisableWebseeds, cfg.DisableWebtorrent = true, true, true
	cfg.Seed, cfg.DataDir = true, dir
	cfg.Slogger = slog.New(slog.DiscardHandler)
	mod(cfg)
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatalf("anacrolix client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	tt, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.VerifyDataContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cl, tt, metainfo.Hash(mi.HashInfoBytes())
}

// loopbackPort is the port of the client's loopback listener (TCP or uTP).
func loopbackPort(t *testing.T, cl *torrent.Client) uint16 {
	t.Helper()
	for _, a := range cl.ListenAddrs() {
		switch a := a.(type) {
		case *net.TCPAddr:
			return uint16(a.Port)
		case *net.UDPAddr:
			return uint16(a.Port)
		}
	}
	t.Fatalf("anacrolix client has no listener: %v", cl.ListenAddrs())
	return 0
}

func TestInteropAnacrolixReach(t *testing.T) {
	if testing.Short() {
		t.Skip("interop with anacrolix/torrent takes a few seconds")
	}
	cases := []struct {
		name      string
		mod       func(*torrent.ClientConfig)
		transport Transport
		encrypted bool
	}{
		{"require encryption", func(c *torrent.ClientConfig) {
			c.DisableUTP = true
			c.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{RequirePreferred: true, Preferred: true}
		}, TransportTCP, true},
		{"uTP only", func(c *torrent.ClientConfig) { c.DisableTCP = true }, TransportUTP, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cl, tt, hash := reachSeeder(t, c.mod)
			peer := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), loopbackPort(t, cl))

			tcp, sock := listenBoth(t)
			cfg := SessionConfig{Version: "test", QuietWindow: time.Second, SessionCap: 5 * time.Second,
				DialTimeout: 3 * time.Second, HandshakeTimeout: 3 * time.Second, UTP: sock}
			p, err := NewProber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// btda dials it, at its default policy: the first try (plaintext over TCP) fails
			// the way such a peer fails, and the fallback reads it.
			o := p.Probe(ctx, Target{Torrent: hash, Pieces: 64, Addr: peer})
			if !o.Outcome.Reached() || !o.Known || o.Last.Pieces != 64 || !o.Flags.Seed ||
				o.Transport != c.transport || (o.Encryption != EncryptionNone) != c.encrypted {
				t.Fatalf("outgoing: outcome %v (%v), known %v, %d of 64 pieces, transport %v, encryption %v, fallbacks %+v",
					o.Outcome, o.Err, o.Known, o.Last.Pieces, o.Transport, o.Encryption, o.Fallbacks)
			}
			t.Logf("outgoing: %v over %v, encryption %v, fallbacks %+v, client %q", o.Outcome, o.Transport, o.Encryption, o.Fallbacks, o.Client.V)

			// It dials btda's listener (TCP and uTP on one port, as the daemon runs them).
			obs := make(chan Observation, 10)
			l, err := NewListener(p, ListenerConfig{
				Lookup:     func(h metainfo.Hash) (int, bool) { return 64, h == hash },
				Deliver:    func(o Observation) { obs <- o },
				InfoHashes: func() []metainfo.Hash { return []metainfo.Hash{hash} },
			})
			if err != nil {
				t.Fatal(err)
			}
			port := utpAddr(sock).Port()
			sctx, stop := context.WithCancel(ctx)
			done := make(chan error, 2)
			go func() { done <- l.Serve(sctx, tcp) }()
			go func() { done <- l.Serve(sctx, sock) }()
			defer func() {
				stop()
				<-done
				<-done
			}()
			// Offered again every few seconds: anacrolix may hold back a peer it just met.
			tick := time.NewTicker(3 * time.Second)
			defer tick.Stop()
			for {
				tt.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}, Trusted: true}})
				select {
				case in := <-obs:
					// (anacrolix dials with MSE unless told otherwise: only the required case is sure.)
					if !in.Outcome.Reached() || !in.Known || in.Last.Pieces != 64 || in.Transport != c.transport ||
						(c.encrypted && in.Encryption == EncryptionNone) {
						t.Fatalf("incoming: outcome %v (%v), known %v, %d of 64 pieces, transport %v, encryption %v",
							in.Outcome, in.Err, in.Known, in.Last.Pieces, in.Transport, in.Encryption)
					}
					t.Logf("incoming: %v over %v, encryption %v", in.Outcome, in.Transport, in.Encryption)
					return
				case <-tick.C:
				case <-ctx.Done():
					t.Fatalf("anacrolix never reached btda's listener; stats %+v", l.Stats())
				}
			}
		})
	}
}
