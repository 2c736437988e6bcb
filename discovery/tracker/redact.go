package tracker

import (
	"net/url"
	"slices"
	"strings"
)

// Redact returns u fit for logs and terminals: scheme, host, port and path are kept, but
// user info is dropped, every query value becomes "REDACTED" and every path segment that
// looks like a token (16 or more characters, or containing digits and letters over 12
// characters) becomes "REDACTED". Private trackers put passkeys in either place.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(unparsable tracker URL)"
	}
	p.User = nil
	p.Fragment = ""
	segs := strings.Split(p.Path, "/")
	for i, s := range segs {
		if looksLikeToken(s) {
			segs[i] = "REDACTED"
		}
	}
	p.Path = strings.Join(segs, "/")
	p.RawPath = ""
	if p.RawQuery != "" {
		q := p.Query()
		var parts []string
		for k := range q {
			parts = append(parts, url.QueryEscape(k)+"=REDACTED")
		}
		slices.Sort(parts)
		p.RawQuery = strings.Join(parts, "&")
	}
	return p.String()
}

func looksLikeToken(s string) bool {
	if len(s) >= 16 {
		return true
	}
	if len(s) <= 12 {
		return false
	}
	var digit, letter bool
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		}
	}
	return digit && letter
}

// TrackerLabel is the `tracker` metric label for an announce URL: the lower-case host
// name without port (never the URL: it may carry a passkey). Unparsable URLs give
// "invalid".
func TrackerLabel(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Hostname() == "" {
		return "invalid"
	}
	return strings.ToLower(p.Hostname())
}
