package tracker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/internal/srcaddr"
)

// BEP 15 constants.
const (
	udpProtocolID   = 0x41727101980
	udpActConnect   = 0
	udpActAnnounce  = 1
	udpActScrape    = 2
	udpActError     = 3
	udpConnIDMaxAge = time.Minute
)

// encodeUDPConnect builds a connect request.
func encodeUDPConnect(tid uint32) []byte {
	p := make([]byte, 16)
	binary.BigEndian.PutUint64(p[0:], udpProtocolID)
	binary.BigEndian.PutUint32(p[8:], udpActConnect)
	binary.BigEndian.PutUint32(p[12:], tid)
	return p
}

// encodeUDPAnnounce builds the 98-byte announce request. IP is 0 (the tracker uses the
// packet's source address); the port is packed unsigned. A non-empty urlData (the announce
// URL's path and query, where private trackers put passkeys) follows as BEP 41 URLData
// options, which trackers without BEP 41 ignore.
func encodeUDPAnnounce(connID uint64, tid uint32, r AnnounceRequest, urlData string) []byte {
	p := make([]byte, 98, 98+len(urlData)+2*(len(urlData)/255+1)+1)
	binary.BigEndian.PutUint64(p[0:], connID)
	binary.BigEndian.PutUint32(p[8:], udpActAnnounce)
	binary.BigEndian.PutUint32(p[12:], tid)
	copy(p[16:36], r.Hash[:])
	copy(p[36:56], r.PeerID[:])
	binary.BigEndian.PutUint64(p[56:], 0) // downloaded
	binary.BigEndian.PutUint64(p[64:], uint64(max(r.Left, 0)))
	binary.BigEndian.PutUint64(p[72:], 0) // uploaded
	binary.BigEndian.PutUint32(p[80:], uint32(r.Event))
	binary.BigEndian.PutUint32(p[84:], 0) // IP: use the source address
	binary.BigEndian.PutUint32(p[88:], r.Key)
	numWant := r.NumWant
	if numWant <= 0 {
		numWant = -1
	}
	binary.BigEndian.PutUint32(p[92:], uint32(numWant))
	binary.BigEndian.PutUint16(p[96:], r.Port)
	for len(urlData) > 0 {
		n := min(len(urlData), 255)
		p = append(p, 0x2, byte(n))
		p = append(p, urlData[:n]...)
		urlData = urlData[n:]
	}
	return p
}

// udpURLData is the BEP 41 URLData of a udp:// URL: its path and query, or "" when the
// URL has neither.
func udpURLData(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	d := u.EscapedPath()
	if u.RawQuery != "" {
		d += "?" + u.RawQuery
	}
	return d
}

// encodeUDPScrape builds a scrape request for one info hash.
func encodeUDPScrape(connID uint64, tid uint32, h metainfo.Hash) []byte {
	p := make([]byte, 36)
	binary.BigEndian.PutUint64(p[0:], connID)
	binary.BigEndian.PutUint32(p[8:], udpActScrape)
	binary.BigEndian.PutUint32(p[12:], tid)
	copy(p[16:], h[:])
	return p
}

// udpHeader reads action and transaction id; ok is false for packets shorter than 8 bytes.
func udpHeader(p []byte) (action, tid uint32, ok bool) {
	if len(p) < 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), true
}

// decodeUDPConnect reads a connect reply's connection id.
func decodeUDPConnect(p []byte) (uint64, error) {
	if len(p) < 16 {
		return 0, fmt.Errorf("connect reply of %d bytes, want 16", len(p))
	}
	if a := binary.BigEndian.Uint32(p); a != udpActConnect {
		return 0, fmt.Errorf("connect reply with action %d", a)
	}
	return binary.BigEndian.Uint64(p[8:]), nil
}

