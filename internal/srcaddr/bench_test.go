package srcaddr

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// BenchmarkDialHeld opens b.N connections from a source address and keeps them all open,
// as thousands of probe sessions do: "no_port" is DialFunc (IP_BIND_ADDRESS_NO_PORT),
// "bind" a plain net.Dialer with LocalAddr, which binds address and port 0 before
// connect and so runs the kernel's bind port search over every port already held.
//
//	unshare -n sh -c 'ip link set lo up; ulimit -n 65536; go test -run X -bench DialHeld -benchtime 8000x ./internal/srcaddr'
func BenchmarkDialHeld(b *testing.B) {
	src := Addrs{V4: netip.MustParseAddr("127.0.0.5")}
	for _, v := range []struct {
		name string
		dial func(ctx context.Context, network, addr string) (net.Conn, error)
	}{
		{"no_port", src.DialFunc(net.Dialer{})},
		{"bind", (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src.V4.AsSlice()}}).DialContext},
	} {
		b.Run(v.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1024)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						close(accepted)
						return
					}
					accepted <- c
				}
			}()
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			b.ResetTimer()
			for range b.N {
				c, err := v.dial(context.Background(), "tcp", ln.Addr().String())
				switch {
				case err != nil && v.name == "bind":
					// What the comparison shows: bind's port search runs out of ports that
					// connect alone would still find (ports are free per destination).
					b.Skipf("bind failed after %d connections held: %v", len(held)/2, err)
				case err != nil:
					b.Fatalf("after %d connections: %v", len(held)/2, err)
				}
				held = append(held, c, <-accepted)
			}
		})
	}
}
