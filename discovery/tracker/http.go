package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/bencode"
)

// maxIntervalSeconds caps what a tracker may ask for, so that a garbage interval cannot
// park an announcer for years.
const maxIntervalSeconds = 24 * 3600

// percentEncode encodes every byte outside the RFC 3986 unreserved set, as BEP 3 requires
// for the binary info_hash and peer_id. (url.QueryEscape would turn ' ' into '+'.)
func percentEncode(b []byte) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(len(b) * 3)
	for _, c := range b {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

// appendQuery adds q to u's query, keeping whatever the URL already carries (passkeys).
func appendQuery(u, q string) string {
	if i := strings.IndexByte(u, '#'); i >= 0 {
		u = u[:i]
	}
	switch {
	case !strings.Contains(u, "?"):
		return u + "?" + q
	case strings.HasSuffix(u, "?"), strings.HasSuffix(u, "&"):
		return u + q
	}
	return u + "&" + q
}

// httpAnnounceURL builds the announce GET URL.
func httpAnnounceURL(base string, r AnnounceRequest) string {
	var q strings.Builder
	q.WriteString("info_hash=")
	q.WriteString(percentEncode(r.Hash[:]))
	q.WriteString("&peer_id=")
	q.WriteString(percentEncode(r.PeerID[:]))
	q.WriteString("&port=" + strconv.Itoa(int(r.Port)))
	q.WriteString("&uploaded=0&downloaded=0")
	q.WriteString("&left=" + strconv.FormatInt(r.Left, 10))
	q.WriteString("&compact=1")
	if r.NumWant > 0 {
		q.WriteString("&numwant=" + strconv.Itoa(int(r.NumWant)))
	}
	fmt.Fprintf(&q, "&key=%08X", r.Key)
	if r.Event != EventNone {
		q.WriteString("&event=" + r.Event.String())
	}
	if r.TrackerID != "" {
		q.WriteString("&trackerid=" + percentEncode([]byte(r.TrackerID)))
	}
	return appendQuery(base, q.String())
}

// ScrapeURL derives the scrape URL from an HTTP announce URL by the BEP 48 convention: the
// last path segment must start with "announce", which becomes "scrape". ok is false when
// the tracker has no scrape URL by that rule.
func ScrapeURL(announce string) (string, bool) {
	u, err := url.Parse(announce)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	i := strings.LastIndexByte(u.Path, '/')
	if i < 0 || !strings.HasPrefix(u.Path[i+1:], "announce") {
		return "", false
	}
	u.Path = u.Path[:i+1] + "scrape" + strings.TrimPrefix(u.Path[i+1:], "announce")
	u.RawPath = ""
	return u.String(), true
}

func httpScrapeURL(scrape string, h metainfo.Hash) string {
	return appendQuery(scrape, "info_hash="+percentEncode(h[:]))
}

// newHTTPClient returns the client used for every HTTP tracker: no proxy from the
// environment, a bounded number of redirects.
func newHTTPClient(cfg Config) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: cfg.HTTPTimeout}).DialContext,
		TLSHandshakeTimeout:   cfg.HTTPTimeout,
		ResponseHeaderTimeout: cfg.HTTPTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    false,
	}
	maxRedirects := cfg.MaxRedirects
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return withReason(ReasonRedirects, "more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

// httpGet fetches u with the configured limits and returns the body of a 200 reply.
// Non-200 replies return the body too (trackers often put a `failure reason` there) with
// an http_status error.
func httpGet(ctx context.Context, c *http.Client, cfg Config, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, withReason(ReasonProtocol, "bad request URL: %v", redactErr(err))
	}
	req.Header.Set("User-Agent", cfg.UserAgent)
	resp, err := c.Do(req)
	if err != nil {
		var re *reasonError
		if errors.As(err, &re) {
			return nil, re
		}
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, withReason(ReasonTimeout, "no reply within %v", cfg.HTTPTimeout)
		}
		r := classify(err)
		switch {
		case strings.Contains(err.Error(), "malformed HTTP"):
			r = ReasonBadResponse // the peer speaks something, but not HTTP
		case r == ReasonUnclassified:
			r = ReasonConnection // transport trouble net/http does not type
		}
		return nil, &reasonError{reason: r, err: redactErr(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, cfg.MaxBodyBytes+1))
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, withReason(ReasonTimeout, "body not complete within %v", cfg.HTTPTimeout)
		}
		r := classify(err)
		if r == ReasonUnclassified {
			r = ReasonConnection // e.g. unexpected EOF: the connection ended mid-body
		}
		return nil, &reasonError{reason: r, err: fmt.Errorf("reading body: %w", redactErr(err))}
	}
	if int64(len(body)) > cfg.MaxBodyBytes {
		return nil, withReason(ReasonBodyTooLarge, "body larger than %d bytes", cfg.MaxBodyBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return body, withReason(ReasonHTTPStatus, "HTTP status %s", resp.Status)
	}
	return body, nil
}

