package swarmtracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// AnnounceRequest is one announce exactly as the client sent it (HTTP query or UDP packet).
type AnnounceRequest struct {
	InfoHash   [20]byte
	PeerID     [20]byte
	Port       uint16
	Uploaded   int64
	Downloaded int64
	Left       int64
	// Event is "", "started", "completed", "stopped" (UDP 0..3 mapped to these names) or
	// "paused" (BEP 21, HTTP only).
	Event string
	// NumWant is -1 when the client sent none (HTTP) or sent -1 (UDP default).
	NumWant int
	// Compact is -1 when absent, else 0 or 1 (HTTP only; -1 for UDP).
	Compact  int
	NoPeerID bool // HTTP no_peer_id=1 (BEP 23)
	// Key is the HTTP key parameter as sent, or the UDP key as 8 lower-case hex digits.
	Key       string
	TrackerID string // HTTP trackerid
	// IP is the HTTP ip parameter as sent, or the UDP IP field in dotted form ("" when 0).
	IP string
	// IPv4 and IPv6 are the HTTP ipv4 and ipv6 parameters as sent (BEP 7).
	IPv4, IPv6 string
	// URLData is the BEP 41 URLData of a UDP announce (path and query of the announce URL),
	// concatenated from its options.
	URLData string
	// Unknown lists query parameter names the tracker does not know, in order (HTTP).
	Unknown []string
}

var httpEvents = map[string]bool{"": true, "started": true, "completed": true, "stopped": true, "paused": true}

// ParseAnnounceQuery parses the raw query string of an HTTP announce (BEP 3, 7, 23). It is
// strict so that tests catch a client that sends something a real tracker would misread:
// info_hash and peer_id must decode to exactly 20 bytes, port/uploaded/downloaded/left are
// required non-negative integers, a parameter given twice is an error.
func ParseAnnounceQuery(rawQuery string) (AnnounceRequest, error) {
	req := AnnounceRequest{NumWant: -1, Compact: -1}
	seen := make(map[string]bool)
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		rawKey, rawVal, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return req, fmt.Errorf("query parameter name %q: %w", rawKey, err)
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return req, fmt.Errorf("query parameter %s: %w", key, err)
		}
		if seen[key] {
			return req, fmt.Errorf("query parameter %s: given more than once", key)
		}
		seen[key] = true
		switch key {
		case "info_hash":
			if len(val) != 20 {
				return req, fmt.Errorf("info_hash: want 20 bytes, got %d", len(val))
			}
			copy(req.InfoHash[:], val)
		case "peer_id":
			if len(val) != 20 {
				return req, fmt.Errorf("peer_id: want 20 bytes, got %d", len(val))
			}
			copy(req.PeerID[:], val)
		case "port":
			p, err := strconv.ParseUint(val, 10, 16)
			if err != nil || p == 0 {
				return req, fmt.Errorf("port: want 1..65535, got %q", val)
			}
			req.Port = uint16(p)
		case "uploaded", "downloaded", "left":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return req, fmt.Errorf("%s: want a non-negative integer, got %q", key, val)
			}
			switch key {
			case "uploaded":
				req.Uploaded = n
			case "downloaded":
				req.Downloaded = n
			default:
				req.Left = n
			}
		case "event":
			if !httpEvents[val] {
				return req, fmt.Errorf("event: want started, completed, stopped, paused or empty, got %q", val)
			}
			req.Event = val
		case "numwant":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return req, fmt.Errorf("numwant: want a non-negative integer, got %q", val)
			}
			req.NumWant = n
		case "compact":
			switch val {
			case "0":
				req.Compact = 0
			case "1":
				req.Compact = 1
			default:
				return req, fmt.Errorf("compact: want 0 or 1, got %q", val)
			}
		case "no_peer_id":
			req.NoPeerID = val == "1"
		case "key":
			req.Key = val
		case "trackerid":
			req.TrackerID = val
		case "ip":
			req.IP = val
		case "ipv4":
			req.IPv4 = val
		case "ipv6":
			req.IPv6 = val
		default:
			req.Unknown = append(req.Unknown, key)
		}
	}
	for _, k := range []string{"info_hash", "peer_id", "port", "uploaded", "downloaded", "left"} {
		if !seen[k] {
			return req, fmt.Errorf("%s: missing", k)
		}
	}
	return req, nil
}

// ParseScrapeQuery returns the info hashes of an HTTP scrape query, in order. No info_hash at
// all is allowed (BEP 48: scrape everything).
func ParseScrapeQuery(rawQuery string) ([][20]byte, error) {
	var out [][20]byte
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		rawKey, rawVal, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, fmt.Errorf("query parameter name %q: %w", rawKey, err)
		}
		if key != "info_hash" {
			continue
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return nil, fmt.Errorf("info_hash #%d: %w", len(out)+1, err)
		}
		if len(val) != 20 {
			return nil, fmt.Errorf("info_hash #%d: want 20 bytes, got %d", len(out)+1, len(val))
		}
		var h [20]byte
		copy(h[:], val)
		out = append(out, h)
	}
	return out, nil
}

