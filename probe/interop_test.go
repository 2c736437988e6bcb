package probe

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	atbencode "github.com/anacrolix/torrent/bencode"
	atmetainfo "github.com/anacrolix/torrent/metainfo"

	"github.com/btda/btda/discovery/metainfo"
)

// TestAnacrolixInterop probes a seeding anacrolix/torrent client (an implementation nobody
// here wrote) on loopback and, for the passive side, lets it connect to our Listener.
func TestAnacrolixInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a full BitTorrent client")
	}
	dir := t.TempDir()
	data := bytes.Repeat([]byte("btda interop "), 20000) // 260 KB: 16 pieces of 16 KiB
	if err := os.WriteFile(filepath.Join(dir, "file.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	info := atmetainfo.Info{PieceLength: 16 << 10}
	if err := info.BuildFromFilePath(filepath.Join(dir, "file.bin")); err != nil {
		t.Fatal(err)
	}
	infoBytes, err := atbencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	mi := &atmetainfo.MetaInfo{InfoBytes: infoBytes}

	cfg := torrent.NewDefaultClientConfig()
	cfg.DataDir = dir
	cfg.Seed = true
	cfg.NoDHT, cfg.DisablePEX, cfg.DisableUTP, cfg.DisableIPv6, cfg.DisableTrackers = true, true, true, true, true
	cfg.DisableWebtorrent, cfg.DisableWebseeds, cfg.NoDefaultPortForwarding = true, true, true
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.ListenPort = 0
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tor, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.VerifyDataContext(t.Context())
	select {
	case <-tor.Complete().On():
	case <-time.After(20 * time.Second):
		t.Fatal("anacrolix did not verify its data")
	}
	pieces := tor.NumPieces()
	hash := metainfo.Hash(mi.HashInfoBytes())

	scfg := testConfig()
	scfg.QuietWindow = time.Second
	p, err := NewProber(scfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(cl.LocalPort()))
	o := p.Probe(context.Background(), Target{Torrent: hash, Pieces: pieces, Addr: addr})
	t.Logf("anacrolix: outcome %v, %d/%d pieces, client %q %q v=%q, flags %+v, %d messages", o.Outcome, o.Last.Pieces, pieces, o.Client.Family, o.Client.Version, o.Client.V, o.Flags, o.Messages)
	if o.Outcome != OutcomeOK || !o.Known || o.Last.Pieces != pieces || !o.Flags.Seed || !o.Flags.Fast || !o.Flags.Extended {
		t.Fatalf("observation %+v", o)
	}
	if o.Client.Family != "anacrolix/torrent" {
		t.Errorf("client %+v", o.Client)
	}

	// Passive side: a second, empty anacrolix client is told about our Listener and
	// connects to it; the Listener reads it like an active session.
	cfg2 := torrent.NewDefaultClientConfig()
	cfg2.DataDir = t.TempDir()
	cfg2.NoDHT, cfg2.DisablePEX, cfg2.DisableUTP, cfg2.DisableIPv6, cfg2.DisableTrackers = true, true, true, true, true
	cfg2.DisableWebtorrent, cfg2.DisableWebseeds, cfg2.NoDefaultPortForwarding = true, true, true
	cfg2.ListenHost = func(string) string { return "127.0.0.1" }
	cfg2.ListenPort = 0
	cl2, err := torrent.NewClient(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	leech, err := cl2.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}

	obs := make(chan Observation, 4)
	l, err := NewListener(p, ListenerConfig{
		Lookup:  func(h metainfo.Hash) (int, bool) { return pieces, h == hash },
		Deliver: func(o Observation) { obs <- o },
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	leech.DownloadAll() // a client that needs data dials the peers it knows
	leech.AddPeers([]torrent.PeerInfo{{Addr: ln.Addr().(*net.TCPAddr), Trusted: true}})
	select {
	case o := <-obs:
		t.Logf("incoming anacrolix: outcome %v known %v pieces %d listen port %d (client port %d) client %q v=%q", o.Outcome, o.Known, o.Last.Pieces, o.ListenPort, cl2.LocalPort(), o.Client.Family, o.Client.V)
		if o.Direction != Incoming || o.Torrent != hash || !o.Known || o.Last.Pieces != 0 || !o.Flags.HaveNone {
			t.Fatalf("incoming observation %+v", o)
		}
		if o.ListenPort != uint16(cl2.LocalPort()) {
			t.Errorf("listen port %d from `p`, want %d", o.ListenPort, cl2.LocalPort())
		}
	case <-time.After(20 * time.Second): // liveness bound only
		t.Fatalf("anacrolix never connected to the listener (stats %+v)", l.Stats())
	}
}