// decodeUDPAnnounce reads an announce reply; peers are 6 bytes (IPv4 tracker socket) or
// 18 bytes (IPv6) each. A trailing partial peer is an error.
func decodeUDPAnnounce(p []byte, ipv6 bool) (*AnnounceResponse, error) {
	if a, _, ok := udpHeader(p); ok && a != udpActAnnounce {
		return nil, fmt.Errorf("announce reply with action %d", a)
	}
	if len(p) == 8 {
		return nil, errors.New("empty announce reply (opentracker's answer for a torrent it does not track)")
	}
	if len(p) < 20 {
		return nil, fmt.Errorf("announce reply of %d bytes, want at least 20", len(p))
	}
	r := &AnnounceResponse{
		Interval: time.Duration(min(int64(binary.BigEndian.Uint32(p[8:])), maxIntervalSeconds)) * time.Second,
		Leechers: int64(binary.BigEndian.Uint32(p[12:])),
		Seeders:  int64(binary.BigEndian.Uint32(p[16:])),
	}
	ipLen := 4
	if ipv6 {
		ipLen = 16
	}
	peers, err := compactPeers(p[20:], ipLen)
	if err != nil {
		return nil, err
	}
	r.Peers = peers
	return r, nil
}

// decodeUDPScrape reads a scrape reply for one info hash.
func decodeUDPScrape(p []byte) (*ScrapeResponse, error) {
	if len(p) < 20 {
		return nil, fmt.Errorf("scrape reply of %d bytes, want at least 20", len(p))
	}
	if a := binary.BigEndian.Uint32(p); a != udpActScrape {
		return nil, fmt.Errorf("scrape reply with action %d", a)
	}
	return &ScrapeResponse{
		Seeders:    int64(binary.BigEndian.Uint32(p[8:])),
		Downloaded: int64(binary.BigEndian.Uint32(p[12:])),
		Leechers:   int64(binary.BigEndian.Uint32(p[16:])),
	}, nil
}

// decodeUDPError reads an error reply's message.
func decodeUDPError(p []byte) string {
	if len(p) <= 8 {
		return "(no message)"
	}
	return clip(strings.ToValidUTF8(string(p[8:]), "?"), 200)
}

// udpMux owns one UDP socket (per address family) shared by every UDP tracker of an
// Announcer, and a read loop that hands each reply to the request waiting on its
// transaction id.
type udpMux struct {
	conn   *net.UDPConn
	logger *slog.Logger

	mu      sync.Mutex
	waiters map[uint32]*udpWaiter
	done    chan struct{}
}

type udpWaiter struct {
	from  netip.AddrPort
	pkts  chan []byte
	junkN int    // guarded by udpMux.mu
	junk  string // last junk description, guarded by udpMux.mu
}

func newUDPMux(network string, src srcaddr.Addrs, logger *slog.Logger) (*udpMux, error) {
	c, err := src.ListenUDP(network)
	if err != nil {
		return nil, err
	}
	m := &udpMux{conn: c, logger: logger, waiters: map[uint32]*udpWaiter{}, done: make(chan struct{})}
	go m.readLoop()
	return m, nil
}

// close stops the read loop and waits for it.
func (m *udpMux) close() {
	m.conn.Close()
	<-m.done
}

func (m *udpMux) readLoop() {
	defer close(m.done)
	// 64 KiB: the largest UDP payload. (The 2015 tool's 2048 bytes cut off long peer lists.)
	buf := make([]byte, 65536)
	for {
		n, from, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logger.Debug("UDP tracker socket read error", "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		_, tid, ok := udpHeader(buf[:n])
		m.mu.Lock()
		w := m.waiters[tid]
		if !ok || w == nil || w.from != from {
			// Short or foreign packet: not fatal. Tell requests waiting on that tracker,
			// so that a timeout can say it got junk rather than nothing.
			desc := fmt.Sprintf("%d-byte packet", n)
			if ok {
				desc = fmt.Sprintf("%d-byte packet with unknown transaction id %#x", n, tid)
			}
			for _, w := range m.waiters {
				if w.from == from {
					w.junkN++
					w.junk = desc
				}
			}
			m.mu.Unlock()
			m.logger.Debug("ignored UDP tracker packet", "from", from, "what", desc)
			continue
		}
		p := append([]byte(nil), buf[:n]...)
		select {
		case w.pkts <- p:
		default: // a flood of replies to one request; the first ones are enough
		}
		m.mu.Unlock()
	}
}

func (m *udpMux) register(from netip.AddrPort) (uint32, *udpWaiter) {
	w := &udpWaiter{from: from, pkts: make(chan []byte, 4)}
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		tid := binary.BigEndian.Uint32(b[:])
		if _, taken := m.waiters[tid]; !taken {
			m.waiters[tid] = w
			return tid, w
		}
	}
}

func (m *udpMux) unregister(tid uint32) {
	m.mu.Lock()
	delete(m.waiters, tid)
	m.mu.Unlock()
}

