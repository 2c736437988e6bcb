package swarmtracker

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets up a Tracker. The zero value is usable: HTTP and UDP on 127.0.0.1, ports picked.
type Config struct {
	// Host is the loopback address to bind (default 127.0.0.1; any 127.x.y.z or ::1).
	Host netip.Addr
	// HTTPPort and UDPPort are the ports to bind; 0 picks a free one.
	HTTPPort, UDPPort uint16
	// IPv6 also serves HTTP and UDP on [::1] (ports picked) when Host is IPv4.
	IPv6 bool
	// DisableHTTP and DisableUDP leave one protocol out.
	DisableHTTP, DisableUDP bool

	// DropBadConnectionID drops UDP requests with an unknown or expired connection ID without a
	// reply (as opentracker does) instead of answering with an error packet (as others do).
	DropBadConnectionID bool

	// Seed makes the peer subsets (and random fault bytes) reproducible.
	Seed uint64
	// Interval and MinInterval are sent in announce replies (default 30 min; MinInterval is
	// sent only when non-zero). Whole seconds.
	Interval, MinInterval time.Duration
	// TrackerID is sent as "tracker id" when non-empty (HTTP).
	TrackerID string
	// WarningMessage is sent as "warning message" when non-empty (HTTP).
	WarningMessage string
	// FailureRetryIn adds BEP 31 "retry in" to failure replies: minutes when > 0, "never"
	// when < 0, nothing when 0.
	FailureRetryIn int
	// DefaultNumWant is used when the client sends no numwant or -1 (default 50); MaxNumWant
	// caps any numwant (default 200).
	DefaultNumWant, MaxNumWant int

	// SlowHold bounds how long FaultSlow holds a reply (default 20 s).
	SlowHold time.Duration
	// HugeBodySize is the body size under FaultHugeBody (default 8 MiB).
	HugeBodySize int
	// MaxRecords caps each record list (announces, scrapes, rejections); beyond it requests
	// are still served and counted, not recorded (default 100000).
	MaxRecords int
	// Now is the clock for connection-ID expiry and records (default time.Now).
	Now func() time.Time
	// Logger receives debug lines for each request (default: discard).
	Logger *slog.Logger
}

// ConnectionIDLifetime is how long the UDP tracker accepts a connection ID (BEP 15: clients
// may use one for a minute, servers accept it for two).
const ConnectionIDLifetime = 2 * time.Minute

// Protocol says over which protocol a request came.
type Protocol string

// The protocols.
const (
	HTTP Protocol = "http"
	UDP  Protocol = "udp"
)

// Announce is the record of one announce received and parsed.
type Announce struct {
	AnnounceRequest
	At       time.Time
	Protocol Protocol
	Remote   netip.AddrPort // source of the request
	Fault    FaultMode      // fault mode the reply was subject to
	// Path is the HTTP URL path (a passkey tracker's path must survive), or the UDP URLData.
	Path      string
	UserAgent string // HTTP User-Agent header
}

// Scrape is the record of one scrape received and parsed.
type Scrape struct {
	At         time.Time
	Protocol   Protocol
	Remote     netip.AddrPort
	InfoHashes [][20]byte
	Fault      FaultMode
}

// Rejection is the record of one request the tracker refused as malformed (or, for UDP, with
// an unknown or expired connection ID).
type Rejection struct {
	At       time.Time
	Protocol Protocol
	Remote   netip.AddrPort
	Err      string
}

// TorrentStats counts requests per torrent.
type TorrentStats struct {
	HTTPAnnounces, UDPAnnounces int
	HTTPScrapes, UDPScrapes     int
	// Peers is the number of peers the tracker knows (set plus announced).
	Peers int
}

// Stats is a snapshot of the tracker's counters.
type Stats struct {
	Torrents     map[[20]byte]TorrentStats
	UDPConnects  int
	Rejected     int
	NotRecorded  int // requests beyond Config.MaxRecords
	HTTPRequests int // every HTTP request, whatever its path
	UDPPackets   int // every UDP packet received
}

type peerEntry struct {
	addr netip.AddrPort
	id   [20]byte
	left int64
}

type torrent struct {
	static    []peerEntry
	announced []peerEntry
	index     map[netip.AddrPort]int // into announced
	completed int
	scrape    *[3]int // complete, incomplete, downloaded
	stats     TorrentStats
}

type connEntry struct {
	ip     netip.Addr
	issued time.Time
}

// Tracker is a running HTTP + UDP tracker. All methods are safe for concurrent use.
type Tracker struct {
	cfg Config
	log *slog.Logger

	httpSrv  *http.Server
	httpLns  []net.Listener
	httpURL  string
	httpURL6 string
	udpConns []*net.UDPConn
	udpURL   string
	udpURL6  string

	fault        atomic.Int32
	connectFault atomic.Int32

	closing   chan struct{}
	closeOnce sync.Once
	stopCtx   func() bool
	wg        sync.WaitGroup

	mu        sync.Mutex
	rng       *rand.Rand
	torrents  map[[20]byte]*torrent
	conns     map[uint64]connEntry
	announces []Announce
	scrapes   []Scrape
	rejected  []Rejection
	stats     Stats
}

