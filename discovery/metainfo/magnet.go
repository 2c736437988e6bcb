package metainfo

import (
	"bytes"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Limits on magnet input.
const (
	// MaxMagnetLength is the longest magnet URI accepted.
	MaxMagnetLength = 64 << 10
	// MaxMagnetPeers is the most x.pe peers kept from one magnet.
	MaxMagnetPeers = 1024
	// MaxMagnetFileSize is the largest magnet file read.
	MaxMagnetFileSize = 64 << 20
)

// Magnet is a parsed magnet URI (BEP 9, BEP 52's btmh).
type Magnet struct {
	InfoHashV1 Hash   // from xt=urn:btih: (zero when absent)
	InfoHashV2 HashV2 // from xt=urn:btmh:1220… (zero when absent)
	Name       string // dn
	Trackers   []string
	// Peers are the x.pe peers given as IP literals; PeerHosts the ones given by host
	// name ("host:port"), which the caller may resolve.
	Peers     []netip.AddrPort
	PeerHosts []string
	Length    int64 // xl, 0 when absent
}

// Hash returns the primary wire hash: btih when present, else the truncated btmh.
func (m *Magnet) Hash() Hash {
	if !m.InfoHashV1.IsZero() {
		return m.InfoHashV1
	}
	return m.InfoHashV2.Truncate()
}

// Hashes returns every wire hash the magnet names (both for a hybrid magnet).
func (m *Magnet) Hashes() []Hash { return wireHashes(m.InfoHashV1, m.InfoHashV2) }

// Label is the v1 hash in hex when present, else the v2 hash in hex.
func (m *Magnet) Label() string { return label(m.InfoHashV1, m.InfoHashV2) }

// HexV1 is the btih hash in hex, "" when absent.
func (m *Magnet) HexV1() string { return hexOrEmpty(m.InfoHashV1[:]) }

// HexV2 is the btmh hash in hex, "" when absent.
func (m *Magnet) HexV2() string { return hexOrEmpty(m.InfoHashV2[:]) }

// String renders the magnet URI: xt for each hash, then dn, xl, tr and x.pe.
func (m *Magnet) String() string {
	var b strings.Builder
	b.WriteString("magnet:?")
	sep := ""
	add := func(k, v string) {
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		sep = "&"
	}
	if !m.InfoHashV1.IsZero() {
		add("xt", "urn:btih:"+m.InfoHashV1.String())
	}
	if !m.InfoHashV2.IsZero() {
		add("xt", "urn:btmh:1220"+m.InfoHashV2.String())
	}
	if m.Name != "" {
		add("dn", url.QueryEscape(m.Name))
	}
	if m.Length > 0 {
		add("xl", strconv.FormatInt(m.Length, 10))
	}
	for _, tr := range m.Trackers {
		add("tr", url.QueryEscape(tr))
	}
	for _, p := range m.Peers {
		add("x.pe", url.QueryEscape(p.String()))
	}
	for _, p := range m.PeerHosts {
		add("x.pe", url.QueryEscape(p))
	}
	return b.String()
}

// ParseMagnet parses a magnet URI. It needs at least one xt of urn:btih (40 hex or 32
// base32 characters) or urn:btmh (a SHA-256 multihash, "1220" + 64 hex); a hybrid magnet
// carries both. Errors name the parameter at fault.
func ParseMagnet(uri string) (*Magnet, error) {
	if len(uri) > MaxMagnetLength {
		return nil, fmt.Errorf("magnet: %d bytes, more than the %d byte limit", len(uri), MaxMagnetLength)
	}
	const scheme = "magnet:?"
	if len(uri) < len(scheme) || !strings.EqualFold(uri[:len(scheme)], scheme) {
		return nil, fmt.Errorf("magnet: %q does not start with %q", truncate(uri, 40), scheme)
	}
	q, err := url.ParseQuery(uri[len(scheme):])
	if err != nil {
		return nil, fmt.Errorf("magnet: query: %w", err)
	}
	m := &Magnet{}
	for _, xt := range q["xt"] {
		if err := m.parseXT(xt); err != nil {
			return nil, err
		}
	}
	if m.InfoHashV1.IsZero() && m.InfoHashV2.IsZero() {
		return nil, errors.New("magnet: xt: no urn:btih or urn:btmh info hash")
	}
	if dn := q["dn"]; len(dn) > 0 {
		m.Name = strings.TrimSpace(dn[0])
	}
	if xl := q["xl"]; len(xl) > 0 {
		n, err := strconv.ParseInt(xl[0], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("magnet: xl %q: want a non-negative byte count", truncate(xl[0], 40))
		}
		m.Length = n
	}
	// tr, and the numbered tr.1, tr.2 … some clients write.
	var trackers []string
	trackers = append(trackers, q["tr"]...)
	for k, v := range q {
		if strings.HasPrefix(k, "tr.") {
			trackers = append(trackers, v...)
		}
	}
	m.Trackers = uniqueURLs(trackers, nil)
	if len(m.Trackers) > MaxTrackers {
		m.Trackers = m.Trackers[:MaxTrackers]
	}
	for _, pe := range q["x.pe"] {
		if len(m.Peers)+len(m.PeerHosts) >= MaxMagnetPeers {
			break
		}
		if err := m.parsePeer(pe); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Magnet) parseXT(xt string) error {
	lower := strings.ToLower(xt)
	switch {
	case strings.HasPrefix(lower, "urn:btih:"):
		h, err := parseBTIH(xt[len("urn:btih:"):])
		if err != nil {
			return fmt.Errorf("magnet: xt %q: %w", truncate(xt, 80), err)
		}
		if !m.InfoHashV1.IsZero() && m.InfoHashV1 != h {
			return fmt.Errorf("magnet: xt: two different urn:btih hashes (%s, %s)", m.InfoHashV1, h)
		}
		m.InfoHashV1 = h
	case strings.HasPrefix(lower, "urn:btmh:"):
		h, err := parseBTMH(xt[len("urn:btmh:"):])
		if err != nil {
			return fmt.Errorf("magnet: xt %q: %w", truncate(xt, 80), err)
		}
		if !m.InfoHashV2.IsZero() && m.InfoHashV2 != h {
			return fmt.Errorf("magnet: xt: two different urn:btmh hashes (%s, %s)", m.InfoHashV2, h)
		}
		m.InfoHashV2 = h
	default:
		// Other exact topics (urn:sha1, urn:ed2k, …) are not BitTorrent swarms; skip them.
	}
	return nil
}

var base32Enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// parseBTIH decodes a v1 info hash in 40 hex or 32 base32 characters.
func parseBTIH(s string) (Hash, error) {
	var h Hash
	switch len(s) {
	case 40:
		if _, err := hex.Decode(h[:], []byte(s)); err != nil {
			return h, fmt.Errorf("btih: invalid hex: %w", err)
		}
	case 32:
		n, err := base32Enc.Decode(h[:], []byte(strings.ToUpper(s)))
		if err != nil || n != 20 {
			return h, errors.New("btih: invalid base32")
		}
	default:
		return h, fmt.Errorf("btih: want 40 hex or 32 base32 characters, got %d", len(s))
	}
	if h.IsZero() {
		return h, errors.New("btih: all-zero hash")
	}
	return h, nil
}

// parseBTMH decodes a v2 info hash: a multihash of SHA2-256 (code 0x12, length 0x20) in hex.
func parseBTMH(s string) (HashV2, error) {
	var h HashV2
	if len(s) != 68 {
		return h, fmt.Errorf("btmh: want \"1220\" and 64 hex characters, got %d characters", len(s))
	}
	if !strings.HasPrefix(s, "1220") {
		return h, fmt.Errorf("btmh: multihash prefix %q is not SHA2-256 (1220)", s[:4])
	}
	if _, err := hex.Decode(h[:], []byte(s[4:])); err != nil {
		return h, fmt.Errorf("btmh: invalid hex: %w", err)
	}
	if h.Truncate().IsZero() { // peers could not tell it from "no hash"
		return h, errors.New("btmh: hash starts with 20 zero bytes")
	}
	return h, nil
}

// parsePeer reads one x.pe value: an IP literal with port becomes an AddrPort, a host name
// with port is kept as a string.
func (m *Magnet) parsePeer(pe string) error {
	if ap, err := netip.ParseAddrPort(pe); err == nil {
		if ap.Port() == 0 || !ap.Addr().IsValid() {
			return fmt.Errorf("magnet: x.pe %q: port 0", truncate(pe, 80))
		}
		m.Peers = append(m.Peers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		return nil
	}
	host, port, err := net.SplitHostPort(pe)
	if err != nil {
		return fmt.Errorf("magnet: x.pe %q: want host:port: %w", truncate(pe, 80), err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("magnet: x.pe %q: port must be 1-65535", truncate(pe, 80))
	}
	if !validHostname(host) {
		return fmt.Errorf("magnet: x.pe %q: invalid host name", truncate(pe, 80))
	}
	m.PeerHosts = append(m.PeerHosts, net.JoinHostPort(strings.ToLower(host), port))
	return nil
}

// validHostname accepts DNS names made of letters, digits, '-', '_' and dots.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return false
			}
		}
	}
	return true
}

// MagnetLine is one magnet read from a magnet file, with its 1-based line number.
type MagnetLine struct {
	Line   int
	Magnet *Magnet
}

// LineError is a bad line of a magnet file.
type LineError struct {
	Name string // the file
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// ParseMagnets reads a magnet file: one URI a line, blank lines and lines starting with '#'
// skipped. A bad line yields an error naming name and the line number and is skipped; the
// other lines still load. Every error is a *LineError.
func ParseMagnets(data []byte, name string) ([]MagnetLine, []error) {
	var (
		out  []MagnetLine
		errs []error
	)
	for i, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		m, err := ParseMagnet(s)
		if err != nil {
			errs = append(errs, &LineError{Name: name, Line: i + 1, Err: err})
			continue
		}
		out = append(out, MagnetLine{Line: i + 1, Magnet: m})
	}
	return out, errs
}

// LoadMagnets reads and parses a magnet file (see ParseMagnets). err is set only when the
// file cannot be read at all.
func LoadMagnets(path string) (lines []MagnetLine, lineErrs []error, err error) {
	data, err := ReadFile(path, MaxMagnetFileSize)
	if err != nil {
		return nil, nil, err
	}
	lines, lineErrs = ParseMagnets(data, path)
	return lines, lineErrs, nil
}
