package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

// admin adds and removes torrents for the API's write endpoints: it writes them to the API
// folder (a .torrent file each, magnets a line each in api-magnets.txt) and reloads the
// watch list, which reads that folder like the configured ones.
type admin struct {
	dir    string
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
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return status.Torrent{}, err
	}
	if err := writeFileAtomic(filepath.Join(a.dir, t.Label()+".torrent"), data); err != nil {
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
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return status.Torrent{}, err
	}
	f, err := os.OpenFile(filepath.Join(a.dir, discovery.APIMagnetFileName), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return status.Torrent{}, err
	}
	_, werr := fmt.Fprintln(f, uri)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
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
	magnets := filepath.Join(a.dir, discovery.APIMagnetFileName)
	switch {
	case strings.HasPrefix(e.Origin, magnets+":"):
		if err := a.dropMagnets(magnets, e); err != nil {
			return err
		}
	case filepath.Dir(e.Origin) == a.dir && strings.HasSuffix(e.Origin, ".torrent"):
		if err := os.Remove(e.Origin); err != nil {
			return err
		}
	default:
		return &api.Error{Status: http.StatusConflict, Err: fmt.Errorf("torrent %s comes from %s, not from the API: remove it there", e.Label(), e.Origin)}
	}
	return a.rl.reloadWatchList(ctx)
}

// dropMagnets rewrites the API magnet list without the lines of e's torrent.
func (a *admin) dropMagnets(path string, e *discovery.Entry) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	ids := e.Hashes()
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		line := sc.Text()
		if m, err := metainfo.ParseMagnet(strings.TrimSpace(line)); err == nil &&
			slices.ContainsFunc(m.Hashes(), func(h metainfo.Hash) bool { return slices.Contains(ids, h) }) {
			continue
		}
		out.WriteString(line + "\n")
	}
	return writeFileAtomic(path, out.Bytes())
}

// writeFileAtomic replaces path with data so that a crash leaves the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