// Start binds the listeners and serves until Close (or until ctx ends, which closes it too).
func Start(ctx context.Context, cfg Config) (*Tracker, error) {
	if !cfg.Host.IsValid() {
		cfg.Host = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	cfg.Host = cfg.Host.Unmap()
	if !cfg.Host.IsLoopback() {
		return nil, fmt.Errorf("swarmtracker: host %s is not a loopback address", cfg.Host)
	}
	if cfg.DisableHTTP && cfg.DisableUDP {
		return nil, errors.New("swarmtracker: both HTTP and UDP disabled")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Minute
	}
	if cfg.DefaultNumWant <= 0 {
		cfg.DefaultNumWant = 50
	}
	if cfg.MaxNumWant <= 0 {
		cfg.MaxNumWant = 200
	}
	if cfg.SlowHold <= 0 {
		cfg.SlowHold = 20 * time.Second
	}
	if cfg.HugeBodySize <= 0 {
		cfg.HugeBodySize = 8 << 20
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{
		cfg:      cfg,
		log:      logger.With("component", "swarmtracker"),
		closing:  make(chan struct{}),
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		torrents: make(map[[20]byte]*torrent),
		conns:    make(map[uint64]connEntry),
	}
	t.stats.Torrents = make(map[[20]byte]TorrentStats)
	if err := t.listen(ctx); err != nil {
		t.Close()
		return nil, err
	}
	t.mu.Lock()
	t.stopCtx = context.AfterFunc(ctx, t.Close)
	t.mu.Unlock()
	return t, nil
}

func (t *Tracker) listen(ctx context.Context) error {
	hosts := []netip.Addr{t.cfg.Host}
	if t.cfg.IPv6 && t.cfg.Host.Is4() {
		hosts = append(hosts, netip.IPv6Loopback())
	}
	var lc net.ListenConfig
	if !t.cfg.DisableHTTP {
		t.httpSrv = &http.Server{
			Handler:           http.HandlerFunc(t.serveHTTP),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
		}
		for i, h := range hosts {
			port := t.cfg.HTTPPort
			if i > 0 {
				port = 0
			}
			ln, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(h, port).String())
			if err != nil {
				return fmt.Errorf("swarmtracker: http listen on %s: %w", h, err)
			}
			t.httpLns = append(t.httpLns, ln)
			url := "http://" + ln.Addr().String() + "/announce"
			if i == 0 {
				t.httpURL = url
			} else {
				t.httpURL6 = url
			}
			t.wg.Go(func() {
				if err := t.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					t.log.Warn("http serve ended", "err", err)
				}
			})
		}
	}
	if !t.cfg.DisableUDP {
		for i, h := range hosts {
			port := t.cfg.UDPPort
			if i > 0 {
				port = 0
			}
			pc, err := lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(h, port).String())
			if err != nil {
				return fmt.Errorf("swarmtracker: udp listen on %s: %w", h, err)
			}
			conn := pc.(*net.UDPConn)
			t.udpConns = append(t.udpConns, conn)
			url := "udp://" + conn.LocalAddr().String() + "/announce"
			if i == 0 {
				t.udpURL = url
			} else {
				t.udpURL6 = url
			}
			t.wg.Go(func() { t.serveUDP(conn, h.Is6()) })
		}
	}
	return nil
}

// AnnounceURL is the HTTP announce URL on Config.Host ("" when HTTP is disabled).
func (t *Tracker) AnnounceURL() string { return t.httpURL }

// AnnounceURL6 is the HTTP announce URL on [::1] ("" unless Config.IPv6).
func (t *Tracker) AnnounceURL6() string { return t.httpURL6 }

// ScrapeURL is the HTTP scrape URL matching AnnounceURL (BEP 48 convention).
func (t *Tracker) ScrapeURL() string {
	if t.httpURL == "" {
		return ""
	}
	return t.httpURL[:len(t.httpURL)-len("announce")] + "scrape"
}

// UDPAnnounceURL is the udp:// announce URL on Config.Host ("" when UDP is disabled).
func (t *Tracker) UDPAnnounceURL() string { return t.udpURL }

// UDPAnnounceURL6 is the udp:// announce URL on [::1] ("" unless Config.IPv6).
func (t *Tracker) UDPAnnounceURL6() string { return t.udpURL6 }

