// Package srcaddr binds btda's outgoing sockets to the operator's source addresses
// (`peer.source_addresses`): one IPv4 and/or one IPv6 address, or the addresses of one
// network interface. Once any source address is set, a family without one is not used
// at all, so that nothing leaves a VPN or a chosen interface from the kernel's default.
package srcaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// Addrs are the resolved source addresses. The zero value binds nothing: the kernel picks
// the source address of every socket, for both families.
type Addrs struct {
	V4 netip.Addr // invalid: no IPv4 source address
	V6 netip.Addr // invalid: no IPv6 source address
}

// ErrNoFamily is returned when source addresses are set but none of the destination's family.
var ErrNoFamily = errors.New("no source address of this address family is configured")

// maxIfName is Linux's IFNAMSIZ less the terminating NUL.
const maxIfName = 15

// Check validates configuration entries without touching the system: at most one IPv4
// and one IPv6 literal address (neither unspecified, multicast nor with a zone), or a
// single interface name.
func Check(entries []string) error {
	_, err := parse(entries)
	return err
}

// parsed is Check's reading of the entries: literal addresses, or an interface name.
type parsed struct {
	addrs Addrs
	iface string
}

func parse(entries []string) (parsed, error) {
	var p parsed
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			return p, fmt.Errorf("entry %d is empty", i)
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			if strings.ContainsAny(e, ":/ \t%") || len(e) > maxIfName || strings.Count(e, ".") == 3 {
				return p, fmt.Errorf("%q is neither an IP address nor an interface name", e)
			}
			if len(entries) != 1 {
				return p, fmt.Errorf("interface %q must be the only entry (it stands for its own IPv4 and IPv6 addresses)", e)
			}
			p.iface = e
			return p, nil
		}
		switch {
		case a.Zone() != "":
			return p, fmt.Errorf("%q: addresses with a zone (link-local) cannot be a source address", e)
		case a.IsUnspecified():
			return p, fmt.Errorf("%q is the unspecified address; leave the key out to let the kernel choose", e)
		case a.IsMulticast():
			return p, fmt.Errorf("%q is a multicast address", e)
		}
		a = a.Unmap()
		dst := &p.addrs.V6
		if a.Is4() {
			dst = &p.addrs.V4
		}
		if dst.IsValid() {
			return p, fmt.Errorf("%q: only one address per family (already %s)", e, *dst)
		}
		*dst = a
	}
	return p, nil
}

// Resolve reads entries (see Check): literal addresses as given; an interface name
// becomes its first IPv4 and its first IPv6 address that is not link-local. It fails when
// the interface does not exist or has neither.
func Resolve(entries []string) (Addrs, error) {
	p, err := parse(entries)
	if err != nil || p.iface == "" {
		return p.addrs, err
	}
	ifi, err := net.InterfaceByName(p.iface)
	if err != nil {
		return Addrs{}, fmt.Errorf("interface %q: %w", p.iface, err)
	}
	as, err := ifi.Addrs()
	if err != nil {
		return Addrs{}, fmt.Errorf("interface %q: reading its addresses: %w", p.iface, err)
	}
	var r Addrs
	for _, a := range as {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		switch {
		case ip.Is4() && !r.V4.IsValid():
			r.V4 = ip
		case ip.Is6() && !r.V6.IsValid() && !ip.IsLinkLocalUnicast():
			r.V6 = ip
		}
	}
	if !r.IsSet() {
		return Addrs{}, fmt.Errorf("interface %q has no IPv4 nor non-link-local IPv6 address", p.iface)
	}
	return r, nil
}

// IsSet reports whether any source address is configured.
func (a Addrs) IsSet() bool { return a.V4.IsValid() || a.V6.IsValid() }

// Allows reports whether sockets of the family of dst may be used: always when no
// source address is set, else only for a family with a source address.
func (a Addrs) Allows(dst netip.Addr) bool {
	_, err := a.For(dst)
	return err == nil
}

// For returns the source address for a destination: the invalid Addr (kernel's choice)
// when none is set, ErrNoFamily when only the other family has one.
func (a Addrs) For(dst netip.Addr) (netip.Addr, error) {
	if !a.IsSet() {
		return netip.Addr{}, nil
	}
	src := a.V6
	if dst.Unmap().Is4() {
		src = a.V4
	}
	if !src.IsValid() {
		return netip.Addr{}, fmt.Errorf("to %s: %w", dst, ErrNoFamily)
	}
	return src, nil
}

