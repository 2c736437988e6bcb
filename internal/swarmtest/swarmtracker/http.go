package swarmtracker

import (
	"bytes"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/zeebo/bencode"
)

func (t *Tracker) serveHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	t.stats.HTTPRequests++
	t.mu.Unlock()
	remote, _ := netip.ParseAddrPort(r.RemoteAddr)
	base := path.Base(r.URL.Path)
	switch {
	case strings.HasPrefix(base, "announce"):
		t.httpAnnounce(w, r, remote)
	case strings.HasPrefix(base, "scrape"):
		t.httpScrape(w, r, remote)
	default:
		http.NotFound(w, r)
	}
}

func (t *Tracker) httpAnnounce(w http.ResponseWriter, r *http.Request, remote netip.AddrPort) {
	req, err := ParseAnnounceQuery(r.URL.RawQuery)
	if err != nil {
		t.reject(HTTP, remote, err)
		writeBencode(w, http.StatusBadRequest, map[string]any{"failure reason": "swarmtracker: bad announce: " + err.Error()})
		return
	}
	fault := t.Fault()
	rec := Announce{AnnounceRequest: req, Protocol: HTTP, Remote: remote, Fault: fault, Path: r.URL.Path, UserAgent: r.UserAgent()}
	rep := t.announce(rec, func(netip.Addr) bool { return true })
	t.log.Debug("http announce", "remote", remote, "event", req.Event, "left", req.Left, "fault", fault, "peers", len(rep.peers))
	if t.httpFault(w, r, fault) {
		return
	}
	d := map[string]any{
		"interval":   seconds(t.cfg.Interval),
		"complete":   int64(rep.complete),
		"incomplete": int64(rep.incomplete),
	}
	if t.cfg.MinInterval > 0 {
		d["min interval"] = seconds(t.cfg.MinInterval)
	}
	if t.cfg.TrackerID != "" {
		d["tracker id"] = t.cfg.TrackerID
	}
	if t.cfg.WarningMessage != "" {
		d["warning message"] = t.cfg.WarningMessage
	}
	if req.Compact == 0 {
		// BEP 3 dictionary model: every family in one list.
		list := make([]any, 0, len(rep.peers))
		for _, p := range rep.peers {
			e := map[string]any{"ip": p.addr.Addr().String(), "port": int64(p.addr.Port())}
			if !req.NoPeerID {
				e["peer id"] = string(p.id[:])
			}
			list = append(list, e)
		}
		d["peers"] = list
	} else {
		// BEP 23 compact IPv4 in "peers", BEP 7 compact IPv6 in "peers6" (only when any).
		var v4, v6 []byte
		for _, p := range rep.peers {
			if p.addr.Addr().Is4() {
				v4 = appendCompact(v4, p.addr)
			} else {
				v6 = appendCompact(v6, p.addr)
			}
		}
		d["peers"] = string(v4)
		if len(v6) > 0 {
			d["peers6"] = string(v6)
		}
	}
	t.writeReply(w, fault, d)
}

func (t *Tracker) httpScrape(w http.ResponseWriter, r *http.Request, remote netip.AddrPort) {
	hashes, err := ParseScrapeQuery(r.URL.RawQuery)
	if err != nil {
		t.reject(HTTP, remote, err)
		writeBencode(w, http.StatusBadRequest, map[string]any{"failure reason": "swarmtracker: bad scrape: " + err.Error()})
		return
	}
	fault := t.Fault()
	hashes, counts := t.scrape(hashes, HTTP, remote, fault)
	if t.httpFault(w, r, fault) {
		return
	}
	files := make(map[string]any, len(hashes))
	for i, ih := range hashes {
		files[string(ih[:])] = map[string]any{
			"complete":   int64(counts[i][0]),
			"incomplete": int64(counts[i][1]),
			"downloaded": int64(counts[i][2]),
		}
	}
	t.writeReply(w, fault, map[string]any{"files": files})
}

// httpFault answers the request itself for the modes that replace the reply, and holds it for
// FaultSlow. It reports whether the request is done.
func (t *Tracker) httpFault(w http.ResponseWriter, r *http.Request, fault FaultMode) bool {
	switch fault {
	case FaultFailureReason:
		d := map[string]any{"failure reason": FailureReason}
		switch n := t.cfg.FailureRetryIn; {
		case n > 0:
			d["retry in"] = int64(n)
		case n < 0:
			d["retry in"] = "never"
		}
		writeBencode(w, http.StatusOK, d)
	case FaultHTTP500:
		http.Error(w, "swarmtracker: injected internal server error", http.StatusInternalServerError)
	case FaultGarbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html><body>swarmtracker garbage \x00\xff\xfe not bencode</body></html>")) // the client hung up; nobody to tell
	case FaultNonDict:
		writeBencode(w, http.StatusOK, []any{"peers", int64(1)})
	case FaultHugeBody:
		t.writeHuge(w, r)
	case FaultRedirectLoop:
		http.Redirect(w, r, r.URL.RequestURI(), http.StatusFound)
	case FaultNoReply:
		// Close the connection with no response at all.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // HTTP/2 or no hijack: abort the stream instead.
	case FaultSlow:
		timer := time.NewTimer(t.cfg.SlowHold)
		defer timer.Stop()
		select {
		case <-r.Context().Done():
			return true // the client gave up; nobody reads a reply
		case <-t.closing:
			// Returning would send an empty 200; drop the connection instead.
			panic(http.ErrAbortHandler)
		case <-timer.C:
		}
		return false
	default:
		return false
	}
	return true
}

// writeHuge sends a valid bencoded dictionary of Config.HugeBodySize bytes whose "peers" string
// is all zero bytes, stopping early when the client hangs up or the tracker closes.
func (t *Tracker) writeHuge(w http.ResponseWriter, r *http.Request) {
	head := "d8:intervali1800e5:peers"
	peersLen := t.cfg.HugeBodySize - len(head) - 2 - len(itoa(t.cfg.HugeBodySize))
	head += itoa(peersLen) + ":"
	total := len(head) + peersLen + 1
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", itoa(total))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(head)); err != nil {
		return
	}
	chunk := make([]byte, 64<<10)
	for left := peersLen; left > 0; {
		select {
		case <-r.Context().Done():
			return
		case <-t.closing:
			return
		default:
		}
		n := min(left, len(chunk))
		if _, err := w.Write(chunk[:n]); err != nil {
			return
		}
		left -= n
	}
	_, _ = w.Write([]byte("e")) // the client hung up; nobody to tell
}

// writeReply encodes a normal reply, cut in half under FaultTruncated.
func (t *Tracker) writeReply(w http.ResponseWriter, fault FaultMode, v any) {
	body, err := bencode.EncodeBytes(v)
	if err != nil {
		t.log.Error("encoding reply", "err", err)
		http.Error(w, "swarmtracker: encoding reply: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if fault != FaultTruncated {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body) // the client hung up; nobody to tell
		return
	}
	// Promise the full length, send half: the client's read ends in an unexpected EOF.
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body[:len(body)/2]) // the connection is aborted next anyway
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	panic(http.ErrAbortHandler) // closes the connection without logging a stack
}

func writeBencode(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := bencode.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, "swarmtracker: encoding reply: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client hung up; nobody to tell
}