// Close stops both servers, releases held replies and waits for every goroutine. Idempotent.
func (t *Tracker) Close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		if t.stopCtx != nil {
			t.stopCtx()
		}
		t.mu.Unlock()
		close(t.closing)
		if t.httpSrv != nil {
			// Shutdown waits for running handlers; they all watch t.closing, so it is quick.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := t.httpSrv.Shutdown(ctx); err != nil {
				t.httpSrv.Close()
			}
			cancel()
		}
		// Shutdown misses a listener whose Serve had not started yet (Start failing half-way).
		for _, ln := range t.httpLns {
			ln.Close()
		}
		for _, c := range t.udpConns {
			c.Close()
		}
		t.wg.Wait()
	})
}

// SetFault switches the fault mode of announce and scrape replies (both protocols).
func (t *Tracker) SetFault(m FaultMode) { t.fault.Store(int32(m)) }

// SetConnectFault switches the fault mode of UDP connect replies only, so that connect and
// announce failures can be tested apart.
func (t *Tracker) SetConnectFault(m FaultMode) { t.connectFault.Store(int32(m)) }

// Fault returns the current announce/scrape fault mode.
func (t *Tracker) Fault() FaultMode { return FaultMode(t.fault.Load()) }

func (t *Tracker) torrent(ih [20]byte) *torrent {
	tor := t.torrents[ih]
	if tor == nil {
		tor = &torrent{index: make(map[netip.AddrPort]int)}
		t.torrents[ih] = tor
	}
	return tor
}

// syntheticPeerID gives a peer handed in by SetPeers a stable peer id for dictionary replies.
func syntheticPeerID(a netip.AddrPort) (id [20]byte) {
	sum := sha1.Sum([]byte(a.String()))
	copy(id[:], "-SW0001-")
	copy(id[8:], sum[:12])
	return id
}

// SetPeers replaces the swarm's peers for a torrent (peers that announced stay). Addresses are
// unmapped; duplicates are dropped.
func (t *Tracker) SetPeers(infoHash [20]byte, peers []netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tor := t.torrent(infoHash)
	tor.static = tor.static[:0]
	seen := make(map[netip.AddrPort]bool, len(peers))
	for _, p := range peers {
		p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
		if seen[p] {
			continue
		}
		seen[p] = true
		tor.static = append(tor.static, peerEntry{addr: p, id: syntheticPeerID(p), left: 1})
	}
}

// SetScrape fixes the scrape counts (and the complete/incomplete of announce replies) of a
// torrent. Without it they are derived: complete = announced peers with left 0, incomplete =
// SetPeers peers plus announced peers with left > 0, downloaded = completed events received.
func (t *Tracker) SetScrape(infoHash [20]byte, complete, incomplete, downloaded int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.torrent(infoHash).scrape = &[3]int{complete, incomplete, downloaded}
}

// Peers returns every peer the tracker would hand out for a torrent: SetPeers peers, then
// announced ones, in a stable order.
func (t *Tracker) Peers(infoHash [20]byte) []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	tor := t.torrents[infoHash]
	if tor == nil {
		return nil
	}
	var out []netip.AddrPort
	for _, p := range tor.static {
		out = append(out, p.addr)
	}
	for _, p := range tor.announced {
		out = append(out, p.addr)
	}
	return out
}

// Announces returns a copy of every announce recorded, in arrival order.
func (t *Tracker) Announces() []Announce {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.announces)
}

// AnnouncesFor returns the recorded announces of one torrent, in arrival order.
func (t *Tracker) AnnouncesFor(infoHash [20]byte) []Announce {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Announce
	for _, a := range t.announces {
		if a.InfoHash == infoHash {
			out = append(out, a)
		}
	}
	return out
}

// Scrapes returns a copy of every scrape recorded, in arrival order.
func (t *Tracker) Scrapes() []Scrape {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.scrapes)
}

// Rejections returns a copy of every rejected request, in arrival order.
func (t *Tracker) Rejections() []Rejection {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.rejected)
}

// ClearRecords forgets the recorded announces, scrapes and rejections (not the swarm, not
// the counters), so a test can look at one phase at a time.
func (t *Tracker) ClearRecords() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.announces, t.scrapes, t.rejected = nil, nil, nil
}

// Stats returns a snapshot of the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Torrents = make(map[[20]byte]TorrentStats, len(t.torrents))
	for ih, tor := range t.torrents {
		ts := tor.stats
		ts.Peers = len(tor.static) + len(tor.announced)
		s.Torrents[ih] = ts
	}
	return s
}

func (t *Tracker) reject(proto Protocol, remote netip.AddrPort, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats.Rejected++
	if len(t.rejected) >= t.cfg.MaxRecords {
		t.stats.NotRecorded++
		return
	}
	t.rejected = append(t.rejected, Rejection{At: t.cfg.Now(), Protocol: proto, Remote: remote, Err: err.Error()})
	t.log.Debug("rejected request", "proto", proto, "remote", remote, "err", err)
}

