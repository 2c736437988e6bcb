// Package export writes btda's tables (peers, downloads, torrents) as CSV (RFC 4180, with a
// header row) or JSON Lines, read from a store file or from a running btda's API. Rows are
// written as they are read: memory stays bounded whatever the number of peers.
package export

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/status"
)

// Tables lists the exportable tables.
var Tables = []string{"peers", "downloads", "torrents"}

// Formats lists the output formats.
var Formats = []string{"csv", "jsonl"}

// Options select what is exported.
type Options struct {
	Table   string        // peers, downloads or torrents
	Format  string        // csv or jsonl
	Torrent metainfo.Hash // zero: every torrent
	// Since keeps downloads crossed at or after it, and peers last contacted at or after it.
	Since time.Time
}

func (o *Options) check() error {
	if !contains(Tables, o.Table) {
		return fmt.Errorf("unknown table %q (want one of %s)", o.Table, strings.Join(Tables, ", "))
	}
	if !contains(Formats, o.Format) {
		return fmt.Errorf("unknown format %q (want one of %s)", o.Format, strings.Join(Formats, ", "))
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// row is one exported item.
type row interface{ Row() []string }

// writer writes rows in the chosen format.
type writer struct {
	bw   *bufio.Writer
	csv  *csv.Writer
	json *json.Encoder
	n    int
}

func newWriter(w io.Writer, o Options) (*writer, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	wr := &writer{bw: bw}
	if o.Format == "jsonl" {
		wr.json = json.NewEncoder(bw)
		return wr, nil
	}
	wr.csv = csv.NewWriter(bw)
	cols := map[string][]string{"peers": status.PeerColumns, "downloads": status.DownloadColumns, "torrents": status.TorrentColumns}[o.Table]
	return wr, wr.csv.Write(cols)
}

func (w *writer) write(r row) error {
	w.n++
	if w.json != nil {
		return w.json.Encode(r)
	}
	return w.csv.Write(r.Row())
}

func (w *writer) flush() error {
	if w.csv != nil {
		w.csv.Flush()
		if err := w.csv.Error(); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}

// FromStore exports a table of st to w and returns the number of rows written.
func FromStore(ctx context.Context, st *store.Store, o Options, w io.Writer) (int, error) {
	if err := o.check(); err != nil {
		return 0, err
	}
	wr, err := newWriter(w, o)
	if err != nil {
		return 0, err
	}
	switch o.Table {
	case "peers":
		err = st.WalkPeers(ctx, nil, func(k store.PeerKey, p *store.Peer) error {
			if !o.Torrent.IsZero() && p.Torrent != o.Torrent || !o.Since.IsZero() && p.LastContact.Before(o.Since) {
				return nil
			}
			r := status.PeerOf(k, p)
			return wr.write(&r)
		})
	case "downloads":
		err = st.WalkDownloads(ctx, o.Since, nil, func(d store.Download) error {
			if !o.Torrent.IsZero() && d.Torrent != o.Torrent {
				return nil
			}
			r := status.DownloadOf(&d)
			return wr.write(&r)
		})
	case "torrents":
		var a *store.Aggregates
		if a, err = st.ReadAggregates(); err == nil {
			for _, t := range status.FromStore(a) {
				if o.Torrent.IsZero() || t.InfoHash == o.Torrent.String() {
					if err = wr.write(&t); err != nil {
						break
					}
				}
			}
		}
	}
	return wr.n, errors.Join(err, wr.flush())
}

// PageSize is the page the API client asks for.
const PageSize = 10000

// FromURL exports a table from a running btda's API at base (http[s]://[user:pass@]host:port)
// and returns the number of rows written.
func FromURL(ctx context.Context, c *http.Client, base string, o Options, w io.Writer) (int, error) {
	if err := o.check(); err != nil {
		return 0, err
	}
	wr, err := newWriter(w, o)
	if err != nil {
		return 0, err
	}
	q := url.Values{}
	if !o.Torrent.IsZero() {
		q.Set("torrent", o.Torrent.String())
	}
	path := "/api/v1/" + o.Table
	switch o.Table {
	case "downloads":
		if !o.Since.IsZero() {
			q.Set("since", o.Since.Format(time.RFC3339Nano))
		}
		q.Set("limit", fmt.Sprint(PageSize))
		err = pages(ctx, c, base, path, q, func(dec *json.Decoder) error {
			var d status.Download
			if err := dec.Decode(&d); err != nil {
				return err
			}
			return wr.write(&d)
		})
	case "peers":
		q.Set("limit", fmt.Sprint(PageSize))
		err = pages(ctx, c, base, path, q, func(dec *json.Decoder) error {
			var p status.Peer
			if err := dec.Decode(&p); err != nil {
				return err
			}
			if !o.Since.IsZero() && p.LastContact.Before(o.Since) {
				return nil
			}
			return wr.write(&p)
		})
	case "torrents":
		q.Del("torrent")
		err = pages(ctx, c, base, path, q, func(dec *json.Decoder) error {
			var t status.Torrent
			if err := dec.Decode(&t); err != nil {
				return err
			}
			if !o.Torrent.IsZero() && t.InfoHash != o.Torrent.String() {
				return nil
			}
			return wr.write(&t)
		})
	}
	return wr.n, errors.Join(err, wr.flush())
}

// List reads every page of a list endpoint of the API at base (path e.g. "/api/v1/peers",
// q its query), calling item to decode each element of "data" in turn (`btda report --url`).
func List(ctx context.Context, c *http.Client, base, path string, q url.Values, item func(*json.Decoder) error) error {
	return pages(ctx, c, base, path, q, item)
}

// pages reads a list endpoint page by page, calling item for each element of "data".
func pages(ctx context.Context, c *http.Client, base, path string, q url.Values, item func(*json.Decoder) error) error {
	for {
		next, err := page(ctx, c, base, path, q, item)
		if err != nil || next == "" {
			return err
		}
		q.Set("cursor", next)
	}
}

func page(ctx context.Context, c *http.Client, base, path string, q url.Values, item func(*json.Decoder) error) (string, error) {
	u := strings.TrimRight(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	shown := redact(req.URL)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return "", fmt.Errorf("GET %s: %s: %s", shown, resp.Status, e.Error)
		}
		return "", fmt.Errorf("GET %s: %s", shown, resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	var next, st, msg string
	if err := expect(dec, json.Delim('{')); err != nil {
		return "", fmt.Errorf("GET %s: %w", shown, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("GET %s: %w", shown, err)
		}
		switch tok {
		case "data":
			if err := expect(dec, json.Delim('[')); err != nil {
				return "", fmt.Errorf("GET %s: %w", shown, err)
			}
			for dec.More() {
				if err := item(dec); err != nil {
					return "", fmt.Errorf("GET %s: %w", shown, err)
				}
			}
			if err := expect(dec, json.Delim(']')); err != nil {
				return "", fmt.Errorf("GET %s: %w", shown, err)
			}
		case "next_cursor":
			err = dec.Decode(&next)
		case "status":
			err = dec.Decode(&st)
		case "error":
			err = dec.Decode(&msg)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return "", fmt.Errorf("GET %s: %w", shown, err)
		}
	}
	if st != "success" {
		return "", fmt.Errorf("GET %s: the list ended with status %q: %s", shown, st, msg)
	}
	return next, nil
}

func expect(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("unexpected %v in the response, want %v", tok, d)
	}
	return nil
}

// redact drops a password from a URL for error messages.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}
