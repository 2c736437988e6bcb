package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/btda/btda/api"
	"github.com/btda/btda/daemon"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/status"
)

// apiDirName is the folder next to the store that keeps the torrents added through the
// API, so that a restart watches them again.
const apiDirName = "api-torrents"

// admin adds and removes torrents for the API's write endpoints: it checks them, keeps
// them in the API folder (discovery.APIFolder) and reloads the watch list.
type admin struct {
	folder discovery.APIFolder
	rl     *reloader
	daemon *daemon.Daemon
	mu     sync.Mutex // one change at a time
}

func badInput(err error) error { return &api.Error{Status: http.StatusBadRequest, Err: err} }

func (a *admin) AddTorrentFile(ctx context.Context, data []byte) (status.Torrent, error) {
	t, err := metainfo.Parse(data)
	if err != nil {
		return status.Torrent{}, badInput(fmt.Errorf("not a valid .torrent file: %w", err))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.refuseWatched(t.Hashes()); err != nil {
		return status.Torrent{}, err
	}
	if err := a.folder.AddTorrent(t, data); err != nil {
		return status.Torrent{}, err
	}
	return a.reload(ctx, t.Hash())
}

func (a *admin) AddMagnet(ctx context.Context, uri string) (status.Torrent, error) {
	uri = strings.TrimSpace(uri)
	if strings.ContainsAny(uri, "\r\n") {
		return status.Torrent{}, badInput(errors.New("magnet: one magnet URI only, without line breaks"))
	}
	m, err := metainfo.ParseMagnet(uri)
	if err != nil {
		return status.Torrent{}, badInput(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.refuseWatched(m.Hashes()); err != nil {
		return status.Torrent{}, err
	}
	if err := a.folder.AddMagnet(uri); err != nil {
		return status.Torrent{}, err
	}
	return a.reload(ctx, m.Hash())
}

func (a *admin) refuseWatched(hs []metainfo.Hash) error {
	for _, h := range hs {
		if e, ok := a.daemon.Entry(h); ok {
			return &api.Error{Status: http.StatusConflict, Err: fmt.Errorf("torrent %s is already watched (from %s)", e.Label(), e.Origin)}
		}
	}
	return nil
}

func (a *admin) reload(ctx context.Context, h metainfo.Hash) (status.Torrent, error) {
	if err := a.rl.reloadWatchList(ctx); err != nil {
		return status.Torrent{}, err
	}
	e, ok := a.daemon.Entry(h)
	if !ok {
		return status.Torrent{}, fmt.Errorf("torrent %s was saved but is not in the watch list after the reload (see the log; --shard may leave it to another instance)", h)
	}
	for _, t := range a.daemon.Torrents() {
		if t.InfoHash == e.ID.String() {
			return t, nil
		}
	}
	return status.Torrent{InfoHash: e.ID.String()}, nil
}

func (a *admin) Remove(ctx context.Context, h metainfo.Hash) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.daemon.Entry(h)
	if !ok {
		return &api.Error{Status: http.StatusNotFound, Err: fmt.Errorf("torrent %s is not watched", h)}
	}
	if ok, err := a.folder.Remove(e); err != nil {
		return err
	} else if !ok {
		return &api.Error{Status: http.StatusConflict, Err: fmt.Errorf("torrent %s comes from %s, not from the API: remove it there", e.Label(), e.Origin)}
	}
	return a.rl.reloadWatchList(ctx)
}
