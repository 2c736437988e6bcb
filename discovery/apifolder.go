package discovery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/btda/btda/discovery/metainfo"
)

// APIFolder is the watch-list folder of the torrents added through the HTTP API
// (WatchSources.APIDir): one .torrent file each, and magnets a line each in
// APIMagnetFileName. Reload reads it like the configured inputs, so a restart keeps them.
// Callers serialise changes.
type APIFolder struct{ Dir string }

// AddTorrent keeps a parsed .torrent file (its bytes as given).
func (f APIFolder) AddTorrent(t *metainfo.Torrent, data []byte) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(f.Dir, t.Label()+".torrent"), data)
}

// AddMagnet appends one magnet URI (already parsed, without line breaks) to the list.
func (f APIFolder) AddMagnet(uri string) error {
	if strings.ContainsAny(uri, "\r\n") {
		return errors.New("magnet: one magnet URI only, without line breaks")
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(f.Dir, APIMagnetFileName), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := fmt.Fprintln(out, uri)
	return errors.Join(werr, out.Sync(), out.Close())
}

// Remove forgets e: its file, or every line of the magnet list naming one of its hashes.
// ok is false (and nothing changes) when e does not come from the folder.
func (f APIFolder) Remove(e *Entry) (ok bool, err error) {
	magnets := filepath.Join(f.Dir, APIMagnetFileName)
	switch {
	case strings.HasPrefix(e.Origin, magnets+":"):
		return true, dropMagnets(magnets, e.Hashes())
	case filepath.Dir(e.Origin) == f.Dir && strings.HasSuffix(e.Origin, ".torrent"):
		return true, os.Remove(e.Origin)
	}
	return false, nil
}

// dropMagnets rewrites a magnet list without the lines naming one of ids.
func dropMagnets(path string, ids []metainfo.Hash) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
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
