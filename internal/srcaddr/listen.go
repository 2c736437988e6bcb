package srcaddr

import (
	"errors"
	"net"
	"sync"
)

// ListenTCP listens on every address and returns one net.Listener accepting from all of
// them (one address: that listener itself). Addr is the first address's; a later address
// with port 0 takes the first one's port, so that all listen on the port announced.
func ListenTCP(addrs []string) (net.Listener, error) {
	if len(addrs) == 0 {
		return nil, errors.New("srcaddr: ListenTCP without an address")
	}
	lns := make([]net.Listener, 0, len(addrs))
	for i, a := range addrs {
		if host, port, err := net.SplitHostPort(a); i > 0 && err == nil && port == "0" {
			_, p, _ := net.SplitHostPort(lns[0].Addr().String())
			a = net.JoinHostPort(host, p)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	if len(lns) == 1 {
		return lns[0], nil
	}
	m := &multiListener{lns: lns, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	for _, ln := range lns {
		m.wg.Add(1)
		go m.accept(ln)
	}
	return m, nil
}

// multiListener merges the accepts of several listeners.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func (m *multiListener) accept(ln net.Listener) {
	defer m.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Hand the error on (the caller backs off on EMFILE and the like) and go on:
			// this blocks until the caller reads it, so a persistent error cannot spin.
			select {
			case m.errs <- err:
				continue
			case <-m.done:
				return
			}
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes every listener and waits for their accept loops.
func (m *multiListener) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			err = errors.Join(err, ln.Close())
		}
		m.wg.Wait()
	})
	return err
}

func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
