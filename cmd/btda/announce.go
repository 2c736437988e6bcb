package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/dht"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/discovery/tracker"
)

type announceOptions struct {
	config  configSource
	torrent string
	magnet  string
	scrape  bool
	dht     bool
	timeout time.Duration
}

// announceLine is one JSON line of `btda announce`: one tracker or the DHT, under one of
// the torrent's wire hashes (a hybrid has two lines per source: v1 and truncated v2).
type announceLine struct {
	Source      string   `json:"source"`            // "tracker" or "dht"
	Tracker     string   `json:"tracker,omitempty"` // redacted URL
	InfoHash    string   `json:"infohash"`          // the wire hash announced or looked up under
	Peers       int      `json:"peers"`
	PeerList    []string `json:"peer_list,omitempty"`
	Interval    string   `json:"interval,omitempty"`
	MinInterval string   `json:"min_interval,omitempty"`
	Seeders     *int64   `json:"seeders,omitempty"`
	Leechers    *int64   `json:"leechers,omitempty"`
	Downloaded  *int64   `json:"downloaded,omitempty"`
	Warning     string   `json:"warning,omitempty"`
	Error       string   `json:"error,omitempty"`
	ScrapeError string   `json:"scrape_error,omitempty"`
}

// torrentArg loads what a one-shot subcommand works on: a .torrent file (t and its magnet)
// or a magnet URI (t nil).
func torrentArg(file, magnet string) (t *metainfo.Torrent, m *metainfo.Magnet, err error) {
	switch {
	case file != "" && magnet != "":
		return nil, nil, errors.New("give --torrent or --magnet, not both")
	case file != "":
		if t, err = metainfo.Load(file); err != nil {
			return nil, nil, err
		}
		return t, t.Magnet(), nil
	case magnet != "":
		m, err = metainfo.ParseMagnet(magnet)
		return nil, m, err
	}
	return nil, nil, errors.New("give --torrent FILE or --magnet URI")
}

// announce runs one round against every tracker of a torrent (and optionally one DHT
// lookup) and prints one JSON line per source: the tool for "is this source dead?".
func announce(ctx context.Context, o announceOptions, stdout io.Writer, logger *slog.Logger) int {
	cfg, err := o.config.load(nil)
	if err != nil {
		logger.Error("cannot load configuration", "err", err)
		return 1
	}
	t, m, err := torrentArg(o.torrent, o.magnet)
	if err != nil {
		logger.Error("cannot load the torrent", "err", err)
		return 1
	}
	e := discovery.NewMagnetEntry("", m)
	if t != nil {
		e = discovery.NewFileEntry("", t)
	}
	info := e.TrackerInfo()
	hashes := info.AnnounceHashes()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	failed := false

	src, err := sourceAddrs(cfg, nil)
	if err != nil {
		logger.Error("bad source address", "err", err)
		return 1
	}
	tcfg := tracker.Config{
		Source:      src,
		Port:        uint16(cfg.AnnouncePort()),
		NumWant:     int32(cfg.Trackers.NumWant),
		HTTPTimeout: time.Duration(cfg.Trackers.Timeout),
		UDPBase:     time.Duration(cfg.Trackers.Timeout),
		Logger:      logger,
	}
	results := tracker.AnnounceOnce(ctx, tcfg, info, o.scrape)
	if len(results) == 0 && !o.dht {
		logger.Warn("the torrent names no tracker; try --dht")
	}
	for _, r := range results {
		for _, hr := range r.Hashes {
			l := announceLine{Source: "tracker", Tracker: tracker.Redact(r.URL), InfoHash: hr.Hash.String()}
			if hr.AnnounceErr != nil {
				l.Error = hr.AnnounceErr.Error()
				failed = true
			}
			if a := hr.Announce; a != nil {
				l.Peers = len(a.Peers)
				l.PeerList = addrStrings(a.Peers)
				if a.Interval > 0 {
					l.Interval = a.Interval.String()
				}
				if a.MinInterval > 0 {
					l.MinInterval = a.MinInterval.String()
				}
				l.Warning = a.Warning
			}
			if hr.ScrapeErr != nil {
				l.ScrapeError = hr.ScrapeErr.Error()
			}
			if s := hr.Scrape; s != nil {
				l.Seeders, l.Leechers, l.Downloaded = &s.Seeders, &s.Leechers, &s.Downloaded
			}
			enc.Encode(l)
		}
	}

	if o.dht {
		// Temporary nodes on ephemeral ports, so they never collide with a running btda.
		listen, listen6, err := dhtListen(cfg, src)
		if err != nil {
			logger.Error("cannot set up the DHT node", "err", err)
			return 1
		}
		found, err := dht.LookupOnce(ctx, dht.Config{
			Listen:        ephemeral(listen),
			IPv6:          cfg.DHT.IPv6,
			Listen6:       ephemeral(listen6),
			Bootstrap:     cfg.DHT.BootstrapNodes,
			LookupTimeout: time.Duration(cfg.DHT.LookupTimeout),
		}, hashes, logger)
		if err != nil {
			// One failed line per hash, as for a tracker that cannot be reached: the output
			// names every source that was tried.
			found = found[:0]
			for _, h := range hashes {
				found = append(found, dht.HashPeers{Hash: h, Err: err})
			}
		}
		for _, hp := range found {
			l := announceLine{Source: "dht", InfoHash: hp.Hash.String()}
			if hp.Err != nil {
				l.Error = hp.Err.Error()
				failed = true
			}
			l.Peers = len(hp.Peers)
			l.PeerList = addrStrings(hp.Peers)
			enc.Encode(l)
		}
	}
	if failed {
		return 1
	}
	return 0
}

// ephemeral is addr with port 0.
func ephemeral(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, "0")
}

func addrStrings(as []netip.AddrPort) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
