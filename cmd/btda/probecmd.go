package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/srcaddr"
	"github.com/btda/btda/probe"
)

type probeOptions struct {
	config  configSource
	torrent string
	magnet  string
	peers   []string
}

// observationJSON is one line of `btda probe`: everything a session learned about a peer.
type observationJSON struct {
	Peer        string      `json:"peer"`
	Infohash    string      `json:"infohash"`
	Outcome     string      `json:"outcome"`
	Violation   string      `json:"violation,omitempty"`
	Error       string      `json:"error,omitempty"`
	Transport   string      `json:"transport,omitempty"`  // tcp, utp
	Encryption  string      `json:"encryption,omitempty"` // none, header (MSE, then plaintext), rc4
	Fallbacks   int         `json:"fallbacks,omitempty"`  // connections tried before this one
	Known       bool        `json:"progress_known"`
	Pieces      int         `json:"pieces"`
	NumPieces   int         `json:"num_pieces"`
	Percent     float64     `json:"percent"`
	First       *pointJSON  `json:"first,omitempty"`
	Last        *pointJSON  `json:"last,omitempty"`
	Flags       probe.Flags `json:"flags"`
	PeerID      string      `json:"peer_id,omitempty"`
	Client      string      `json:"client,omitempty"`
	ClientV     string      `json:"v,omitempty"`
	ListenPort  uint16      `json:"listen_port,omitempty"`
	CompleteAgo int         `json:"complete_ago"`
	PEX         []string    `json:"pex,omitempty"`
	Messages    int         `json:"messages"`
	Timings     timingsJSON `json:"timings_seconds"`
}

type pointJSON struct {
	Pieces int       `json:"pieces"`
	At     time.Time `json:"at"`
}

type timingsJSON struct {
	Connect       float64 `json:"connect"`
	Handshake     float64 `json:"handshake"`
	FirstProgress float64 `json:"first_progress"`
	Total         float64 `json:"total"`
	MaxGap        float64 `json:"max_gap"`
}

func toJSON(o probe.Observation) observationJSON {
	j := observationJSON{
		Peer: o.Addr.String(), Infohash: o.Torrent.String(), Outcome: o.Outcome.String(), Violation: o.Violation,
		Known: o.Known, NumPieces: o.NumPieces, Flags: o.Flags, ClientV: o.Client.V, ListenPort: o.ListenPort,
		CompleteAgo: o.CompleteAgo, Messages: o.Messages, PEX: addrStrings(o.PEX),
		Timings: timingsJSON{o.Timings.Connect.Seconds(), o.Timings.Handshake.Seconds(), o.Timings.FirstProgress.Seconds(),
			o.Timings.Total.Seconds(), o.Timings.MaxGap.Seconds()},
	}
	if o.Err != nil {
		j.Error = o.Err.Error()
	}
	if o.Transport != 0 {
		j.Transport = o.Transport.String()
	}
	if o.Encryption != 0 {
		j.Encryption = o.Encryption.String()
	}
	fb := o.Fallbacks
	j.Fallbacks = int(fb.ToEncrypted) + int(fb.ToPlaintext) + int(fb.ToUTP) + int(fb.ToTCP)
	if o.Known {
		j.Pieces = o.Last.Pieces
		if o.NumPieces > 0 {
			j.Percent = 100 * float64(o.Last.Pieces) / float64(o.NumPieces)
		}
		j.First = &pointJSON{o.First.Pieces, o.First.At}
		j.Last = &pointJSON{o.Last.Pieces, o.Last.At}
	}
	if o.Client.PeerID != ([20]byte{}) {
		j.PeerID = fmt.Sprintf("%q", string(o.Client.PeerID[:]))
		j.Client = o.Client.Family
		if o.Client.Version != "" {
			j.Client += " " + o.Client.Version
		}
	}
	return j
}

func parsePeers(args []string) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(args))
	for _, a := range args {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, fmt.Errorf("peer %q: want IP:PORT or [IPv6]:PORT", a)
		}
		out = append(out, ap)
	}
	return out, nil
}

