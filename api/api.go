// Package api serves btda's JSON API under /api/v1/: the watched torrents, the stored peer
// records and confirmed-download log (streamed and paged), the sources' health and the
// recent probe sessions, and, only when enabled (--web.enable-admin-api), adding and
// removing torrents.
//
// Every response is {"data": …, "status": "success"} or {"status": "error", "error": …}.
// Lists are written item by item as they are read, a page of store records per read
// transaction, and end with "next_cursor" when more follow: pass it back as ?cursor=.
// "status" comes last so that a failure after the first item still says so.
package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/status"
)

// Page sizes of the list endpoints (?limit=).
const (
	DefaultLimit = 1000
	MaxLimit     = 100000
)

// MaxUpload caps a POSTed .torrent or form: the watch list's own limit for .torrent files.
const MaxUpload = metainfo.MaxTorrentFileSize

// Daemon is what the API reads from a running btda.
type Daemon interface {
	Torrents() []status.Torrent
	// Torrent returns one watched torrent's detail; ok is false when it is not watched.
	Torrent(ctx context.Context, h metainfo.Hash) (d status.TorrentDetail, ok bool, err error)
	Sources() status.Sources
	RecentProbes() []status.Probe
	Store() *store.Store
}

// Admin changes the watch list (the write endpoints). Its errors may be *Error to choose
// the HTTP status; any other error is a 500.
type Admin interface {
	AddTorrentFile(ctx context.Context, data []byte) (status.Torrent, error)
	AddMagnet(ctx context.Context, uri string) (status.Torrent, error)
	Remove(ctx context.Context, h metainfo.Hash) error
}

// Error is an error with the HTTP status it answers with.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Config configures the API handler.
type Config struct {
	Daemon Daemon
	Admin  Admin // nil: the write endpoints answer 403
	Logger *slog.Logger
}

type server struct {
	cfg Config
	log *slog.Logger
}

// Register adds the API's routes to mux.
func Register(mux *http.ServeMux, cfg Config) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg, log: cfg.Logger.With("component", "api")}
	mux.HandleFunc("GET /api/v1/torrents", s.torrents)
	mux.HandleFunc("GET /api/v1/torrents/{infohash}", s.torrent)
	mux.HandleFunc("POST /api/v1/torrents", s.addTorrent)
	mux.HandleFunc("DELETE /api/v1/torrents/{infohash}", s.removeTorrent)
	mux.HandleFunc("GET /api/v1/downloads", s.downloads)
	mux.HandleFunc("GET /api/v1/peers", s.peers)
	mux.HandleFunc("GET /api/v1/sources", s.sources)
	mux.HandleFunc("GET /api/v1/probes/recent", s.recentProbes)
	// Anything else under /api/: a JSON 404, or a 405 for a known path with the wrong method
	// (this catch-all would otherwise hide the mux's own 405).
	allow := map[string]string{"/api/v1/torrents": "GET, POST", "/api/v1/downloads": "GET",
		"/api/v1/peers": "GET", "/api/v1/sources": "GET", "/api/v1/probes/recent": "GET"}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		methods, ok := allow[r.URL.Path]
		if !ok && strings.HasPrefix(r.URL.Path, "/api/v1/torrents/") && !strings.Contains(r.URL.Path[len("/api/v1/torrents/"):], "/") {
			methods, ok = "GET, DELETE", true
		}
		if ok {
			w.Header().Set("Allow", methods)
			fail(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s (allowed: %s)", r.Method, clip(r.URL.Path), methods))
			return
		}
		fail(w, http.StatusNotFound, fmt.Errorf("no API endpoint %s %s", r.Method, clip(r.URL.Path)))
	})
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// fail answers with an error envelope.
func fail(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}{"error", err.Error()})
}

func failErr(w http.ResponseWriter, err error) {
	var e *Error
	if errors.As(err, &e) {
		fail(w, e.Status, e)
		return
	}
	fail(w, http.StatusInternalServerError, err)
}

// single answers with one value.
func single(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Data   any    `json:"data"`
		Status string `json:"status"`
	}{v, "success"})
}

// list streams a list: open writes the items (each through emit) and returns the next
// cursor ("" at the end).
type list struct {
	w     http.ResponseWriter
	enc   *json.Encoder
	n     int
	start bool
}

func newList(w http.ResponseWriter) *list {
	return &list{w: w, enc: json.NewEncoder(w)}
}

