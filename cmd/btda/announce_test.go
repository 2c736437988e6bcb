package main

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/bencode"

	"github.com/btda/btda/internal/swarmtest/swarmdht"
	"github.com/btda/btda/internal/swarmtest/swarmtracker"
)

// writeTestTorrent writes a small v1 torrent announcing to the given URLs and returns its
// path and info hash.
func writeTestTorrent(t *testing.T, dir string, announce []string) (string, [20]byte) {
	t.Helper()
	info := map[string]any{
		"name":         "btda-announce-test",
		"piece length": 16384,
		"length":       16384 * 4,
		"pieces":       strings.Repeat("\x01", 20*4),
	}
	infoBytes, err := bencode.EncodeBytes(info)
	if err != nil {
		t.Fatal(err)
	}
	tiers := make([][]string, len(announce))
	for i, u := range announce {
		tiers[i] = []string{u}
	}
	data, err := bencode.EncodeBytes(map[string]any{
		"announce":      announce[0],
		"announce-list": tiers,
		"info":          bencode.RawMessage(infoBytes),
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "announce-test.torrent")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, sha1.Sum(infoBytes)
}

// TestAnnounceCommand runs `btda announce --scrape --dht` against a loopback tracker (HTTP
// and UDP) and a loopback DHT, and checks every source reports the swarm's peers.
func TestAnnounceCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	tr, err := swarmtracker.Start(ctx, swarmtracker.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cluster, err := swarmdht.Start(ctx, 4, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	dir := t.TempDir()
	path, ih := writeTestTorrent(t, dir, []string{tr.AnnounceURL(), tr.UDPAnnounceURL(), "http://127.0.0.1:1/announce"})
	peers := []netip.AddrPort{
		netip.MustParseAddrPort("127.1.0.1:6881"),
		netip.MustParseAddrPort("127.1.0.2:6882"),
		netip.MustParseAddrPort("127.1.0.3:6883"),
	}
	tr.SetPeers(ih, peers)
	tr.SetScrape(ih, 7, 3, 42)
	cluster.Announce(ih, peers)

	var boot []string
	for _, a := range cluster.Addrs() {
		boot = append(boot, `"`+a.String()+`"`)
	}
	cfg := filepath.Join(dir, "btda.yml")
	os.WriteFile(cfg, []byte("trackers:\n  timeout: 2s\ndht:\n  listen_address: \"127.0.0.1:0\"\n  lookup_timeout: 10s\n  bootstrap_nodes: ["+strings.Join(boot, ",")+"]\n"), 0o600)

	out, stderr, code := runBTDA(t, "--config.file", cfg, "announce", "--torrent", path, "--scrape", "--dht", "--timeout", "40s")
	if code != 1 { // the third tracker refuses connections
		t.Errorf("exit %d, want 1 (one tracker is dead)\n%s", code, stderr)
	}
	want := []string{"127.1.0.1:6881", "127.1.0.2:6882", "127.1.0.3:6883"}
	var sawHTTP, sawUDP, sawDead, sawDHT bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l announceLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		sort.Strings(l.PeerList)
		switch {
		case l.Source == "dht":
			sawDHT = true
			if l.Error != "" || strings.Join(l.PeerList, ",") != strings.Join(want, ",") {
				t.Errorf("dht line: %+v", l)
			}
		case strings.HasPrefix(l.Tracker, "http://127.0.0.1:1/"):
			sawDead = l.Error != "" && l.Peers == 0
		case strings.HasPrefix(l.Tracker, "http://"), strings.HasPrefix(l.Tracker, "udp://"):
			if strings.HasPrefix(l.Tracker, "http://") {
				sawHTTP = true
			} else {
				sawUDP = true
			}
			if l.Error != "" || strings.Join(l.PeerList, ",") != strings.Join(want, ",") || l.Interval != "30m0s" {
				t.Errorf("tracker line: %+v", l)
			}
			if l.Seeders == nil || *l.Seeders != 7 || *l.Leechers != 3 || *l.Downloaded != 42 {
				t.Errorf("scrape figures: %+v", l)
			}
		}
	}
	if !sawHTTP || !sawUDP || !sawDead || !sawDHT {
		t.Fatalf("missing sources (http %v udp %v dead %v dht %v) in:\n%s\n%s", sawHTTP, sawUDP, sawDead, sawDHT, out, stderr)
	}
}

// TestAnnounceCommandHybrid: a hybrid magnet is announced and looked up under both of its
// wire hashes, one line each per source; a v2-only peer shows under the truncated v2 hash.
func TestAnnounceCommandHybrid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	tr, err := swarmtracker.Start(ctx, swarmtracker.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cluster, err := swarmdht.Start(ctx, 4, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	v1 := sha1.Sum([]byte("hybrid v1"))
	v2full := sha256.Sum256([]byte("hybrid v2"))
	v2 := [20]byte(v2full[:20])
	v2Peer := netip.MustParseAddrPort("127.1.0.9:6889")
	tr.SetPeers(v2, []netip.AddrPort{v2Peer})
	cluster.Announce(v2, []netip.AddrPort{v2Peer})
	magnet := "magnet:?xt=urn:btih:" + hex.EncodeToString(v1[:]) + "&xt=urn:btmh:1220" + hex.EncodeToString(v2full[:]) +
		"&tr=" + url.QueryEscape(tr.AnnounceURL())

	var boot []string
	for _, a := range cluster.Addrs() {
		boot = append(boot, `"`+a.String()+`"`)
	}
	cfg := filepath.Join(t.TempDir(), "btda.yml")
	os.WriteFile(cfg, []byte("trackers:\n  timeout: 2s\ndht:\n  listen_address: \"127.0.0.1:0\"\n  lookup_timeout: 10s\n  bootstrap_nodes: ["+strings.Join(boot, ",")+"]\n"), 0o600)
	out, stderr, code := runBTDA(t, "--config.file", cfg, "announce", "--magnet", magnet, "--scrape", "--dht", "--timeout", "40s")
	if code != 0 {
		t.Errorf("exit %d\n%s", code, stderr)
	}
	got := map[string]string{} // source/infohash → peers
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l announceLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		if l.Error != "" {
			t.Errorf("line %+v", l)
		}
		got[l.Source+"/"+l.InfoHash] = strings.Join(l.PeerList, ",")
	}
	want := map[string]string{
		"tracker/" + hex.EncodeToString(v1[:]): "", "tracker/" + hex.EncodeToString(v2[:]): v2Peer.String(),
		"dht/" + hex.EncodeToString(v1[:]): "", "dht/" + hex.EncodeToString(v2[:]): v2Peer.String(),
	}
	if !maps.Equal(got, want) {
		t.Errorf("lines %v, want %v\n%s", got, want, out)
	}
	for _, h := range [][20]byte{v1, v2} {
		if n := len(tr.AnnouncesFor(h)); n != 2 {
			t.Errorf("%d announces under %x, want started and stopped", n, h[:4])
		}
	}
}
