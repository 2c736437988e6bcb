package swarmtracker

import (
	"io"
	"net/http"
	"testing"
	"time"
)

func BenchmarkParseAnnounceQuery(b *testing.B) {
	q := query(ihA, "compact=1&numwant=50&event=started&key=abcdef")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAnnounceQuery(q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseUDPRequest(b *testing.B) {
	p := (&udpClient{}).announcePacket(1, ihA, 2, 50, 6881)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseUDPRequest(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPAnnounce is one compact announce round trip (keep-alive) on a 5000-peer swarm.
func BenchmarkHTTPAnnounce(b *testing.B) {
	tr, err := Start(b.Context(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.SetPeers(ihA, v4Peers(benchPeers))
	u := tr.AnnounceURL() + "?" + query(ihA, "compact=1&numwant=50")
	cl := &http.Client{Transport: &http.Transport{}}
	defer cl.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := cl.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkUDPAnnounce is one announce round trip on a 5000-peer swarm.
func BenchmarkUDPAnnounce(b *testing.B) {
	tr, err := Start(b.Context(), Config{MaxRecords: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.SetPeers(ihA, v4Peers(benchPeers))
	c := dialUDP(b, tr.UDPAnnounceURL(), "")
	id := c.connect()
	b.ReportAllocs()
	for b.Loop() {
		if r := c.roundTrip(c.announcePacket(id, ihA, 0, 50, 6881), 5*time.Second); len(r) != 20+6*min(50, benchPeers) {
			b.Fatalf("reply %d bytes", len(r))
		}
	}
}

var benchPeers = 5000