// redactErr strips URLs (which may carry passkeys) out of net/http's error text.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err
}

// httpAnnounce runs one HTTP announce.
func httpAnnounce(ctx context.Context, c *http.Client, cfg Config, base string, r AnnounceRequest) (*AnnounceResponse, error) {
	body, err := httpGet(ctx, c, cfg, httpAnnounceURL(base, r))
	if err != nil {
		if body != nil {
			// A non-200 reply with a readable failure reason says more than the status.
			if _, ferr := decodeHTTPAnnounce(body); ReasonOf(ferr) == ReasonFailure {
				return nil, ferr
			}
		}
		return nil, err
	}
	return decodeHTTPAnnounce(body)
}

// httpScrape runs one HTTP scrape for h.
func httpScrape(ctx context.Context, c *http.Client, cfg Config, scrape string, h metainfo.Hash) (*ScrapeResponse, error) {
	body, err := httpGet(ctx, c, cfg, httpScrapeURL(scrape, h))
	if err != nil {
		if body != nil {
			if _, ferr := dictOf(body); ReasonOf(ferr) == ReasonFailure {
				return nil, ferr
			}
		}
		return nil, err
	}
	return decodeHTTPScrape(body, h)
}

// replyOptions are the rules for tracker replies. They nest three levels at most (dict →
// peers list → peer dict), so a deeper body is garbage, not worth a deep stack; trailing
// whitespace is tolerated (some trackers end with a newline).
var replyOptions = bencode.Options{Limits: bencode.Limits{MaxDepth: 16}, Trailing: bencode.TrailingSpace}

// dictOf decodes body as a top-level bencoded dictionary (the 2015 tool crashed when it
// was a list) and reads `failure reason`.
func dictOf(body []byte) (map[string]any, error) {
	v, err := bencode.Decode(body, replyOptions)
	if err != nil {
		return nil, withReason(ReasonBadResponse, "%v (body starts %q)", err, snippet(body))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, withReason(ReasonBadResponse, "reply is a bencoded %s, not a dictionary", bencodeType(v))
	}
	if fr, ok := m["failure reason"]; ok {
		s, _ := fr.(string)
		f := &failureReply{msg: clip(s, 200)}
		switch ri := m["retry in"].(type) { // BEP 31
		case int64:
			if ri > 0 {
				f.retryIn = time.Duration(min(ri, maxIntervalSeconds/60)) * time.Minute
			}
		case string:
			f.never = ri == "never"
		}
		return m, &reasonError{reason: ReasonFailure, err: f}
	}
	return m, nil
}

// failureReply is a tracker's refusal, with its BEP 31 `retry in` advice.
type failureReply struct {
	msg     string
	retryIn time.Duration // 0: no advice
	never   bool          // `retry in: never`
}

func (f *failureReply) Error() string {
	switch {
	case f.never:
		return fmt.Sprintf("tracker says: %q (retry in: never)", f.msg)
	case f.retryIn > 0:
		return fmt.Sprintf("tracker says: %q (retry in %v)", f.msg, f.retryIn)
	}
	return fmt.Sprintf("tracker says: %q", f.msg)
}

