package main

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// checkExposition lints a live /metrics scrape (promlint) and fails if any label value is
// or contains a peer address: DESIGN.md §4 forbids peer IPs, ports and peer_ids in labels.
func checkExposition(t *testing.T, exposition string, peers []netip.AddrPort) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, m := range labelPair.FindAllStringSubmatch(line, -1) {
			v := m[2]
			// A tracker named by IP literal in a torrent is the operator's server, not a peer.
			if _, err := netip.ParseAddr(v); err == nil && m[1] != "tracker" {
				t.Errorf("label %s carries an address: %s", m[1], line)
			}
			for _, p := range peers {
				if strings.Contains(v, p.Addr().String()) {
					t.Errorf("label %s carries peer %s: %s", m[1], p, line)
				}
			}
		}
	}
}
