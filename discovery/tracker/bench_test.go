package tracker

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

func benchPeers(n int) []netip.AddrPort {
	peers := make([]netip.AddrPort, n)
	for i := range peers {
		peers[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 2, byte(i >> 8), byte(i)}), uint16(1000+i))
	}
	return peers
}

// BenchmarkDecodeHTTPAnnounce decodes a 200-peer compact reply (numwant=200).
func BenchmarkDecodeHTTPAnnounce(b *testing.B) {
	body := []byte(fmt.Sprintf("d8:completei10e10:incompletei20e8:intervali1800e12:min intervali900e5:peers%d:%se",
		200*6, compact4(benchPeers(200))))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeHTTPAnnounce(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeUDPAnnounce decodes a 200-peer UDP reply.
func BenchmarkDecodeUDPAnnounce(b *testing.B) {
	p := binary.BigEndian.AppendUint32(nil, udpActAnnounce)
	p = append(p, make([]byte, 16)...)
	p = append(p, compact4(benchPeers(200))...)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := decodeUDPAnnounce(p, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPAnnounceURL builds one announce URL.
func BenchmarkHTTPAnnounceURL(b *testing.B) {
	r := AnnounceRequest{Hash: testHash, PeerID: NewPeerID(), Key: 1, Port: 6881, Left: 1 << 30, NumWant: 200}
	for b.Loop() {
		_ = httpAnnounceURL("http://tracker.example/announce?passkey=x", r)
	}
}

// BenchmarkAnnounceLoopback is one full announce (request, reply, decode, metrics) against
// the loopback fakes: what one tracker request costs btda, network stack included.
func BenchmarkAnnounceLoopback(b *testing.B) {
	for _, proto := range []string{"http", "udp"} {
		b.Run(proto, func(b *testing.B) {
			var u string
			if proto == "http" {
				u = newFakeHTTP(b, "127.0.0.1", nil).URL
			} else {
				u = newFakeUDP(b, "127.0.0.1", nil).URL
			}
			m, _ := newMetrics(nil)
			c := newCore(fastConfig(nil), m)
			defer c.close()
			req := AnnounceRequest{Hash: testHash, PeerID: c.cfg.PeerID, Port: 6881, Left: 1}
			for b.Loop() {
				if _, err := c.announce(context.Background(), u, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
