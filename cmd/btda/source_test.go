package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/internal/config"
	"github.com/btda/btda/probe"
)

// sourceIP is the source address the tests configure: on loopback, which Linux routes
// locally, so that the accepting side can tell it from the kernel's default 127.0.0.1.
const sourceIP = "127.0.0.5"

// remotes records the remote addresses of what a loopback server accepts.
type remotes struct {
	mu  sync.Mutex
	ips []string
}

func (r *remotes) add(addr string) {
	ap, _ := netip.ParseAddrPort(addr)
	r.mu.Lock()
	r.ips = append(r.ips, ap.Addr().String())
	r.mu.Unlock()
}

func (r *remotes) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ips...)
}

// acceptAll accepts on ln until it closes, recording and closing every connection.
func acceptAll(t *testing.T, ln net.Listener, rec *remotes) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rec.add(c.RemoteAddr().String())
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// TestSourceAddressDaemon builds a running btda's parts with peer.source_addresses set and
// reads the addresses of real connections: the peer listener listens on the source address
// (peer.listen_address left with an empty host), the DHT node's socket is bound to it, and
// probe sessions and metadata fetches connect from it.
func TestSourceAddressDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
peer:
  listen_address: ":0"
  source_addresses: [%s]
trackers:
  enabled: false
dht:
  listen_address: ":0"
  bootstrap_nodes: []
storage:
  path: %s
`, sourceIP, filepath.Join(dir, "btda.db"))))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	dc, _, err := newParts(cfg, daemon.Shard{}, prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer daemon.ClosePartial(dc)
	if got := netip.MustParseAddrPort(dc.PeerListener.Addr().String()).Addr().String(); got != sourceIP {
		t.Errorf("peer listener on %v, want on %s", dc.PeerListener.Addr(), sourceIP)
	}
	if got := dc.DHT.Addr("ipv4").Addr().String(); got != sourceIP {
		t.Errorf("DHT node on %v, want on %s", dc.DHT.Addr("ipv4"), sourceIP)
	}

	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rec remotes
	acceptAll(t, peer, &rec)
	addr := netip.MustParseAddrPort(peer.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var hash [20]byte
	hash[0] = 1
	obs := dc.Prober.Probe(ctx, probe.Target{Torrent: hash, Pieces: 4, Addr: addr, Source: discovery.SourceTracker})
	switch obs.Outcome {
	case probe.OutcomeUnreachable, probe.OutcomeRefused, probe.OutcomeConnectTimeout, probe.OutcomeLocalError:
		t.Fatalf("probe did not connect: %s %v", obs.Outcome, obs.Err)
	}
	if _, err := dc.Metadata.Dial(ctx, "tcp", addr.String()); err != nil {
		t.Fatalf("metadata dial: %v", err)
	}
	waitUntil(t, 30*time.Second, "two connections", func() string {
		if n := len(rec.get()); n < 2 {
			return fmt.Sprintf("%d connections", n)
		}
		return ""
	})
	for _, ip := range rec.get() {
		if ip != sourceIP {
			t.Errorf("peer connection from %s, want from %s", ip, sourceIP)
		}
	}
}

// TestSourceAddressAnnounce: `btda announce` reaches an HTTP tracker from the source
// address.
func TestSourceAddressAnnounce(t *testing.T) {
	var rec remotes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r.RemoteAddr)
		w.Write([]byte("d8:intervali1800e5:peers6:\x7f\x01\x00\x01\x1a\xe1e"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	path, _ := writeTestTorrent(t, dir, []string{srv.URL + "/announce"})
	cfgPath := filepath.Join(dir, "btda.yml")
	if err := os.WriteFile(cfgPath, []byte("peer:\n  source_addresses: ["+sourceIP+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runBTDA(t, "--config.file", cfgPath, "announce", "--torrent", path, "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "127.1.0.1:6881") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	if ips := rec.get(); len(ips) != 2 || ips[0] != sourceIP || ips[1] != sourceIP {
		t.Errorf("tracker requests (started, stopped) from %v, want from %s", ips, sourceIP)
	}

	// An interface that does not exist is a clear error naming the key.
	if err := os.WriteFile(cfgPath, []byte("peer:\n  source_addresses: [nosuchif0]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runBTDA(t, "--config.file", cfgPath, "announce", "--torrent", path)
	if code != 1 || !strings.Contains(stderr, "peer.source_addresses") || !strings.Contains(stderr, "nosuchif0") {
		t.Errorf("missing interface: exit %d\n%s", code, stderr)
	}
}

// TestAnnounceDHTIPv6Listen: `btda announce --dht` builds its IPv6 node from dht.ipv6 and
// dht.listen_address_v6 (the test DHT cluster is IPv4-only, so this checks the address
// reaches the node: one this machine does not have cannot be bound).
func TestAnnounceDHTIPv6Listen(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeTestTorrent(t, dir, []string{"http://127.0.0.1:1/announce"})
	cfgPath := filepath.Join(dir, "btda.yml")
	if err := os.WriteFile(cfgPath, []byte("dht:\n  ipv6: true\n  listen_address: \"127.0.0.1:0\"\n  listen_address_v6: \"[2001:db8::1]:17000\"\n  bootstrap_nodes: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runBTDA(t, "--config.file", cfgPath, "announce", "--torrent", path, "--dht", "--timeout", "10s")
	if code != 1 || !strings.Contains(out, `"source":"dht"`) || !strings.Contains(out, "2001:db8::1") {
		t.Errorf("exit %d, want the DHT line to fail on [2001:db8::1]:0\n%s\n%s", code, out, stderr)
	}
}