func (m *udpMux) noteJunk(w *udpWaiter, desc string) {
	m.mu.Lock()
	w.junkN++
	w.junk = desc
	m.mu.Unlock()
}

func (m *udpMux) junkOf(w *udpWaiter) (int, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return w.junkN, w.junk
}

// roundTrip sends build(tid) to `to`, retransmitting on the BEP 15 schedule, until a
// packet with the transaction id and action `want` decodes, the tracker sends an error
// action, or the attempts run out. Packets with the right transaction id but the wrong
// action or an undecodable body are ignored (and remembered for the error message).
func (m *udpMux) roundTrip(ctx context.Context, cfg Config, to netip.AddrPort, want uint32, build func(tid uint32) []byte, decode func([]byte) error) error {
	tid, w := m.register(to)
	defer m.unregister(tid)
	pkt := build(tid)
	var waited time.Duration
	for n := 0; n <= cfg.UDPRetries; n++ {
		if _, err := m.conn.WriteToUDPAddrPort(pkt, to); err != nil {
			return &reasonError{reason: classify(err), err: fmt.Errorf("send: %w", err)}
		}
		wait := min(cfg.UDPBase<<n, cfg.UDPMaxWait)
		waited += wait
		timer := time.NewTimer(wait)
	recv:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return &reasonError{reason: classify(ctx.Err()), err: ctx.Err()}
			case <-timer.C:
				break recv
			case p := <-w.pkts:
				action, _, _ := udpHeader(p)
				if action == udpActError {
					timer.Stop()
					return withReason(ReasonFailure, "tracker says: %q", decodeUDPError(p))
				}
				if action != want {
					m.noteJunk(w, fmt.Sprintf("reply with action %d, want %d", action, want))
					continue
				}
				if err := decode(p); err != nil {
					m.noteJunk(w, err.Error())
					continue
				}
				timer.Stop()
				return nil
			}
		}
	}
	if n, last := m.junkOf(w); n > 0 {
		return withReason(ReasonBadResponse, "no valid reply in %d attempts over %v; ignored %d bad packets, last: %s", cfg.UDPRetries+1, waited, n, last)
	}
	return withReason(ReasonTimeout, "no reply in %d attempts over %v", cfg.UDPRetries+1, waited)
}

// udpClient talks to UDP trackers over one mux per address family and caches connection
// ids for a minute.
type udpClient struct {
	cfg Config

	mu     sync.Mutex
	muxes  map[string]*udpMux // "udp4", "udp6"
	conns  map[netip.AddrPort]udpConnID
	closed bool
}

type udpConnID struct {
	id uint64
	at time.Time
}

func newUDPClient(cfg Config) *udpClient {
	return &udpClient{cfg: cfg, muxes: map[string]*udpMux{}, conns: map[netip.AddrPort]udpConnID{}}
}

func (c *udpClient) close() {
	c.mu.Lock()
	muxes := c.muxes
	c.muxes = map[string]*udpMux{}
	c.closed = true
	c.mu.Unlock()
	for _, m := range muxes {
		m.close()
	}
}

func (c *udpClient) mux(network string) (*udpMux, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, withReason(ReasonCanceled, "UDP tracker client closed")
	}
	if m := c.muxes[network]; m != nil {
		return m, nil
	}
	m, err := newUDPMux(network, c.cfg.Source, c.cfg.Logger)
	if err != nil {
		return nil, &reasonError{reason: ReasonConnection, err: fmt.Errorf("opening %s socket: %w", network, err)}
	}
	c.muxes[network] = m
	return m, nil
}

// udpTarget reads a udp:// URL's host and port.
func udpTarget(rawURL string) (string, uint16, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "udp" || u.Hostname() == "" || u.Port() == "" {
		return "", 0, withReason(ReasonProtocol, "not a udp://host:port URL")
	}
	port, err := parsePort(u.Port())
	if err != nil {
		return "", 0, withReason(ReasonProtocol, "bad port %q", u.Port())
	}
	return u.Hostname(), port, nil
}

// resolve turns a udp:// URL into the tracker's addresses, one per usable family.
func (c *udpClient) resolve(ctx context.Context, rawURL string) ([]netip.AddrPort, error) {
	host, port, err := udpTarget(rawURL)
	if err != nil {
		return nil, err
	}
	ips, err := trackerAddrs(ctx, c.cfg, host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, len(ips))
	for i, ip := range ips {
		out[i] = netip.AddrPortFrom(ip, port)
	}
	return out, nil
}