func (l *list) begin() {
	if !l.start {
		l.start = true
		l.w.Header().Set("Content-Type", "application/json")
		l.w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(l.w, `{"data":[`)
	}
}

func (l *list) emit(v any) error {
	l.begin()
	if l.n > 0 {
		if _, err := io.WriteString(l.w, ","); err != nil {
			return err
		}
	}
	l.n++
	return l.enc.Encode(v)
}

// end closes the list; err after the first item is reported inside the body.
func (l *list) end(next string, err error) {
	if err != nil && !l.start {
		failErr(l.w, err)
		return
	}
	l.begin()
	_, _ = io.WriteString(l.w, "]")
	if next != "" {
		_, _ = fmt.Fprintf(l.w, `,"next_cursor":%q`, next)
	}
	if err != nil {
		b, _ := json.Marshal(err.Error())
		_, _ = fmt.Fprintf(l.w, `,"status":"error","error":%s}`+"\n", b)
		return
	}
	_, _ = io.WriteString(l.w, `,"status":"success"}`+"\n")
}

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Err: fmt.Errorf(format, args...)}
}

func (s *server) torrents(w http.ResponseWriter, r *http.Request) {
	l := newList(w)
	for _, t := range s.cfg.Daemon.Torrents() {
		if err := l.emit(t); err != nil {
			return
		}
	}
	l.end("", nil)
}

func pathHash(r *http.Request) (metainfo.Hash, error) {
	h, err := status.ParseInfoHash(r.PathValue("infohash"))
	if err != nil {
		return h, &Error{Status: http.StatusBadRequest, Err: err}
	}
	return h, nil
}

func (s *server) torrent(w http.ResponseWriter, r *http.Request) {
	h, err := pathHash(r)
	if err != nil {
		failErr(w, err)
		return
	}
	d, ok, err := s.cfg.Daemon.Torrent(r.Context(), h)
	switch {
	case err != nil:
		failErr(w, err)
	case !ok:
		fail(w, http.StatusNotFound, fmt.Errorf("torrent %s is not watched", h))
	default:
		single(w, http.StatusOK, d)
	}
}

func (s *server) sources(w http.ResponseWriter, _ *http.Request) {
	single(w, http.StatusOK, s.cfg.Daemon.Sources())
}

func (s *server) recentProbes(w http.ResponseWriter, _ *http.Request) {
	l := newList(w)
	for _, p := range s.cfg.Daemon.RecentProbes() {
		if err := l.emit(p); err != nil {
			return
		}
	}
	l.end("", nil)
}

// Query is a parsed list query.
type Query struct {
	Torrent metainfo.Hash // zero: every torrent
	Since   time.Time
	Limit   int
	Cursor  []byte // the last key of the previous page
}

// Cursor kinds, the first byte of a decoded cursor, so one list's cursor is refused by another.
const (
	cursorPeers     = 'p'
	cursorDownloads = 'd'
)

// EncodeCursor makes the opaque cursor after key.
func EncodeCursor(kind byte, key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, key...))
}

// ParseQuery reads torrent, since (RFC 3339 or Unix seconds), limit and cursor.
func ParseQuery(r *http.Request, kind byte, keyLen int) (Query, error) {
	q := Query{Limit: DefaultLimit}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, badRequest("query string: %v", err)
	}
	if s := v.Get("torrent"); s != "" {
		h, err := status.ParseInfoHash(s)
		if err != nil {
			return q, badRequest("parameter torrent: %v", err)
		}
		q.Torrent = h
	}
	if s := v.Get("since"); s != "" {
		t, err := ParseTime(s)
		if err != nil {
			return q, badRequest("parameter since: %v", err)
		}
		q.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, badRequest("parameter limit: %q is not a number from 1 to %d", clip(s), MaxLimit)
		}
		q.Limit = n
	}
	if s := v.Get("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != 1+keyLen || b[0] != kind {
			return q, badRequest("parameter cursor: %q is not a cursor of this list (pass next_cursor back unchanged)", clip(s))
		}
		q.Cursor = b[1:]
	}
	return q, nil
}