// BEP 15 constants.
const (
	// ProtocolID is the magic connection ID of a connect request.
	ProtocolID uint64 = 0x41727101980

	ActionConnect  uint32 = 0
	ActionAnnounce uint32 = 1
	ActionScrape   uint32 = 2
	ActionError    uint32 = 3

	udpAnnounceLen = 98
	// maxScrapeHashes is the most info hashes one UDP scrape may carry (BEP 15: "about 74").
	maxScrapeHashes = 74
)

var udpEvents = [...]string{"", "completed", "started", "stopped"}

// UDPRequest is one parsed BEP 15 request.
type UDPRequest struct {
	ConnectionID  uint64
	Action        uint32
	TransactionID uint32
	Announce      AnnounceRequest // for ActionAnnounce
	InfoHashes    [][20]byte      // for ActionScrape
}

// parseOptions reads BEP 41 options after the announce: 0 ends them, 1 is a no-op, 2 carries a
// length byte and that much URL data. An unknown option type ends parsing (its length is not
// known, so nothing after it can be read) without failing the announce.
func parseOptions(b []byte) (string, error) {
	var data []byte
	for i := 0; i < len(b); {
		switch b[i] {
		case 0:
			return string(data), nil
		case 1:
			i++
		case 2:
			if i+1 >= len(b) {
				return "", fmt.Errorf("BEP 41 URLData option at offset %d: no length byte", udpAnnounceLen+i)
			}
			n := int(b[i+1])
			if i+2+n > len(b) {
				return "", fmt.Errorf("BEP 41 URLData option at offset %d: length %d, only %d bytes left", udpAnnounceLen+i, n, len(b)-i-2)
			}
			data = append(data, b[i+2:i+2+n]...)
			i += 2 + n
		default:
			return string(data), nil
		}
	}
	return string(data), nil
}

// errShort marks a packet too short to carry a transaction ID: no error reply is possible.
var errShort = errors.New("packet shorter than the 16-byte request header")

// ParseUDPRequest parses a BEP 15 request packet. A connect must carry ProtocolID; an announce
// is at least 98 bytes (BEP 41 options after them are ignored); a scrape carries 1..74 info
// hashes and nothing else.
func ParseUDPRequest(b []byte) (UDPRequest, error) {
	var r UDPRequest
	if len(b) < 16 {
		return r, fmt.Errorf("%w (got %d bytes)", errShort, len(b))
	}
	r.ConnectionID = binary.BigEndian.Uint64(b[0:8])
	r.Action = binary.BigEndian.Uint32(b[8:12])
	r.TransactionID = binary.BigEndian.Uint32(b[12:16])
	switch r.Action {
	case ActionConnect:
		if r.ConnectionID != ProtocolID {
			return r, fmt.Errorf("connect: protocol id %#x, want %#x", r.ConnectionID, ProtocolID)
		}
	case ActionAnnounce:
		if len(b) < udpAnnounceLen {
			return r, fmt.Errorf("announce: %d bytes, want at least %d", len(b), udpAnnounceLen)
		}
		a := &r.Announce
		copy(a.InfoHash[:], b[16:36])
		copy(a.PeerID[:], b[36:56])
		a.Downloaded = int64(binary.BigEndian.Uint64(b[56:64]))
		a.Left = int64(binary.BigEndian.Uint64(b[64:72]))
		a.Uploaded = int64(binary.BigEndian.Uint64(b[72:80]))
		for _, f := range []struct {
			name string
			v    int64
		}{{"downloaded", a.Downloaded}, {"left", a.Left}, {"uploaded", a.Uploaded}} {
			if f.v < 0 {
				return r, fmt.Errorf("announce: %s is negative (%d)", f.name, f.v)
			}
		}
		ev := binary.BigEndian.Uint32(b[80:84])
		if ev >= uint32(len(udpEvents)) {
			return r, fmt.Errorf("announce: event %d, want 0..3", ev)
		}
		a.Event = udpEvents[ev]
		if ip := [4]byte(b[84:88]); ip != [4]byte{} {
			a.IP = netip.AddrFrom4(ip).String()
		}
		a.Key = fmt.Sprintf("%08x", binary.BigEndian.Uint32(b[88:92]))
		a.NumWant = int(int32(binary.BigEndian.Uint32(b[92:96])))
		if a.NumWant < -1 {
			return r, fmt.Errorf("announce: num_want %d, want -1 or more", a.NumWant)
		}
		a.Port = binary.BigEndian.Uint16(b[96:98])
		if a.Port == 0 {
			return r, errors.New("announce: port 0")
		}
		a.Compact = -1
		data, err := parseOptions(b[udpAnnounceLen:])
		if err != nil {
			return r, fmt.Errorf("announce: %w", err)
		}
		a.URLData = data
	case ActionScrape:
		body := b[16:]
		if len(body) == 0 || len(body)%20 != 0 || len(body)/20 > maxScrapeHashes {
			return r, fmt.Errorf("scrape: %d bytes of info hashes, want 1..%d times 20", len(body), maxScrapeHashes)
		}
		for i := 0; i < len(body); i += 20 {
			r.InfoHashes = append(r.InfoHashes, [20]byte(body[i:i+20]))
		}
	default:
		return r, fmt.Errorf("action %d: unknown", r.Action)
	}
	return r, nil
}