// String lists the addresses, for logs.
func (a Addrs) String() string {
	var s []string
	for _, x := range []netip.Addr{a.V4, a.V6} {
		if x.IsValid() {
			s = append(s, x.String())
		}
	}
	if len(s) == 0 {
		return "kernel's choice"
	}
	return strings.Join(s, ", ")
}

// DialFunc returns a DialContext for TCP that binds each connection to the source
// address of the destination's family; d supplies the other settings (timeouts). With no
// source address set it is d.DialContext. The port is chosen at connect time
// (IP_BIND_ADDRESS_NO_PORT): binding an address with port 0 before connect would run the
// kernel's bind port search on every socket, which BENCHMARKS.md measured at most of two
// cores at 15,000 sessions.
func (a Addrs) DialFunc(d net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	if !a.IsSet() {
		return d.DialContext
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			return a.dial(ctx, d, ip.Unmap().Is4(), network, address)
		}
		// A host name (HTTP trackers): a pinned network picks the family; "tcp" tries
		// the IPv4 source, then the IPv6 one.
		var errs []error
		for _, v4 := range []bool{true, false} {
			switch {
			case network == "tcp4" && !v4, network == "tcp6" && v4:
				continue
			case v4 && !a.V4.IsValid(), !v4 && !a.V6.IsValid():
				continue
			}
			c, err := a.dial(ctx, d, v4, network, address)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if len(errs) == 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: ErrNoFamily}
		}
		return nil, errors.Join(errs...)
	}
}

func (a Addrs) dial(ctx context.Context, d net.Dialer, v4 bool, network, address string) (net.Conn, error) {
	src, nw := a.V6, "tcp6"
	if v4 {
		src, nw = a.V4, "tcp4"
	}
	if !src.IsValid() || (network != "tcp" && network != nw) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: ErrNoFamily}
	}
	d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	prevCtx, prev := d.ControlContext, d.Control
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		var err error
		switch {
		case prevCtx != nil:
			err = prevCtx(ctx, network, address, c)
		case prev != nil:
			err = prev(network, address, c)
		}
		if err != nil {
			return err
		}
		return bindNoPort(c)
	}
	return d.DialContext(ctx, nw, address)
}

// ListenUDP opens a UDP socket of network ("udp4" or "udp6") on the family's source
// address and an ephemeral port, or on the wildcard address when none is set.
func (a Addrs) ListenUDP(network string) (*net.UDPConn, error) {
	var laddr *net.UDPAddr
	if a.IsSet() {
		src := a.V4
		if network == "udp6" {
			src = a.V6
		}
		if !src.IsValid() {
			return nil, &net.OpError{Op: "listen", Net: network, Err: ErrNoFamily}
		}
		laddr = &net.UDPAddr{IP: src.AsSlice()}
	}
	return net.ListenUDP(network, laddr)
}

// ListenAddresses returns where a listener configured at addr listens: addr itself when
// no source address is set or addr names a specific host; otherwise, for an empty host
// (":6884") every source address, for "0.0.0.0" the IPv4 one and for "::" the IPv6 one,
// each with addr's port, so that a listen address left at its default follows the source
// addresses. It fails when the wildcard's family has no source address.
func (a Addrs) ListenAddresses(addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !a.IsSet() {
		return []string{addr}, nil
	}
	var srcs []netip.Addr
	switch host {
	case "":
		srcs = []netip.Addr{a.V4, a.V6}
	case "0.0.0.0":
		srcs = []netip.Addr{a.V4}
	case "::":
		srcs = []netip.Addr{a.V6}
	default:
		return []string{addr}, nil
	}
	var out []string
	for _, s := range srcs {
		if s.IsValid() {
			out = append(out, net.JoinHostPort(s.String(), port))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("listen address %q: %w", addr, ErrNoFamily)
	}
	return out, nil
}

// ListenAddress is ListenAddresses for a socket of one family (a UDP node): an empty host
// stands for that family's wildcard.
func (a Addrs) ListenAddress(addr string, v6 bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		out, err := a.ListenAddresses(addr)
		if err != nil {
			return "", err
		}
		return out[0], nil
	}
	wild := "0.0.0.0"
	if v6 {
		wild = "::"
	}
	if !a.IsSet() {
		return addr, nil
	}
	out, err := a.ListenAddresses(net.JoinHostPort(wild, port))
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, ErrNoFamily)
	}
	return out[0], nil
}
