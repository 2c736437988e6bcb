package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/btda/btda/api"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/export"
	"github.com/btda/btda/status"
)

// dataSource is where export and report read: a store file or a running btda's API.
type dataSource struct {
	config  configSource
	store   string // --store ("" : storage.path of the configuration)
	url     string // --url
	torrent string // --torrent
	since   string // --since
}

// filters parses --torrent and --since.
func (s dataSource) filters() (h metainfo.Hash, since time.Time, err error) {
	if s.torrent != "" {
		if h, err = status.ParseInfoHash(s.torrent); err != nil {
			return h, since, fmt.Errorf("--torrent: %w", err)
		}
	}
	if s.since != "" {
		if since, err = api.ParseTime(s.since); err != nil {
			return h, since, fmt.Errorf("--since: %w", err)
		}
	}
	return h, since, nil
}

// openStore opens the store file read-only; a running btda's lock is a clear error.
func (s dataSource) openStore(logger *slog.Logger) (*store.Store, error) {
	path := s.store
	if path == "" {
		cfg, err := s.config.load(logger)
		if err != nil {
			return nil, err
		}
		path = cfg.Storage.Path
	}
	return store.OpenReadOnly(path, store.Options{LockTimeout: 500 * time.Millisecond})
}

// apiClient is the HTTP client of --url reads; whole exports may take long, each page not.
var apiClient = &http.Client{Timeout: 5 * time.Minute}

type exportOptions struct {
	src    dataSource
	table  string
	format string
	output string
}

func exportCmd(ctx context.Context, o exportOptions, stdout, stderr io.Writer, logger *slog.Logger) int {
	h, since, err := o.src.filters()
	if err != nil {
		fmt.Fprintf(stderr, "btda export: %v\n", err)
		return 2
	}
	opt := export.Options{Table: o.table, Format: o.format, Torrent: h, Since: since}
	w := stdout
	var f *os.File
	if o.output != "" && o.output != "-" {
		if f, err = os.Create(o.output); err != nil {
			fmt.Fprintf(stderr, "btda export: %v\n", err)
			return 1
		}
		w = f
	}
	var n int
	if o.src.url != "" {
		n, err = export.FromURL(ctx, apiClient, o.src.url, opt, w)
	} else {
		var st *store.Store
		if st, err = o.src.openStore(logger); err == nil {
			n, err = export.FromStore(ctx, st, opt, w)
			err = errors.Join(err, st.Close())
		}
	}
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "btda export: %v\n", err)
		return 1
	}
	logger.Info("exported", "table", o.table, "rows", n)
	return 0
}
