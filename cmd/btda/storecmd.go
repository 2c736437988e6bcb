package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/internal/config"
)

// storeBackupPath is where a running btda serves a consistent copy of its store
// (store.BackupHandler).
const storeBackupPath = "/api/v1/store/backup"

// storeCommands are `btda store check` and `btda store backup`.
type storeCommands struct {
	check      *kingpin.CmdClause
	checkFile  *string
	backup     *kingpin.CmdClause
	backupURL  *string
	backupFrom *string
	backupFile *string
}

// addStoreCommands registers the store subcommands on app.
func addStoreCommands(app *kingpin.Application) *storeCommands {
	c := &storeCommands{}
	cmd := app.Command("store", "Check or back up a btda store file.")
	c.check = cmd.Command("check", "Verify every page and record of a store file without changing it (exit 0 clean, 1 damaged).")
	c.checkFile = c.check.Arg("file", "The store file (storage.path).").Required().String()
	c.backup = cmd.Command("backup", "Write a consistent copy of a store: from a running btda (--url) or from a file no btda holds open (--from, default storage.path of --config.file).")
	c.backupURL = c.backup.Flag("url", "Base URL of a running btda, e.g. http://127.0.0.1:9881.").String()
	c.backupFrom = c.backup.Flag("from", "The store file to copy (no btda may hold it open).").String()
	c.backupFile = c.backup.Arg("file", "Where to write the copy.").Required().String()
	return c
}

// run runs cmd if it is one of the store commands; ok is false otherwise.
func (c *storeCommands) run(ctx context.Context, cmd, configFile string, stdout, stderr io.Writer) (code int, ok bool) {
	switch cmd {
	case c.check.FullCommand():
		return storeCheck(*c.checkFile, stdout, stderr), true
	case c.backup.FullCommand():
		return storeBackup(ctx, storeBackupOptions{url: *c.backupURL, from: *c.backupFrom, to: *c.backupFile, configFile: configFile}, stdout, stderr), true
	}
	return 0, false
}

// storeCheck prints a summary of the store file at path and every problem found.
func storeCheck(path string, stdout, stderr io.Writer) int {
	rep, err := store.Check(path, store.Options{})
	var de *store.DamagedError
	if rep != nil && rep.PageSize > 0 {
		fmt.Fprintf(stdout, "%s: %d bytes, %d pages of %d bytes, transaction %d\n", path, rep.Size, rep.Pages, rep.PageSize, rep.Txid)
		names := make([]string, 0, len(rep.Records))
		for n := range rep.Records {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "  bucket %-14s %d records\n", n, rep.Records[n])
		}
		for _, n := range rep.Notes {
			fmt.Fprintf(stdout, "  note: %s\n", n)
		}
	}
	if errors.As(err, &de) {
		for _, p := range de.Problems {
			fmt.Fprintf(stdout, "  problem: %s\n", p)
		}
		if more := de.Total - len(de.Problems); more > 0 {
			fmt.Fprintf(stdout, "  ... and %d more problems\n", more)
		}
		fmt.Fprintf(stdout, "%s: DAMAGED (%d problems)\n", path, de.Total)
		fmt.Fprintf(stderr, "btda: store %s is damaged: restore it from a backup, or move it aside to start with an empty store\n", path)
		return 1
	}
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			err = fmt.Errorf("%w; to check the store of a running btda, copy it with `btda store backup --url` and check the copy", err)
		}
		fmt.Fprintf(stderr, "btda: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK\n", path)
	return 0
}

type storeBackupOptions struct {
	url, from, to, configFile string
}

// storeBackup writes a verified copy of a store to o.to, through a temporary file renamed
// into place only once the copy checks clean.
func storeBackup(ctx context.Context, o storeBackupOptions, stdout, stderr io.Writer) int {
	if o.url != "" && o.from != "" {
		fmt.Fprintln(stderr, "btda: store backup: give --url or --from, not both")
		return 2
	}
	from := o.from
	if o.url == "" && from == "" {
		cfg, err := config.Load(o.configFile)
		if err != nil {
			fmt.Fprintf(stderr, "btda: store backup: no --url or --from, and %v\n", err)
			return 1
		}
		from = cfg.Storage.Path
	}
	if from != "" {
		if a, err := os.Stat(from); err == nil {
			if b, err := os.Stat(o.to); err == nil && os.SameFile(a, b) {
				fmt.Fprintf(stderr, "btda: store backup: %s is the store itself\n", o.to)
				return 2
			}
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.to), "."+filepath.Base(o.to)+".tmp*")
	if err != nil {
		fmt.Fprintf(stderr, "btda: store backup: %v\n", err)
		return 1
	}
	defer os.Remove(tmp.Name())
	var n int64
	if o.url != "" {
		n, err = fetchBackup(ctx, o.url, tmp)
	} else {
		n, err = store.Backup(from, tmp, store.Options{})
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "btda: store backup: %v\n", err)
		return 1
	}
	rep, err := store.Check(tmp.Name(), store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "btda: store backup: the copy does not check clean, %s left as it was: %v\n", o.to, err)
		return 1
	}
	if err := os.Rename(tmp.Name(), o.to); err != nil {
		fmt.Fprintf(stderr, "btda: store backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d bytes, %d peers, %d downloads\n", o.to, n, rep.Records["peers"], rep.Records["downloads"])
	return 0
}

// fetchBackup copies the store of the btda at base into w and checks the copy is whole.
func fetchBackup(ctx context.Context, base string, w io.Writer) (int64, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, fmt.Errorf("--url %q: want http://host:port", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = storeBackupPath
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	// No overall timeout: a large store takes a while; the headers must come promptly.
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 30 * time.Second, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", u, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET %s: copy cut short at %d of %d bytes", u, n, resp.ContentLength)
	}
	return n, nil
}
