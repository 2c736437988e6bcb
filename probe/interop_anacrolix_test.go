package probe

import (
	"bytes"
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
	"golang.org/x/time/rate"

	"github.com/btda/btda/discovery/metainfo"
)

// Interop with github.com/anacrolix/torrent, an implementation nobody here wrote, running
// in-process on loopback: a seeder, and a rate-limited leecher downloading from it. btda's
// prober must read the seeder as complete and the leecher's real partial progress, and
// FetchMetadata must fetch the info dictionary from the seeder.

const (
	interopPieceLen = 16 << 10
	interopPieces   = 128 // 2 MiB of data
	// interopRate makes the leecher take ~8 s, so probes catch it part-way.
	interopRate = 256 << 10
)

// anacrolixClient starts a loopback-only anacrolix client: no DHT, trackers, uTP, IPv6,
// web seeds or port forwarding (never UPnP/NAT-PMP).
func anacrolixClient(t *testing.T, dataDir string, seed bool, dl *rate.Limiter) *torrent.Client {
	t.Helper()
	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.ListenPort = 0
	cfg.NoDHT = true
	cfg.DisablePEX = true
	cfg.DisableUTP = true
	cfg.DisableIPv6 = true
	cfg.DisableTrackers = true
	cfg.NoDefaultPortForwarding = true
	cfg.DisableWebseeds = true
	cfg.DisableWebtorrent = true
	// anacrolix bans a whole /24 for up to 15 minutes after one accepted connection fails
	// its handshake (onBadAccept); on a busy machine one of our many quick probes can, and
	// every later probe from 127.0.0.1 is then refused. This test checks what btda reads,
	// not that policy.
	cfg.DisableAcceptRateLimiting = true
	cfg.Seed = seed
	cfg.DataDir = dataDir
	if dl != nil {
		cfg.DownloadRateLimiter = dl
	}
	cfg.Slogger = slog.New(slog.DiscardHandler)
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatalf("anacrolix client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func clientAddr(t *testing.T, cl *torrent.Client) netip.AddrPort {
	t.Helper()
	for _, a := range cl.ListenAddrs() {
		if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
			return ta.AddrPort()
		}
	}
	t.Fatalf("anacrolix client has no loopback TCP listener: %v", cl.ListenAddrs())
	return netip.AddrPort{}
}

// completed counts the pieces the anacrolix torrent itself holds as complete.
func completed(tt *torrent.Torrent) (n int, set []bool) {
	set = make([]bool, tt.NumPieces())
	for i := range set {
		if tt.PieceState(i).Complete {
			set[i] = true
			n++
		}
	}
	return n, set
}

