package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/export"
	"github.com/btda/btda/status"
)

// Source is what a report reads. only (zero: every torrent) restricts the walks.
type Source interface {
	// Torrents lists the torrents; live is true when they come from a running btda (names,
	// states and the trackers' scrape figures are known only then).
	Torrents(ctx context.Context) (ts []status.Torrent, live bool, err error)
	Downloads(ctx context.Context, only metainfo.Hash, fn func(*status.Download) error) error
	Peers(ctx context.Context, only metainfo.Hash, fn func(*status.Peer) error) error
	// Name says where the data came from, for the report's header.
	Name() string
}

// StoreSource reads a store (opened read-only, or a running daemon's own store).
func StoreSource(st *store.Store, name string) Source { return storeSource{st, name} }

type storeSource struct {
	st   *store.Store
	name string
}

func (s storeSource) Name() string { return s.name }

func (s storeSource) Torrents(context.Context) ([]status.Torrent, bool, error) {
	a, err := s.st.ReadAggregates()
	if err != nil {
		return nil, false, err
	}
	return status.FromStore(a), false, nil
}

func (s storeSource) Downloads(ctx context.Context, only metainfo.Hash, fn func(*status.Download) error) error {
	return s.st.WalkDownloads(ctx, time.Time{}, nil, func(d store.Download) error {
		if !only.IsZero() && d.Torrent != only {
			return nil
		}
		v := status.DownloadOf(&d)
		return fn(&v)
	})
}

func (s storeSource) Peers(ctx context.Context, only metainfo.Hash, fn func(*status.Peer) error) error {
	return s.st.WalkPeers(ctx, nil, func(k store.PeerKey, p *store.Peer) error {
		if !only.IsZero() && p.Torrent != only {
			return nil
		}
		v := status.PeerOf(k, p)
		return fn(&v)
	})
}

// URLSource reads a running btda's JSON API at base (http[s]://[user:pass@]host:port).
func URLSource(c *http.Client, base string) Source { return urlSource{c, base} }

type urlSource struct {
	c    *http.Client
	base string
}

func (s urlSource) Name() string {
	u, err := url.Parse(s.base)
	if err != nil {
		return "a running btda"
	}
	u.User = nil
	return u.String()
}

func (s urlSource) Torrents(ctx context.Context) ([]status.Torrent, bool, error) {
	var out []status.Torrent
	err := export.List(ctx, s.c, s.base, "/api/v1/torrents", url.Values{}, func(dec *json.Decoder) error {
		var t status.Torrent
		if err := dec.Decode(&t); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	return out, true, err
}

func query(only metainfo.Hash) url.Values {
	q := url.Values{"limit": {fmt.Sprint(export.PageSize)}}
	if !only.IsZero() {
		q.Set("torrent", only.String())
	}
	return q
}

func (s urlSource) Downloads(ctx context.Context, only metainfo.Hash, fn func(*status.Download) error) error {
	return export.List(ctx, s.c, s.base, "/api/v1/downloads", query(only), func(dec *json.Decoder) error {
		var d status.Download
		if err := dec.Decode(&d); err != nil {
			return err
		}
		return fn(&d)
	})
}

func (s urlSource) Peers(ctx context.Context, only metainfo.Hash, fn func(*status.Peer) error) error {
	return export.List(ctx, s.c, s.base, "/api/v1/peers", query(only), func(dec *json.Decoder) error {
		var p status.Peer
		if err := dec.Decode(&p); err != nil {
			return err
		}
		return fn(&p)
	})
}

// Report is a finished report.
type Report struct {
	Generated time.Time
	Source    string
	Live      bool     // from a running btda: names and scrape figures are known
	All       *Figures // every selected torrent together
	Torrents  []*Figures
}

// ErrNotFound is returned when the selected torrent is not in the source.
var ErrNotFound = errors.New("torrent not found")

// Build reads src and computes the report's figures, for torrent only (zero: all).
func Build(ctx context.Context, src Source, only metainfo.Hash, now time.Time) (*Report, error) {
	ts, live, err := src.Torrents(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the torrents: %w", err)
	}
	if !only.IsZero() {
		var sel []status.Torrent
		for _, t := range ts {
			if t.InfoHash == only.String() {
				sel = append(sel, t)
			}
		}
		if len(sel) == 0 {
			return nil, fmt.Errorf("torrent %s: %w in %s", only, ErrNotFound, src.Name())
		}
		ts = sel
	}
	c := NewCollector(ts)
	if err := src.Downloads(ctx, only, func(d *status.Download) error { c.Download(d); return nil }); err != nil {
		return nil, fmt.Errorf("reading the download log: %w", err)
	}
	if err := src.Peers(ctx, only, func(p *status.Peer) error { c.Peer(p); return nil }); err != nil {
		return nil, fmt.Errorf("reading the peer records: %w", err)
	}
	r := &Report{Generated: now.UTC(), Source: src.Name(), Live: live, All: c.All(), Torrents: c.Torrents()}
	if live {
		var sum int64
		for _, f := range r.Torrents {
			if n, ok := f.Scrape(); ok {
				sum += n
			}
		}
		r.All.Torrent.Scrapes = []status.Scrape{{Tracker: "all", Downloaded: sum}}
	}
	return r, nil
}
