package tracker

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func httpSeeds() []string {
	return []string{
		"d8:intervali1800e12:min intervali900e5:peers12:" + compact4(testPeers) + "e",
		"d5:peersld2:ip9:127.1.0.14:porti6881eee6:peers618:0123456789abcdef\x01\x02e",
		"d14:failure reason17:torrent not founde",
		"d5:filesd20:" + string(testHash[:]) + "d8:completei3e10:downloadedi5e10:incompletei4eeee",
		"li1ei2ee", "<html>", "d5:peers2000000000:e", strings.Repeat("l", 50), "i-0e", "d1:ai01ee",
	}
}

func checkReason(t *testing.T, err error) {
	if err == nil {
		return
	}
	if r := ReasonOf(err); r != ReasonBadResponse && r != ReasonFailure {
		t.Fatalf("decoder error with reason %q: %v", r, err)
	}
}

func FuzzDecodeHTTPAnnounce(f *testing.F) {
	for _, s := range httpSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeHTTPAnnounce(body)
		checkReason(t, err)
		if err != nil {
			return
		}
		if r.Interval < 0 || r.Interval > 24*time.Hour || r.MinInterval < 0 || r.MinInterval > 24*time.Hour {
			t.Fatalf("intervals out of range: %v %v", r.Interval, r.MinInterval)
		}
		for _, p := range r.Peers {
			if !p.IsValid() || p.Port() == 0 || p.Addr().Is4In6() {
				t.Fatalf("bad peer %v", p)
			}
		}
	})
}

func FuzzDecodeHTTPScrape(f *testing.F) {
	for _, s := range httpSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := decodeHTTPScrape(body, testHash)
		checkReason(t, err)
		if err == nil && (s.Seeders < 0 || s.Leechers < 0 || s.Downloaded < 0) {
			t.Fatalf("negative scrape figures %+v", s)
		}
	})
}

func FuzzDecodeUDP(f *testing.F) {
	hdr := func(action, tid uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, action), tid)
	}
	f.Add(append(hdr(0, 1), 1, 2, 3, 4, 5, 6, 7, 8), false)
	f.Add(append(append(hdr(1, 1), 0, 0, 7, 8, 0, 0, 0, 4, 0, 0, 0, 5), compact4(testPeers)...), false)
	f.Add(append(hdr(1, 1), make([]byte, 12+18*2)...), true)
	f.Add(append(hdr(2, 1), 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 4), false)
	f.Add(append(hdr(3, 1), "no such torrent"...), false)
	f.Add([]byte{1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, p []byte, v6 bool) {
		udpHeader(p)
		decodeUDPConnect(p)
		decodeUDPError(p)
		if s, err := decodeUDPScrape(p); err == nil && (s.Seeders < 0 || s.Leechers < 0 || s.Downloaded < 0) {
			t.Fatalf("negative scrape figures %+v", s)
		}
		if r, err := decodeUDPAnnounce(p, v6); err == nil {
			for _, peer := range r.Peers {
				if !peer.IsValid() || peer.Port() == 0 || (v6 != peer.Addr().Is6() && !peer.Addr().Is4()) {
					t.Fatalf("bad peer %v (v6=%v)", peer, v6)
				}
			}
		}
	})
}
