package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	utp "github.com/anacrolix/go-libutp"
)

// uTP (BEP 29, the UDP transport libtorrent and µTorrent dial first) through
// anacrolix/go-libutp, a cgo binding of the reference libutp: building btda needs
// CGO_ENABLED=1 and a C++ compiler.

// UTPSocket is one UDP socket speaking uTP: the listener of incoming uTP peers and the
// dialer of outgoing uTP sessions at once, so peers see our uTP sessions come from our
// listen port. Its connections report errors as the TCP ones do (os.ErrDeadlineExceeded,
// syscall.ECONNRESET, …), so sessions end the same way over both transports.
type UTPSocket interface {
	net.Listener
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// ListenUTP opens a uTP socket on the UDP address addr ("host:port"; port 0 picks one).
// Closing it ends every uTP connection it carries.
func ListenUTP(addr string) (UTPSocket, error) {
	s, err := utp.NewSocket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe: uTP socket on %s: %w", addr, err)
	}
	return &utpSocket{s: s}, nil
}

type utpSocket struct{ s *utp.Socket }

func (u *utpSocket) Accept() (net.Conn, error) {
	c, err := u.s.Accept()
	if err != nil {
		return nil, utpError(err)
	}
	return &utpConn{c}, nil
}

func (u *utpSocket) Close() error   { return u.s.Close() }
func (u *utpSocket) Addr() net.Addr { return u.s.Addr() }

func (u *utpSocket) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := u.s.DialContext(ctx, network, addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("uTP connect: %w", ctx.Err())
		}
		return nil, utpError(err)
	}
	return &utpConn{c}, nil
}

// utpConn maps libutp's errors to the standard ones.
type utpConn struct{ net.Conn }

func (c *utpConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	return n, utpError(err)
}

func (c *utpConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	return n, utpError(err)
}

// utpError wraps libutp's errors (its own deadline error, and the C library's error code
// names as plain strings) in their standard equivalents.
func utpError(err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("uTP: %w", os.ErrDeadlineExceeded)
	}
	switch err.Error() {
	case "ECONNREFUSED":
		return fmt.Errorf("uTP: %w", syscall.ECONNREFUSED)
	case "ECONNRESET":
		return fmt.Errorf("uTP: %w", syscall.ECONNRESET)
	case "ETIMEDOUT":
		return fmt.Errorf("uTP: %w", syscall.ETIMEDOUT)
	}
	return err
}

func isUTP(c net.Conn) bool {
	switch c := c.(type) {
	case *utpConn:
		return true
	case *streamConn:
		return isUTP(c.Conn)
	}
	return false
}