// muxFor is the mux of to's family.
func (c *udpClient) muxFor(to netip.AddrPort) (*udpMux, error) {
	if to.Addr().Is4() {
		return c.mux("udp4")
	}
	return c.mux("udp6")
}

func parsePort(s string) (uint16, error) {
	var p int
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(p), nil
}

// connID returns a connection id for to, reusing one younger than a minute.
func (c *udpClient) connID(ctx context.Context, m *udpMux, to netip.AddrPort) (uint64, error) {
	c.mu.Lock()
	ci, ok := c.conns[to]
	c.mu.Unlock()
	if ok && time.Since(ci.at) < udpConnIDMaxAge {
		return ci.id, nil
	}
	var id uint64
	err := m.roundTrip(ctx, c.cfg, to, udpActConnect, encodeUDPConnect, func(p []byte) error {
		var err error
		id, err = decodeUDPConnect(p)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	c.mu.Lock()
	c.conns[to] = udpConnID{id: id, at: time.Now()}
	c.mu.Unlock()
	return id, nil
}

// forget drops a cached connection id after a failure that may be due to it: an error
// reply or silence (opentracker drops requests with a stale id without a word). Our own
// cancellation says nothing about the id.
func (c *udpClient) forget(to netip.AddrPort, err error) {
	if ReasonOf(err) == ReasonCanceled {
		return
	}
	c.mu.Lock()
	delete(c.conns, to)
	c.mu.Unlock()
}

func (c *udpClient) announce(ctx context.Context, rawURL string, r AnnounceRequest) (*AnnounceResponse, error) {
	tos, err := c.resolve(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	port := tos[0].Port()
	ips := make([]netip.Addr, len(tos))
	for i, to := range tos {
		ips[i] = to.Addr()
	}
	urlData := udpURLData(rawURL)
	return announceFamilies(ctx, c.cfg, rawURL, ips, func(ctx context.Context, ip netip.Addr) (*AnnounceResponse, error) {
		return c.announceTo(ctx, netip.AddrPortFrom(ip, port), r, urlData)
	})
}

// announceTo announces to one address; an announce sent over IPv6 returns 18-byte peers.
func (c *udpClient) announceTo(ctx context.Context, to netip.AddrPort, r AnnounceRequest, urlData string) (*AnnounceResponse, error) {
	m, err := c.muxFor(to)
	if err != nil {
		return nil, err
	}
	id, err := c.connID(ctx, m, to)
	if err != nil {
		return nil, err
	}
	var resp *AnnounceResponse
	err = m.roundTrip(ctx, c.cfg, to, udpActAnnounce, func(tid uint32) []byte {
		return encodeUDPAnnounce(id, tid, r, urlData)
	}, func(p []byte) error {
		var err error
		resp, err = decodeUDPAnnounce(p, to.Addr().Is6())
		return err
	})
	if err != nil {
		c.forget(to, err)
		return nil, err
	}
	return resp, nil
}

func (c *udpClient) scrape(ctx context.Context, rawURL string, h metainfo.Hash) (*ScrapeResponse, error) {
	tos, err := c.resolve(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	port := tos[0].Port()
	ips := make([]netip.Addr, len(tos))
	for i, to := range tos {
		ips[i] = to.Addr()
	}
	return scrapeFamilies(ctx, ips, func(ctx context.Context, ip netip.Addr) (*ScrapeResponse, error) {
		return c.scrapeFrom(ctx, netip.AddrPortFrom(ip, port), h)
	})
}

func (c *udpClient) scrapeFrom(ctx context.Context, to netip.AddrPort, h metainfo.Hash) (*ScrapeResponse, error) {
	m, err := c.muxFor(to)
	if err != nil {
		return nil, err
	}
	id, err := c.connID(ctx, m, to)
	if err != nil {
		return nil, err
	}
	var resp *ScrapeResponse
	err = m.roundTrip(ctx, c.cfg, to, udpActScrape, func(tid uint32) []byte {
		return encodeUDPScrape(id, tid, h)
	}, func(p []byte) error {
		var err error
		resp, err = decodeUDPScrape(p)
		return err
	})
	if err != nil {
		c.forget(to, err)
		return nil, err
	}
	return resp, nil
}
