package srcaddr

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // "" = valid; else a part of the error
	}{
		{nil, ""},
		{[]string{"192.0.2.7"}, ""},
		{[]string{"2001:db8::7"}, ""},
		{[]string{"192.0.2.7", "2001:db8::7"}, ""},
		{[]string{"wg0"}, ""},
		{[]string{"::ffff:192.0.2.7"}, ""},
		{[]string{"192.0.2.7", "192.0.2.8"}, "only one address per family"},
		{[]string{"0.0.0.0"}, "unspecified"},
		{[]string{"::"}, "unspecified"},
		{[]string{"fe80::1%eth0"}, "zone"},
		{[]string{"224.0.0.1"}, "multicast"},
		{[]string{""}, "empty"},
		{[]string{"wg0", "192.0.2.7"}, "only entry"},
		{[]string{"192.0.2.300"}, "neither an IP address nor an interface name"},
		{[]string{"192.0.2.0/24"}, "neither"},
		{[]string{"an-interface-name-too-long"}, "neither"},
	} {
		err := Check(tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.want)
		}
	}
}

func TestResolveInterface(t *testing.T) {
	a, err := Resolve([]string{"lo"})
	if err != nil {
		t.Skipf("no loopback interface named lo: %v", err)
	}
	if !a.V4.IsLoopback() {
		t.Errorf("lo: IPv4 %v, want a loopback address", a.V4)
	}
	if a.V6.IsValid() && a.V6 != netip.IPv6Loopback() {
		t.Errorf("lo: IPv6 %v, want ::1", a.V6)
	}
	if _, err := Resolve([]string{"nosuchif0"}); err == nil || !strings.Contains(err.Error(), "nosuchif0") {
		t.Errorf("missing interface: %v", err)
	}
	b, err := Resolve([]string{"127.0.0.5", "::1"})
	if err != nil || b != (Addrs{V4: netip.MustParseAddr("127.0.0.5"), V6: netip.IPv6Loopback()}) {
		t.Errorf("literals: %+v %v", b, err)
	}
}

// TestDialFromSource reads the source address of real loopback connections on the
// accepting side.
func TestDialFromSource(t *testing.T) {
	src := Addrs{V4: netip.MustParseAddr("127.0.0.5")}
	ln := listen(t, "127.0.0.1:0")
	dial := src.DialFunc(net.Dialer{})
	for _, addr := range []string{ln.Addr().String(), "localhost:" + port(ln)} {
		c, err := dial(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		peer := accept(t, ln)
		if got := netip.MustParseAddrPort(peer.RemoteAddr().String()); got.Addr() != src.V4 || got.Port() == 0 {
			t.Errorf("%s: connection from %v, want from %v", addr, got, src.V4)
		}
		if got := netip.MustParseAddrPort(c.LocalAddr().String()).Addr(); got != src.V4 {
			t.Errorf("%s: local address %v", addr, got)
		}
		c.Close()
		peer.Close()
	}
	// No IPv6 source: IPv6 destinations are refused, not dialled from the kernel's choice.
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln6.Close()
	if _, err := dial(context.Background(), "tcp", ln6.Addr().String()); !errors.Is(err, ErrNoFamily) {
		t.Errorf("IPv6 destination without an IPv6 source: %v", err)
	}
	src.V6 = netip.IPv6Loopback()
	c, err := src.DialFunc(net.Dialer{})(context.Background(), "tcp", ln6.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := netip.MustParseAddrPort(c.LocalAddr().String()).Addr(); got != src.V6 {
		t.Errorf("IPv6: local address %v", got)
	}
}

func TestListenUDP(t *testing.T) {
	c, err := Addrs{V4: netip.MustParseAddr("127.0.0.5")}.ListenUDP("udp4")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := netip.MustParseAddrPort(c.LocalAddr().String()).Addr(); got.String() != "127.0.0.5" {
		t.Errorf("bound to %v", got)
	}
	if _, err := (Addrs{V4: netip.MustParseAddr("127.0.0.5")}).ListenUDP("udp6"); !errors.Is(err, ErrNoFamily) {
		t.Errorf("udp6 without an IPv6 source: %v", err)
	}
}

func TestListenAddresses(t *testing.T) {
	both := Addrs{V4: netip.MustParseAddr("192.0.2.7"), V6: netip.MustParseAddr("2001:db8::7")}
	v4 := Addrs{V4: both.V4}
	for _, tc := range []struct {
		a    Addrs
		in   string
		want []string
		err  bool
	}{
		{Addrs{}, ":6884", []string{":6884"}, false},
		{both, ":6884", []string{"192.0.2.7:6884", "[2001:db8::7]:6884"}, false},
		{both, "0.0.0.0:17000", []string{"192.0.2.7:17000"}, false},
		{both, "[::]:17000", []string{"[2001:db8::7]:17000"}, false},
		{both, "10.0.0.1:6884", []string{"10.0.0.1:6884"}, false},
		{v4, ":6884", []string{"192.0.2.7:6884"}, false},
		{v4, "[::]:17000", nil, true},
	} {
		got, err := tc.a.ListenAddresses(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%v %q: %q %v, want %q", tc.a, tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		a    Addrs
		in   string
		v6   bool
		want string // "" = error
	}{
		{Addrs{}, ":17000", false, ":17000"},
		{Addrs{}, "[::]:17000", true, "[::]:17000"},
		{both, ":17000", false, "192.0.2.7:17000"},
		{both, ":17000", true, "[2001:db8::7]:17000"},
		{both, "[::]:17000", true, "[2001:db8::7]:17000"},
		{both, "[::1]:17000", true, "[::1]:17000"},
		{v4, ":17000", true, ""},
		{v4, "[::]:17000", true, ""},
	} {
		got, err := tc.a.ListenAddress(tc.in, tc.v6)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("ListenAddress(%v, %q, v6=%v) = %q %v, want %q", tc.a, tc.in, tc.v6, got, err, tc.want)
		}
	}
}

// TestListenTCP: one listener over two addresses accepts from both and closes cleanly.
func TestListenTCP(t *testing.T) {
	ln, err := ListenTCP([]string{"127.0.0.1:0", "127.0.0.5:0"})
	if err != nil {
		t.Fatal(err)
	}
	m := ln.(*multiListener)
	if port(m.lns[0]) != port(m.lns[1]) {
		t.Errorf("listening on %v and %v: want one port", m.lns[0].Addr(), m.lns[1].Addr())
	}
	for _, l := range m.lns {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got := accept(t, ln)
		if got.LocalAddr().String() != l.Addr().String() {
			t.Errorf("accepted on %v, want %v", got.LocalAddr(), l.Addr())
		}
		got.Close()
		c.Close()
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func port(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