// probeCmd probes the given peers once, concurrently, and prints one JSON observation per
// peer, in the order given: the tool for "why does this number look wrong?". For a magnet
// the metadata is first fetched from the same peers, for the piece count.
func probeCmd(ctx context.Context, o probeOptions, stdout io.Writer, logger *slog.Logger) int {
	cfg, err := o.config.load(nil)
	if err != nil {
		logger.Error("cannot load configuration", "err", err)
		return 1
	}
	peers, err := parsePeers(o.peers)
	if err != nil {
		logger.Error("bad peer address", "err", err)
		return 2
	}
	t, m, err := torrentArg(o.torrent, o.magnet)
	if err != nil {
		logger.Error("cannot load the torrent", "err", err)
		return 1
	}
	src, err := sourceAddrs(cfg, nil)
	if err != nil {
		logger.Error("bad source address", "err", err)
		return 1
	}
	sc := sessionConfig(cfg, 0, src, logger)
	if t == nil {
		t, err = fetchMetadata(ctx, time.Duration(cfg.Probe.ConnectTimeout), sc.Dial, m, peers, logger)
		if err != nil {
			logger.Error("cannot fetch the magnet's metadata from the given peers", "err", err)
			return 1
		}
	}
	if cfg.Peer.UTP {
		// An ephemeral uTP socket for this run's sessions, so uTP-only peers are read too
		// (from the source address, when one is set).
		sock, err := probe.ListenUTP(utpProbeAddress(src))
		if err != nil {
			logger.Error("cannot open a uTP socket", "err", err)
			return 1
		}
		defer sock.Close()
		sc.UTP = sock
	}
	prober, err := probe.NewProber(sc)
	if err != nil {
		logger.Error("cannot set up the prober", "err", err)
		return 1
	}
	results := make([]probe.Observation, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = prober.Probe(ctx, probe.Target{Torrent: t.Hash(), Pieces: t.Pieces, Addr: p, Source: discovery.SourceMagnet})
		}()
	}
	wg.Wait()
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	status := 0
	for _, r := range results {
		if !r.Outcome.Reached() {
			status = 1
		}
		enc.Encode(toJSON(r))
	}
	return status
}

// fetchMetadata fetches m's metadata from peers; dial nil is the default dialer.
func fetchMetadata(ctx context.Context, dialTimeout time.Duration, dial func(context.Context, string, string) (net.Conn, error),
	m *metainfo.Magnet, peers []netip.AddrPort, logger *slog.Logger) (*metainfo.Torrent, error) {
	ctx, cancel := context.WithTimeout(ctx, daemon.MetadataTimeout)
	defer cancel()
	return probe.FetchMetadata(ctx, probe.MetadataConfig{DialTimeout: dialTimeout, Dial: dial, Logger: logger}, m, peers)
}

// metadataCmd fetches a magnet's info dictionary from the given peers and prints the
// summary `btda inspect` would print for the .torrent file.
func metadataCmd(ctx context.Context, cf configSource, magnet string, peerArgs []string, stdout io.Writer, logger *slog.Logger) int {
	cfg, err := cf.load(nil)
	if err != nil {
		logger.Error("cannot load configuration", "err", err)
		return 1
	}
	m, err := metainfo.ParseMagnet(magnet)
	if err != nil {
		logger.Error("bad magnet", "err", err)
		return 1
	}
	peers, err := parsePeers(peerArgs)
	if err != nil {
		logger.Error("bad peer address", "err", err)
		return 2
	}
	src, err := sourceAddrs(cfg, nil)
	if err != nil {
		logger.Error("bad source address", "err", err)
		return 1
	}
	t, err := fetchMetadata(ctx, time.Duration(cfg.Probe.ConnectTimeout), sessionConfig(cfg, 0, src, nil).Dial, m, peers, logger)
	if err != nil {
		logger.Error("metadata not fetched", "err", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.Encode(summarize(magnet, t))
	return 0
}

// utpProbeAddress is where `btda probe` opens its ephemeral uTP socket: the IPv4 source
// address when one is set (uTP goes out from its socket's address), else any.
func utpProbeAddress(src srcaddr.Addrs) string {
	if src.V4.IsValid() {
		return netip.AddrPortFrom(src.V4, 0).String()
	}
	return ":0"
}