// ParseTime reads an RFC 3339 time or Unix seconds.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor Unix seconds", clip(s))
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r, cursorPeers, len(store.PeerKey{}))
	if err != nil {
		failErr(w, err)
		return
	}
	var after *store.PeerKey
	if q.Cursor != nil {
		k := store.PeerKey(q.Cursor)
		after = &k
	}
	l := newList(w)
	next := ""
	n := 0
	err = s.cfg.Daemon.Store().WalkPeers(r.Context(), after, func(k store.PeerKey, p *store.Peer) error {
		if !q.Torrent.IsZero() && p.Torrent != q.Torrent {
			return nil
		}
		if n == q.Limit {
			next = EncodeCursor(cursorPeers, lastKey(after))
			return store.ErrStop
		}
		if err := l.emit(status.PeerOf(k, p)); err != nil {
			return err
		}
		n++
		kk := k
		after = &kk
		return nil
	})
	l.end(next, err)
}

func lastKey[K ~[16]byte | ~[24]byte](k *K) []byte {
	switch v := any(k).(type) {
	case *store.PeerKey:
		return v[:]
	case *store.DownloadKey:
		return v[:]
	}
	return nil
}

func (s *server) downloads(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r, cursorDownloads, len(store.DownloadKey{}))
	if err != nil {
		failErr(w, err)
		return
	}
	var after *store.DownloadKey
	if q.Cursor != nil {
		k := store.DownloadKey(q.Cursor)
		after = &k
	}
	l := newList(w)
	next := ""
	n := 0
	err = s.cfg.Daemon.Store().WalkDownloads(r.Context(), q.Since, after, func(d store.Download) error {
		if !q.Torrent.IsZero() && d.Torrent != q.Torrent {
			return nil
		}
		if n == q.Limit {
			next = EncodeCursor(cursorDownloads, lastKey(after))
			return store.ErrStop
		}
		if err := l.emit(status.DownloadOf(&d)); err != nil {
			return err
		}
		n++
		k := d.Key()
		after = &k
		return nil
	})
	l.end(next, err)
}

var errAdminDisabled = &Error{Status: http.StatusForbidden,
	Err: errors.New("admin APIs disabled: start btda with --web.enable-admin-api to add or remove torrents")}

func (s *server) addTorrent(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Admin == nil {
		failErr(w, errAdminDisabled)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxUpload)
	t, err := s.add(r)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			err = &Error{Status: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("request body over the %d byte limit", MaxUpload)}
		}
		failErr(w, err)
		return
	}
	s.log.Info("torrent added through the API", "infohash", t.InfoHash, "name", t.Name)
	single(w, http.StatusCreated, t)
}

// add reads a .torrent body, a JSON {"magnet": …}, or a form with a magnet field or a
// torrent file field.
func (s *server) add(r *http.Request) (status.Torrent, error) {
	ctx := r.Context()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var body struct {
			Magnet string `json:"magnet"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			if errors.As(err, new(*http.MaxBytesError)) {
				return status.Torrent{}, err
			}
			return status.Torrent{}, badRequest("JSON body: %v (want {\"magnet\": \"magnet:?…\"})", err)
		}
		if body.Magnet == "" {
			return status.Torrent{}, badRequest("JSON body: no magnet")
		}
		return s.cfg.Admin.AddMagnet(ctx, body.Magnet)
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			if errors.As(err, new(*http.MaxBytesError)) {
				return status.Torrent{}, err
			}
			return status.Torrent{}, badRequest("form: %v", err)
		}
		if m := r.FormValue("magnet"); m != "" {
			return s.cfg.Admin.AddMagnet(ctx, m)
		}
		f, _, err := r.FormFile("torrent")
		if err != nil {
			return status.Torrent{}, badRequest("form: neither a magnet field nor a torrent file field")
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, MaxUpload+1))
		if err != nil {
			return status.Torrent{}, badRequest("form file: %v", err)
		}
		return s.cfg.Admin.AddTorrentFile(ctx, data)
	case "text/plain":
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return status.Torrent{}, err
		}
		return s.cfg.Admin.AddMagnet(ctx, strings.TrimSpace(string(data)))
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return status.Torrent{}, err
	}
	if len(data) == 0 {
		return status.Torrent{}, badRequest("empty body: send a .torrent file (Content-Type: application/x-bittorrent) or {\"magnet\": …} as JSON")
	}
	return s.cfg.Admin.AddTorrentFile(ctx, data)
}

func (s *server) removeTorrent(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Admin == nil {
		failErr(w, errAdminDisabled)
		return
	}
	h, err := pathHash(r)
	if err != nil {
		failErr(w, err)
		return
	}
	if err := s.cfg.Admin.Remove(r.Context(), h); err != nil {
		failErr(w, err)
		return
	}
	s.log.Info("torrent removed through the API", "infohash", h)
	single(w, http.StatusOK, map[string]string{"removed": h.String()})
}
