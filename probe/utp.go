package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
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

// ListenUTPAll opens a uTP socket on each of addrs (one per address family, like the TCP
// listeners of peer.source_addresses): one socket cannot carry both families when it is
// bound to an address, so with 127.0.0.1 and ::1 a single socket left every IPv6 peer
// unreachable over uTP, both ways. Accept merges the sockets' connections; DialContext
// leaves from the socket of the target's family (the first socket when none matches).
// One address gives a plain ListenUTP socket.
func ListenUTPAll(addrs []string) (UTPSocket, error) {
	if len(addrs) == 1 {
		return ListenUTP(addrs[0])
	}
	m := &multiUTP{conns: make(chan net.Conn), done: make(chan struct{})}
	for _, a := range addrs {
		s, err := ListenUTP(a)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.socks = append(m.socks, s)
	}
	if len(m.socks) == 0 {
		return nil, errors.New("probe: uTP socket without an address")
	}
	for _, s := range m.socks {
		m.wg.Add(1)
		go m.accept(s)
	}
	return m, nil
}

// multiUTP is several uTP sockets as one UTPSocket.
type multiUTP struct {
	socks []UTPSocket
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func (m *multiUTP) accept(s UTPSocket) {
	defer m.wg.Done()
	for {
		c, err := s.Accept()
		if err != nil {
			return // libutp's Accept fails only once the socket is closed
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *multiUTP) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes every socket (ending their connections) and waits for the accept loops.
func (m *multiUTP) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		for _, s := range m.socks {
			err = errors.Join(err, s.Close())
		}
		m.wg.Wait()
	})
	return err
}

func (m *multiUTP) Addr() net.Addr { return m.socks[0].Addr() }

func (m *multiUTP) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s := m.socks[0]
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		for _, c := range m.socks {
			if la, ok := c.Addr().(*net.UDPAddr); ok && la.AddrPort().Addr().Unmap().Is4() == ap.Addr().Unmap().Is4() {
				s = c
				break
			}
		}
	}
	return s.DialContext(ctx, network, addr)
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