func TestInteropAnacrolixLeecher(t *testing.T) {
	if testing.Short() {
		t.Skip("interop with anacrolix/torrent takes ~10 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The seeder's data and torrent.
	seedDir, leechDir := t.TempDir(), t.TempDir()
	payload := make([]byte, interopPieces*interopPieceLen)
	_, _ = rand.Read(payload)
	path := filepath.Join(seedDir, "payload.bin")
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
	hash := metainfo.Hash(mi.HashInfoBytes())

	seeder := anacrolixClient(t, seedDir, true, nil)
	st, err := seeder.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.VerifyDataContext(t.Context()); err != nil {
		t.Fatalf("seeder verifying its data: %v", err)
	}
	if n, _ := completed(st); n != interopPieces {
		t.Fatalf("seeder holds %d of %d pieces after verifying", n, interopPieces)
	}
	seedAddr := clientAddr(t, seeder)

	// Magnet metadata from the seeder, verified against the btih.
	tor, err := FetchMetadata(ctx, MetadataConfig{Version: "test"}, &metainfo.Magnet{InfoHashV1: hash}, []netip.AddrPort{seedAddr})
	if err != nil {
		t.Fatalf("FetchMetadata from anacrolix: %v", err)
	}
	if !bytes.Equal(tor.Info, infoBytes) || tor.Pieces != interopPieces || tor.PieceLength != interopPieceLen ||
		tor.TotalLength != int64(len(payload)) || tor.Name != "payload.bin" {
		t.Fatalf("fetched torrent: %d info bytes, %d pieces of %d, %d bytes, name %q",
			len(tor.Info), tor.Pieces, tor.PieceLength, tor.TotalLength, tor.Name)
	}

	prober, err := NewProber(SessionConfig{Version: "test", QuietWindow: 700 * time.Millisecond,
		SessionCap: 1500 * time.Millisecond, DialTimeout: 2 * time.Second, HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The seeder reads as complete.
	o := prober.Probe(ctx, Target{Torrent: hash, Pieces: interopPieces, Addr: seedAddr})
	if !o.Outcome.Reached() || !o.Known || !o.Flags.Seed || o.Last.Pieces != interopPieces {
		t.Fatalf("seeder probe: outcome %v (%v), known %v, seed %v, %d of %d pieces, client %q",
			o.Outcome, o.Err, o.Known, o.Flags.Seed, o.Last.Pieces, interopPieces, o.Client.V)
	}
	t.Logf("seeder: outcome %v, client %s %s (v %q), fast %v, extended %v",
		o.Outcome, o.Client.Family, o.Client.Version, o.Client.V, o.Flags.Fast, o.Flags.Extended)

	// The rate-limited leecher.
	leecher := anacrolixClient(t, leechDir, false, rate.NewLimiter(interopRate, interopPieceLen))
	lt, err := leecher.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	lt.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: seedAddr.Addr().AsSlice(), Port: int(seedAddr.Port())}, Trusted: true}})
	lt.DownloadAll()
	leechAddr := clientAddr(t, leecher)

	// Probe the leecher over and over while it downloads. Each probe's count lies between
	// what the leecher held before we dialled and after we finished, every piece btda saw
	// is one the leecher really holds, and counts never go down.
	var partial, probes, prev, dropped int
	for ctx.Err() == nil {
		before, _ := completed(lt)
		o := prober.Probe(ctx, Target{Torrent: hash, Pieces: interopPieces, Addr: leechAddr})
		after, have := completed(lt)
		if ctx.Err() != nil {
			break
		}
		probes++
		if !o.Outcome.Reached() || !o.Known {
			// anacrolix may reset a connection from a peer_id it still has a connection with
			// (our previous probe's, not yet closed on its side: every probe uses the
			// prober's one peer_id), and it reset our first connection while starting up.
			// On a busy machine that can happen a few times in a row: give it a moment,
			// and fail only when most probes are dropped.
			if dropped++; dropped > 5 && dropped*2 > probes {
				t.Fatalf("leecher probe %d: outcome %v (%v), known %v; %d of %d probes dropped", probes, o.Outcome, o.Err, o.Known, dropped, probes)
			}
			t.Logf("leecher probe %d: outcome %v (%v), not counted", probes, o.Outcome, o.Err)
			time.Sleep(250 * time.Millisecond)
			continue
		}
		got := o.Last.Pieces
		t.Logf("leecher probe %d: leecher held %d before, %d after; btda read %d (first %d), %d messages, outcome %v",
			probes, before, after, got, o.First.Pieces, o.Messages, o.Outcome)
		if got < before || got > after || got < prev {
			t.Errorf("probe %d read %d pieces; the leecher held %d before and %d after; previous read %d", probes, got, before, after, prev)
		}
		for i := range interopPieces {
			if o.Bitfield[i/8]&(0x80>>(i%8)) != 0 && !have[i] {
				t.Errorf("probe %d: btda saw piece %d, which the leecher does not hold", probes, i)
			}
		}
		prev = got
		if got > 0 && got < interopPieces {
			partial++
		}
		if got == interopPieces {
			if !o.Flags.Seed {
				t.Error("complete leecher not flagged as a seed")
			}
			break
		}
	}
	if prev != interopPieces {
		t.Fatalf("leecher did not finish in time: btda last read %d of %d pieces", prev, interopPieces)
	}
	if partial == 0 {
		t.Errorf("no probe of %d caught the leecher part-way (0 < pieces < %d)", probes, interopPieces)
	}
	if !bytes.Equal(readFileT(t, filepath.Join(leechDir, "payload.bin")), payload) {
		t.Error("leecher's data differs from the seeder's")
	}
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