// decodeHTTPAnnounce decodes an HTTP announce reply (BEP 3, 7, 23).
func decodeHTTPAnnounce(body []byte) (*AnnounceResponse, error) {
	m, err := dictOf(body)
	if err != nil {
		return nil, err
	}
	r := &AnnounceResponse{Seeders: -1, Leechers: -1}
	if n, ok := intField(m, "interval"); ok {
		r.Interval = time.Duration(n) * time.Second
	}
	if n, ok := intField(m, "min interval"); ok {
		r.MinInterval = time.Duration(n) * time.Second
	}
	if s, ok := m["tracker id"].(string); ok {
		r.TrackerID = s
	}
	if s, ok := m["warning message"].(string); ok {
		r.Warning = clip(s, 200)
	}
	if n, ok := m["complete"].(int64); ok && n >= 0 {
		r.Seeders = n
	}
	if n, ok := m["incomplete"].(int64); ok && n >= 0 {
		r.Leechers = n
	}
	_, has4 := m["peers"]
	_, has6 := m["peers6"]
	if !has4 && !has6 {
		return nil, withReason(ReasonBadResponse, "reply has neither `peers` nor `peers6` nor `failure reason`")
	}
	switch p := m["peers"].(type) {
	case nil:
	case string:
		if r.Peers, err = compactPeers([]byte(p), 4); err != nil {
			return nil, withReason(ReasonBadResponse, "peers: %v", err)
		}
	case []any:
		r.Peers = dictPeers(p)
	default:
		return nil, withReason(ReasonBadResponse, "peers is a bencoded %s", bencodeType(p))
	}
	switch p := m["peers6"].(type) {
	case nil:
	case string:
		p6, err := compactPeers([]byte(p), 16)
		if err != nil {
			return nil, withReason(ReasonBadResponse, "peers6: %v", err)
		}
		r.Peers = append(r.Peers, p6...)
	default:
		return nil, withReason(ReasonBadResponse, "peers6 is a bencoded %s, not a string", bencodeType(p))
	}
	return r, nil
}

// decodeHTTPScrape decodes a scrape reply and picks h's entry.
func decodeHTTPScrape(body []byte, h metainfo.Hash) (*ScrapeResponse, error) {
	m, err := dictOf(body)
	if err != nil {
		return nil, err
	}
	files, ok := m["files"].(map[string]any)
	if !ok {
		return nil, withReason(ReasonBadResponse, "scrape reply has no `files` dictionary")
	}
	f, ok := files[string(h[:])]
	if !ok {
		return nil, withReason(ReasonBadResponse, "scrape reply has no entry for %s (%d entries)", h, len(files))
	}
	fm, ok := f.(map[string]any)
	if !ok {
		return nil, withReason(ReasonBadResponse, "scrape entry for %s is a bencoded %s, not a dictionary", h, bencodeType(f))
	}
	s := &ScrapeResponse{}
	for _, x := range []struct {
		key string
		dst *int64
	}{{"complete", &s.Seeders}, {"incomplete", &s.Leechers}, {"downloaded", &s.Downloaded}} {
		n, ok := fm[x.key].(int64)
		if !ok || n < 0 {
			return nil, withReason(ReasonBadResponse, "scrape entry for %s: `%s` missing or not a non-negative integer", h, x.key)
		}
		*x.dst = n
	}
	return s, nil
}

// intField reads a non-negative integer field, capped at maxIntervalSeconds.
func intField(m map[string]any, k string) (int64, bool) {
	n, ok := m[k].(int64)
	if !ok || n < 0 {
		return 0, false
	}
	return min(n, maxIntervalSeconds), true
}

// compactPeers decodes BEP 23 (4-byte IPv4) or BEP 7 (16-byte IPv6) compact peers. Port 0
// entries are dropped (nobody listens there).
func compactPeers(b []byte, ipLen int) ([]netip.AddrPort, error) {
	step := ipLen + 2
	if len(b)%step != 0 {
		return nil, fmt.Errorf("compact peer list of %d bytes is not a multiple of %d", len(b), step)
	}
	peers := make([]netip.AddrPort, 0, len(b)/step)
	for i := 0; i < len(b); i += step {
		var ip netip.Addr
		if ipLen == 4 {
			ip = netip.AddrFrom4([4]byte(b[i : i+4]))
		} else {
			ip = netip.AddrFrom16([16]byte(b[i : i+16])).Unmap()
		}
		port := binary.BigEndian.Uint16(b[i+ipLen:])
		if port == 0 || !ip.IsValid() || ip.IsUnspecified() {
			continue
		}
		peers = append(peers, netip.AddrPortFrom(ip, port))
	}
	return peers, nil
}

// dictPeers decodes the original BEP 3 list of {ip, port, peer id} dictionaries. Entries
// that are not an IP literal with a valid port are skipped: btda never resolves host
// names a tracker hands out.
func dictPeers(l []any) []netip.AddrPort {
	var peers []netip.AddrPort
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		ipS, _ := m["ip"].(string)
		port, _ := m["port"].(int64)
		ip, err := netip.ParseAddr(ipS)
		if err != nil || port <= 0 || port > 65535 || ip.IsUnspecified() || ip.Zone() != "" {
			continue
		}
		peers = append(peers, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	return peers
}

func bencodeType(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "dictionary"
	}
	return "nothing"
}

// snippet returns the first bytes of a body for an error message.
func snippet(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
