package metainfo

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// parseExtras reads the fields outside the info dictionary. Only a malformed "piece layers"
// is fatal (it belongs to the v2 data); everything else is advisory, so a malformed value
// becomes a warning and the torrent still loads.
func (t *Torrent) parseExtras(d dict) error {
	if err := t.checkPieceLayers(d); err != nil {
		return err
	}
	t.parseTrackers(d)

	if s, ok, err := d.strField("", "comment"); err != nil {
		t.warn(err)
	} else if ok {
		t.Comment = s
	}
	if s, ok, _ := d.strField("", "comment.utf-8"); ok && s != "" {
		t.Comment = s
	}
	if s, ok, err := d.strField("", "created by"); err != nil {
		t.warn(err)
	} else if ok {
		t.CreatedBy = s
	}
	if n, ok, err := d.intField("", "creation date"); err != nil {
		t.warn(err)
	} else if ok && n > 0 && n < 1<<40 { // beyond year 36812 is noise, not a date
		t.CreationDate = time.Unix(n, 0).UTC()
	}

	switch v := d["url-list"].(type) {
	case nil:
	case string:
		t.URLList = uniqueURLs([]string{v}, nil)
	case []any:
		var urls []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				urls = append(urls, s)
			}
		}
		t.URLList = uniqueURLs(urls, nil)
	default:
		t.Warnings = append(t.Warnings, fmt.Sprintf("url-list: want a string or list, got %s (ignored)", typeName(v)))
	}
	if len(t.URLList) > MaxURLList {
		t.Warnings = append(t.Warnings, fmt.Sprintf("url-list: %d web seeds, kept the first %d", len(t.URLList), MaxURLList))
		t.URLList = t.URLList[:MaxURLList]
	}

	if nodes, ok, err := d.listField("", "nodes"); err != nil {
		t.warn(err)
	} else if ok {
		for i, n := range nodes {
			if len(t.Nodes) >= MaxNodes {
				t.Warnings = append(t.Warnings, fmt.Sprintf("nodes: kept the first %d", MaxNodes))
				break
			}
			pair, ok := n.([]any)
			if !ok || len(pair) != 2 {
				t.Warnings = append(t.Warnings, fmt.Sprintf("nodes[%d]: want a [host, port] list (ignored)", i))
				continue
			}
			host, okHost := pair[0].(string)
			port, okPort := pair[1].(int64)
			if !okHost || !okPort || host == "" || port <= 0 || port > 65535 {
				t.Warnings = append(t.Warnings, fmt.Sprintf("nodes[%d]: want a host string and a port 1-65535 (ignored)", i))
				continue
			}
			t.Nodes = append(t.Nodes, net.JoinHostPort(host, strconv.FormatInt(port, 10)))
		}
	}
	return nil
}

func (t *Torrent) warn(err error) {
	t.Warnings = append(t.Warnings, err.Error()+" (ignored)")
}

// checkPieceLayers checks the shape of BEP 52 "piece layers": a dictionary from 32-byte
// pieces roots to concatenated 32-byte hashes. btda never verifies piece data, so it does
// not recompute the Merkle roots; a torrent without piece layers (as from a magnet) is fine.
func (t *Torrent) checkPieceLayers(d dict) error {
	layers, ok, err := d.dictField("", "piece layers")
	if err != nil || !ok {
		return err
	}
	if t.InfoHashV2.IsZero() {
		t.Warnings = append(t.Warnings, "piece layers: present in a v1-only torrent (ignored)")
		return nil
	}
	for _, k := range sortedKeys(layers) {
		if len(k) != 32 {
			return errField("piece layers", "key of %d bytes, want a 32-byte pieces root", len(k))
		}
		s, ok := layers[k].(string)
		if !ok {
			return errField("piece layers", "want a string of hashes, got %s", typeName(layers[k]))
		}
		if len(s) == 0 || len(s)%32 != 0 {
			return errField("piece layers", "layer of %d bytes is not a positive multiple of 32", len(s))
		}
	}
	return nil
}

// parseTrackers applies BEP 12: a usable announce-list replaces announce. URLs are trimmed,
// empty ones dropped, and a URL appears once across all tiers (its first place wins).
func (t *Torrent) parseTrackers(d dict) {
	seen := make(map[string]bool)
	total := 0
	add := func(urls []string) []string {
		var tier []string
		for _, u := range uniqueURLs(urls, seen) {
			if total >= MaxTrackers {
				t.Warnings = append(t.Warnings, fmt.Sprintf("trackers: more than %d, the rest dropped", MaxTrackers))
				break
			}
			tier = append(tier, u)
			total++
		}
		return tier
	}

	if list, ok, err := d.listField("", "announce-list"); err != nil {
		t.warn(err)
	} else if ok {
		for i, tierAny := range list {
			if total >= MaxTrackers {
				break
			}
			var urls []string
			switch tv := tierAny.(type) {
			case []any:
				for _, u := range tv {
					if s, ok := u.(string); ok {
						urls = append(urls, s)
					}
				}
			case string: // a flat list instead of a list of tiers: take each as its own tier
				urls = []string{tv}
			default:
				t.Warnings = append(t.Warnings, fmt.Sprintf("announce-list[%d]: want a list, got %s (ignored)", i, typeName(tierAny)))
				continue
			}
			if tier := add(urls); len(tier) > 0 {
				t.Trackers = append(t.Trackers, tier)
			}
		}
	}
	if len(t.Trackers) > 0 {
		return
	}
	if s, ok, err := d.strField("", "announce"); err != nil {
		t.warn(err)
	} else if ok {
		if tier := add([]string{s}); len(tier) > 0 {
			t.Trackers = append(t.Trackers, tier)
		}
	}
}

// uniqueURLs trims each URL, drops empty ones and ones with inner white space or control
// characters, and drops repeats (also of those in seen, when given).
func uniqueURLs(urls []string, seen map[string]bool) []string {
	if seen == nil {
		seen = make(map[string]bool)
	}
	var out []string
	for _, u := range urls {
		u = strings.TrimSpace(u)
		if u == "" || seen[u] || strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	return out
}