// announceReply is what both protocols encode.
type announceReply struct {
	complete, incomplete int
	peers                []peerEntry
}

func (tor *torrent) counts() (complete, incomplete, downloaded int) {
	if tor.scrape != nil {
		return tor.scrape[0], tor.scrape[1], tor.scrape[2]
	}
	incomplete = len(tor.static)
	for _, p := range tor.announced {
		if p.left == 0 {
			complete++
		} else {
			incomplete++
		}
	}
	return complete, incomplete, tor.completed
}

// announce records req, updates the swarm (only when the reply is a real answer) and picks the
// peers to hand out. keep filters the address families the reply can carry.
func (t *Tracker) announce(rec Announce, keep func(netip.Addr) bool) announceReply {
	req, proto, remote, fault := rec.AnnounceRequest, rec.Protocol, rec.Remote, rec.Fault
	t.mu.Lock()
	defer t.mu.Unlock()
	rec.At = t.cfg.Now()
	tor := t.torrent(req.InfoHash)
	if proto == HTTP {
		tor.stats.HTTPAnnounces++
	} else {
		tor.stats.UDPAnnounces++
	}
	if len(t.announces) < t.cfg.MaxRecords {
		t.announces = append(t.announces, rec)
	} else {
		t.stats.NotRecorded++
	}
	self := netip.AddrPortFrom(remote.Addr().Unmap(), req.Port)
	if fault == FaultNone || fault == FaultSlow {
		tor.update(self, req)
	}
	want := req.NumWant
	if want < 0 {
		want = t.cfg.DefaultNumWant
	}
	want = min(want, t.cfg.MaxNumWant)
	var r announceReply
	r.complete, r.incomplete, _ = tor.counts()
	r.peers = t.pick(tor, self, want, keep)
	return r
}

// pick draws up to want peers uniformly without replacement, skipping the requester and the
// families keep refuses. It walks a lazily shuffled index space (sparse Fisher-Yates), so the
// cost grows with want, not with the swarm size; the draw is reproducible from Config.Seed.
// Caller holds t.mu.
func (t *Tracker) pick(tor *torrent, self netip.AddrPort, want int, keep func(netip.Addr) bool) []peerEntry {
	total := len(tor.static) + len(tor.announced)
	at := func(i int) peerEntry {
		if i < len(tor.static) {
			return tor.static[i]
		}
		return tor.announced[i-len(tor.static)]
	}
	moved := make(map[int]int, min(want, total))
	slot := func(i int) int {
		if v, ok := moved[i]; ok {
			return v
		}
		return i
	}
	out := make([]peerEntry, 0, min(want, total))
	for i := 0; i < total && len(out) < want; i++ {
		j := i + t.rng.IntN(total-i)
		vi, vj := slot(i), slot(j)
		moved[j] = vi // slot i is never read again
		p := at(vj)
		if p.addr == self || !keep(p.addr.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}
func (tor *torrent) update(self netip.AddrPort, req AnnounceRequest) {
	i, ok := tor.index[self]
	switch {
	case req.Event == "stopped":
		if ok {
			last := len(tor.announced) - 1
			tor.announced[i] = tor.announced[last]
			tor.index[tor.announced[i].addr] = i
			tor.announced = tor.announced[:last]
			delete(tor.index, self)
		}
		return
	case ok:
		tor.announced[i].id = req.PeerID
		tor.announced[i].left = req.Left
	default:
		tor.index[self] = len(tor.announced)
		tor.announced = append(tor.announced, peerEntry{addr: self, id: req.PeerID, left: req.Left})
	}
	if req.Event == "completed" {
		tor.completed++
	}
}

// scrape records the request and returns complete, incomplete, downloaded per hash. No hash
// means every torrent the tracker knows.
func (t *Tracker) scrape(hashes [][20]byte, proto Protocol, remote netip.AddrPort, fault FaultMode) ([][20]byte, [][3]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.scrapes) < t.cfg.MaxRecords {
		t.scrapes = append(t.scrapes, Scrape{At: t.cfg.Now(), Protocol: proto, Remote: remote, InfoHashes: slices.Clone(hashes), Fault: fault})
	} else {
		t.stats.NotRecorded++
	}
	if len(hashes) == 0 {
		for ih := range t.torrents {
			hashes = append(hashes, ih)
		}
		slices.SortFunc(hashes, func(a, b [20]byte) int { return slices.Compare(a[:], b[:]) })
	}
	counts := make([][3]int, len(hashes))
	for i, ih := range hashes {
		tor := t.torrent(ih)
		if proto == HTTP {
			tor.stats.HTTPScrapes++
		} else {
			tor.stats.UDPScrapes++
		}
		c, inc, d := tor.counts()
		counts[i] = [3]int{c, inc, d}
	}
	return hashes, counts
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func itoa(n int) string { return strconv.Itoa(n) }
