package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/discovery/metainfo"
)

// Interop with libtorrent-rasterbar 2.0 (Debian's python3-libtorrent), the library behind
// qBittorrent and Deluge: a seed that forces encryption (pe_forced both ways), and a seed
// that speaks uTP only. btda, at its default policy, dials it and reads it as a seed; then
// the seed dials btda's listener and btda reads it again.

const ltPython = "/usr/bin/python3"

// startLibtorrent runs testdata/ltpeer.py in mode; it returns the seed's address, its
// torrent, and a function that makes it dial addr.
func startLibtorrent(t *testing.T, mode string) (netip.AddrPort, *metainfo.Torrent, func(addr netip.AddrPort)) {
	t.Helper()
	if err := exec.Command(ltPython, "-c", "import libtorrent").Run(); err != nil {
		t.Skipf("python3-libtorrent is not importable (%v): install Debian's python3-libtorrent to run this test", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, ltPython, filepath.Join("testdata", "ltpeer.py"), dir, mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second): // libtorrent's session teardown can dawdle; it holds no data we need
			cancel()
			<-done
		}
		cancel()
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var port int
	select {
	case l := <-line:
		if port, err = strconv.Atoi(strings.TrimPrefix(l, "PORT ")); err != nil {
			t.Fatalf("ltpeer.py said %q; stderr: %s", l, stderr.String())
		}
	case <-time.After(40 * time.Second): // liveness bound
		t.Fatalf("ltpeer.py did not start; stderr: %s", stderr.String())
	}
	tor, err := metainfo.Load(filepath.Join(dir, "payload.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	connect := func(a netip.AddrPort) {
		if _, err := fmt.Fprintf(stdin, "connect %s %d\n", a.Addr(), a.Port()); err != nil {
			t.Errorf("telling ltpeer.py to connect: %v", err)
		}
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), tor, connect
}

func TestInteropLibtorrent(t *testing.T) {
	if testing.Short() {
		t.Skip("interop with libtorrent takes a few seconds")
	}
	for _, c := range []struct {
		mode      string
		transport Transport
		encrypted bool
	}{{"encrypted", TransportTCP, true}, {"utp", TransportUTP, false}} {
		t.Run(c.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			peer, tor, connect := startLibtorrent(t, c.mode)
			sock := listenUTP(t)
			p, err := NewProber(SessionConfig{Version: "test", QuietWindow: time.Second, SessionCap: 5 * time.Second,
				DialTimeout: 3 * time.Second, HandshakeTimeout: 3 * time.Second, UTP: sock})
			if err != nil {
				t.Fatal(err)
			}
			tg := Target{Torrent: tor.Hash(), Pieces: tor.Pieces, Addr: peer}
			o := p.Probe(ctx, tg)
			if !o.Outcome.Reached() || !o.Known || o.Last.Pieces != tor.Pieces || !o.Flags.Seed ||
				o.Transport != c.transport || (c.encrypted && o.Encryption == EncryptionNone) {
				t.Fatalf("outgoing: outcome %v (%v), known %v, %d of %d pieces, transport %v, encryption %v, fallbacks %+v",
					o.Outcome, o.Err, o.Known, o.Last.Pieces, tor.Pieces, o.Transport, o.Encryption, o.Fallbacks)
			}
			t.Logf("outgoing: %v over %v, encryption %v, fallbacks %+v, client %s %s", o.Outcome, o.Transport,
				o.Encryption, o.Fallbacks, o.Client.Family, o.Client.Version)
			// The revisit goes straight to the transport that worked. (Its encryption may
			// take a retry: libtorrent can refuse a connection from the same uTP endpoint
			// while the previous one is still closing. Real revisits come minutes later;
			// on a busy machine the closing can take a while, so a refused revisit is
			// tried again a little later, a few times.)
			tg.Hints = o.Hints()
			for try := 1; ; try++ {
				t0 := time.Now()
				o2 := p.Probe(ctx, tg)
				if !o2.Outcome.Reached() && try < 5 {
					t.Logf("revisit %d with hints %#x: %v (%v); libtorrent still closing the previous connection?", try, tg.Hints, o2.Outcome, o2.Err)
					time.Sleep(time.Second)
					continue
				}
				if !o2.Outcome.Reached() || o2.Transport != c.transport || o2.Fallbacks.ToUTP+o2.Fallbacks.ToTCP != 0 {
					t.Errorf("revisit %d with hints %#x: outcome %v over %v, fallbacks %+v", try, tg.Hints, o2.Outcome, o2.Transport, o2.Fallbacks)
				}
				t.Logf("revisit %d took %v", try, time.Since(t0))
				break
			}

			obs := make(chan Observation, 10)
			l, err := NewListener(p, ListenerConfig{
				Lookup:     func(h metainfo.Hash) (int, bool) { return tor.Pieces, h == tor.Hash() },
				Deliver:    func(o Observation) { obs <- o },
				InfoHashes: func() []metainfo.Hash { return []metainfo.Hash{tor.Hash()} },
			})
			if err != nil {
				t.Fatal(err)
			}
			port := utpAddr(sock).Port()
			tcp, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
			if err != nil {
				t.Fatal(err)
			}
			sctx, stop := context.WithCancel(ctx)
			done := make(chan error, 2)
			go func() { done <- l.Serve(sctx, tcp) }()
			go func() { done <- l.Serve(sctx, sock) }()
			defer func() {
				stop()
				<-done
				<-done
			}()
			tick := time.NewTicker(5 * time.Second)
			defer tick.Stop()
			for {
				connect(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
				t.Logf("asked libtorrent to connect at %v", time.Now().Format("15:04:05.000"))
				select {
				case in := <-obs:
					if !in.Outcome.Reached() || !in.Known || in.Last.Pieces != tor.Pieces || in.Transport != c.transport ||
						(c.encrypted && in.Encryption == EncryptionNone) {
						t.Fatalf("incoming: outcome %v (%v), known %v, %d pieces, transport %v, encryption %v",
							in.Outcome, in.Err, in.Known, in.Last.Pieces, in.Transport, in.Encryption)
					}
					t.Logf("incoming: %v over %v, encryption %v", in.Outcome, in.Transport, in.Encryption)
					return
				case <-tick.C:
				case <-ctx.Done():
					t.Fatalf("libtorrent never reached btda's listener; stats %+v", l.Stats())
				}
			}
		})
	}
}
