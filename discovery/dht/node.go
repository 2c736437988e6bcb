// Package dht is btda's embedded Mainline DHT node (BEP 5, with BEP 32 for IPv6). It looks
// up the peers of every watched torrent periodically, announces btda's peer port, and turns
// both the peers it finds and the peers that announce to it into discovery.Sightings.
package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	adht "github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	alog "github.com/anacrolix/log"
	atmetainfo "github.com/anacrolix/torrent/metainfo"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
)

// DefaultBootstrap is the production bootstrap list: the public Mainline routers. The package
// never uses it by itself; the caller passes it in Config.Bootstrap (tests never do).
var DefaultBootstrap = slices.Clone(adht.DefaultGlobalBootstrapHostPorts)

// Defaults for the zero fields of Config.
const (
	DefaultPort                 = 17000 // the 2015 tool's pymdht port
	DefaultInterval             = 300 * time.Second
	DefaultLookupTimeout        = 60 * time.Second
	DefaultAnnounceGrace        = 5 * time.Second
	DefaultMaxConcurrentLookups = 8
	DefaultSendRate             = 80 // KRPC packets/s, about libtorrent's 8000 B/s DHT upload limit
	DefaultQueryTimeout         = 2 * time.Second
	// NodesFileName is the conventional name of the node file in btda's storage directory.
	NodesFileName = "dht-nodes.dat"
)

// jitterFraction spreads periodic lookups by ±10 % so that torrents added together drift apart.
const jitterFraction = 0.1

// Errors returned by Lookup; failures are also counted by reason.
var (
	ErrNoNodes = errors.New("no DHT nodes to contact")
	ErrTimeout = errors.New("no DHT node answered")
	ErrClosed  = errors.New("DHT node closed")
)

// Config configures a Node. Zero fields take the defaults above.
type Config struct {
	// Listen is the UDP address of the IPv4 node. Default "0.0.0.0:17000".
	Listen string
	// IPv6 enables a second node on Listen6 (default "[::]:17000").
	IPv6    bool
	Listen6 string
	// Bootstrap lists "host:port" routers contacted when the routing table is empty, after
	// the saved nodes. It is used exactly as given: empty means no bootstrap at all.
	// Production callers pass DefaultBootstrap.
	Bootstrap []string
	// NodesFile keeps good nodes across restarts ("" disables it); see NodesFileName.
	NodesFile string
	// PeerPort is btda's BitTorrent listen port, announced with announce_peer after every
	// lookup. 0 disables announcing.
	PeerPort int
	// Interval between two lookups of one torrent (jittered ±10 %).
	Interval time.Duration
	// LookupTimeout bounds one get_peers traversal.
	LookupTimeout time.Duration
	// AnnounceGrace is how long announce_peer may still run after a traversal hit its
	// deadline.
	AnnounceGrace time.Duration
	// MaxConcurrentLookups bounds the traversals running at once.
	MaxConcurrentLookups int
	// SendRate limits outgoing KRPC packets per second (per address family).
	SendRate float64
	// QueryTimeout is how long one KRPC query waits before a resend or giving up.
	QueryTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPort))
	}
	if c.Listen6 == "" {
		c.Listen6 = net.JoinHostPort("::", strconv.Itoa(DefaultPort))
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.AnnounceGrace == 0 {
		c.AnnounceGrace = DefaultAnnounceGrace
	}
	if c.MaxConcurrentLookups == 0 {
		c.MaxConcurrentLookups = DefaultMaxConcurrentLookups
	}
	if c.SendRate == 0 {
		c.SendRate = DefaultSendRate
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
}

func (c *Config) validate() error {
	for i, hp := range c.Bootstrap {
		if _, _, err := splitHostPort(hp); err != nil {
			return fmt.Errorf("dht: bootstrap node %d %q: %w", i, hp, err)
		}
	}
	switch {
	case c.PeerPort < 0 || c.PeerPort > 65535:
		return fmt.Errorf("dht: peer port %d out of range 0..65535", c.PeerPort)
	case c.Interval < 0:
		return fmt.Errorf("dht: negative interval %v", c.Interval)
	case c.LookupTimeout < 0:
		return fmt.Errorf("dht: negative lookup timeout %v", c.LookupTimeout)
	case c.AnnounceGrace < 0:
		return fmt.Errorf("dht: negative announce grace %v", c.AnnounceGrace)
	case c.MaxConcurrentLookups < 0:
		return fmt.Errorf("dht: negative max concurrent lookups %d", c.MaxConcurrentLookups)
	case c.SendRate < 0:
		return fmt.Errorf("dht: negative send rate %v", c.SendRate)
	case c.QueryTimeout < 0:
		return fmt.Errorf("dht: negative query timeout %v", c.QueryTimeout)
	}
	return nil
}

// splitHostPort checks a "host:port" bootstrap entry; the port must be 1..65535.
func splitHostPort(hp string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	return host, uint16(p), nil
}

// server is one anacrolix server, one per address family.
type server struct {
	family string // "ipv4" or "ipv6", the `family` label
	srv    *adht.Server
}

func (s *server) accepts(a netip.Addr) bool { return a.Is4() == (s.family == "ipv4") }

// watch is one watched torrent: its wire hashes (the ID first; a hybrid's v1 and truncated
// v2 hash) and its lookup loop.
type watch struct {
	hashes []metainfo.Hash
	cancel context.CancelFunc // nil until Run starts the loop
}

// Node is btda's DHT node. Create it with New, start it with Run; Lookup, Add and Remove may
// be called from any goroutine.
type Node struct {
	cfg     Config
	log     *slog.Logger
	out     chan<- discovery.Sighting
	m       *metrics
	reg     prometheus.Registerer
	servers []*server
	saved   []SavedNode // nodes from the node file, contacted before Bootstrap
	sem     chan struct{}

	// ctx ends when the node closes; it bounds every goroutine the node starts.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	watched map[metainfo.Hash]*watch        // by torrent ID
	byHash  map[metainfo.Hash]metainfo.Hash // every watched wire hash → its torrent's ID
	running bool
	closed  bool
	loops   sync.WaitGroup // per-torrent lookup loops and announce deliveries
	maint   sync.WaitGroup // routing table refreshers

	announceSlots chan struct{} // bounds announce deliveries waiting on the out channel

	saveMu sync.Mutex // one node-file writer at a time

	closeOnce sync.Once
	closeErr  error
}

// New opens the node's UDP socket(s), loads the saved nodes and registers the metrics. Peer
// sightings go to out (nil discards them, for one-off Lookup use). The node does no network
// traffic until Run or Lookup.
func New(cfg Config, out chan<- discovery.Sighting, reg prometheus.Registerer, logger *slog.Logger) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:           cfg,
		log:           logger.With("component", "dht"),
		out:           out,
		m:             newMetrics(),
		reg:           reg,
		sem:           make(chan struct{}, cfg.MaxConcurrentLookups),
		ctx:           ctx,
		cancel:        cancel,
		watched:       make(map[metainfo.Hash]*watch),
		byHash:        make(map[metainfo.Hash]metainfo.Hash),
		announceSlots: make(chan struct{}, 256),
	}
	if cfg.NodesFile != "" {
		saved, err := LoadNodes(cfg.NodesFile)
		if err != nil {
			// A damaged file only costs a bootstrap; never refuse to start over it.
			n.log.Warn("ignoring unreadable DHT node file", "err", err)
		}
		n.saved = saved
		n.log.Debug("loaded saved DHT nodes", "count", len(saved), "file", cfg.NodesFile)
	}
	if err := n.addServer("ipv4", "udp4", cfg.Listen); err != nil {
		cancel()
		return nil, err
	}
	if cfg.IPv6 {
		if err := n.addServer("ipv6", "udp6", cfg.Listen6); err != nil {
			n.closeServers()
			cancel()
			return nil, err
		}
	}
	if reg != nil {
		if err := register(reg, append(n.m.collectors(), newTableCollector(n))); err != nil {
			n.closeServers()
			cancel()
			return nil, err
		}
	}
	return n, nil
}

func (n *Node) addServer(family, network, addr string) error {
	conn, err := net.ListenPacket(network, addr)
	if err != nil {
		return fmt.Errorf("dht: listen %s on %s: %w", network, addr, err)
	}
	want := krpc.WantNodes
	if family == "ipv6" {
		want = krpc.WantNodes6
	}
	s := &server{family: family}
	queryTimeout := n.cfg.QueryTimeout
	srv, err := adht.NewServer(&adht.ServerConfig{
		Conn: conn,
		// Node id security (BEP 42) needs our public IP, which btda does not know; anacrolix
		// disables it by default too.
		NoSecurity: true,
		// Never nil: a nil getter would make anacrolix fall back to nothing, but a default
		// config would fall back to the public routers; ours uses only what we were given.
		StartingNodes:    func() ([]adht.Addr, error) { return n.startingNodes(s), nil },
		OnAnnouncePeer:   n.onAnnouncePeer,
		OnQuery:          n.onQuery,
		QueryResendDelay: func() time.Duration { return queryTimeout },
		PeerStore:        newBoundedPeerStore(),
		Logger:           anacrolixLogger(n.log),
		DefaultWant:      []krpc.Want{want},
		SendLimiter:      rate.NewLimiter(rate.Limit(n.cfg.SendRate), max(1, int(n.cfg.SendRate))),
	})
	if err != nil {
		conn.Close()
		return fmt.Errorf("dht: starting %s node: %w", family, err)
	}
	s.srv = srv
	n.servers = append(n.servers, s)
	n.log.Info("DHT node listening", "family", family, "addr", conn.LocalAddr().String())
	return nil
}

// Addr returns the UDP address of the node of the given family ("ipv4" or "ipv6"), or the
// zero AddrPort if that family is not enabled.
func (n *Node) Addr(family string) netip.AddrPort {
	for _, s := range n.servers {
		if s.family == family {
			if ua, ok := s.srv.Addr().(*net.UDPAddr); ok {
				return ua.AddrPort()
			}
		}
	}
	return netip.AddrPort{}
}

// startingNodes is what a traversal starts from when the routing table is empty: the saved
// nodes first, then the configured bootstrap routers (resolved now, so a DNS change is
// picked up). It never consults anything else.
func (n *Node) startingNodes(s *server) []adht.Addr {
	var addrs []adht.Addr
	add := func(ap netip.AddrPort) {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if s.accepts(ap.Addr()) {
			addrs = append(addrs, adht.NewAddr(net.UDPAddrFromAddrPort(ap)))
		}
	}
	for _, sn := range n.saved {
		add(sn.Addr)
	}
	for _, hp := range n.cfg.Bootstrap {
		host, port, err := splitHostPort(hp) // validated in New
		if err != nil {
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			add(netip.AddrPortFrom(ip, port))
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil {
			n.log.Debug("cannot resolve DHT bootstrap node", "node", hp, "err", err)
			continue
		}
		for _, ip := range ips {
			add(netip.AddrPortFrom(ip, port))
		}
	}
	return addrs
}

// Run maintains the routing tables and looks up every watched torrent each Interval until
// ctx ends or Close is called; then it closes the node (saving the good nodes) and returns.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if n.running {
		n.mu.Unlock()
		return errors.New("dht: Run called twice")
	}
	n.running = true
	for id, w := range n.watched {
		n.startLoopLocked(id, w)
	}
	for _, s := range n.servers {
		n.maint.Go(func() { n.maintain(s) })
	}
	n.mu.Unlock()
	n.log.Info("DHT node running", "bootstrap_nodes", len(n.cfg.Bootstrap), "saved_nodes", len(n.saved))
	select {
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
	return n.Close()
}

// Add watches a torrent, known by its ID and, for a hybrid, also by its other wire hash
// (BEP 52: v2-capable clients announce a hybrid under its v1 hash and its truncated v2
// hash, v2-only clients under the latter only): an immediate lookup (once Run runs), then
// one every Interval, each traversing every hash; peers found under any hash, and incoming
// announces for any, are sightings of the torrent under the hash they came with (the
// daemon's registry maps either to the torrent). Adding a watched torrent again only updates its
// hashes (a magnet's metadata may name a second one), for the next lookup.
func (n *Node) Add(id metainfo.Hash, also ...metainfo.Hash) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	hashes := []metainfo.Hash{id}
	for _, h := range also {
		if !h.IsZero() && !slices.Contains(hashes, h) {
			hashes = append(hashes, h)
		}
	}
	w, ok := n.watched[id]
	if !ok {
		w = &watch{}
		n.watched[id] = w
	}
	for _, h := range w.hashes {
		delete(n.byHash, h)
	}
	w.hashes = nil
	for _, h := range hashes {
		if other, taken := n.byHash[h]; taken && other != id {
			continue // another watched torrent's hash stays with it
		}
		n.byHash[h] = id
		w.hashes = append(w.hashes, h)
	}
	n.m.watched.Set(float64(len(n.watched)))
	if !ok && n.running {
		n.startLoopLocked(id, w)
	}
}

// Remove stops watching a torrent (by its ID); a lookup in progress for it is cancelled.
func (n *Node) Remove(id metainfo.Hash) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w, ok := n.watched[id]
	if !ok {
		return
	}
	if w.cancel != nil {
		w.cancel()
	}
	for _, h := range w.hashes {
		delete(n.byHash, h)
	}
	delete(n.watched, id)
	n.m.watched.Set(float64(len(n.watched)))
}

// watchedID returns the ID of the watched torrent h is a wire hash of.
func (n *Node) watchedID(h metainfo.Hash) (metainfo.Hash, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id, ok := n.byHash[h]
	return id, ok
}

// hashesOf returns the wire hashes of the watched torrent id, nil once it is removed.
func (n *Node) hashesOf(id metainfo.Hash) []metainfo.Hash {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w, ok := n.watched[id]; ok {
		return slices.Clone(w.hashes)
	}
	return nil
}

func (n *Node) startLoopLocked(id metainfo.Hash, w *watch) {
	ctx, cancel := context.WithCancel(n.ctx)
	w.cancel = cancel
	n.loops.Go(func() {
		defer cancel()
		n.watchLoop(ctx, id)
	})
}

// watchLoop looks up one torrent at once and then every Interval ± 10 %.
func (n *Node) watchLoop(ctx context.Context, h metainfo.Hash) {
	var delay time.Duration
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		select {
		case n.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		hashes := n.hashesOf(h)
		if len(hashes) == 0 {
			<-n.sem
			return
		}
		peers, err := n.lookup(ctx, hashes, func(th metainfo.Hash, ap netip.AddrPort) { n.emit(ctx, th, ap) })
		<-n.sem
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Debug("DHT lookup failed", "infohash", h.String(), "err", err)
		} else {
			n.log.Debug("DHT lookup done", "infohash", h.String(), "peers", len(peers))
		}
		delay = jitter(n.cfg.Interval)
	}
}

func jitter(d time.Duration) time.Duration {
	f := 1 + jitterFraction*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// emit delivers one sighting, waiting for the reader as long as ctx lives.
func (n *Node) emit(ctx context.Context, h metainfo.Hash, ap netip.AddrPort) {
	if n.out == nil {
		return
	}
	select {
	case n.out <- discovery.Sighting{Torrent: h, Addr: ap, Source: discovery.SourceDHT}:
	case <-ctx.Done():
	}
}

// Lookup runs one get_peers traversal for h (and every hash in also: a hybrid's other wire
// hash) on every address family, bounded by ctx and LookupTimeout, announces PeerPort to
// the closest nodes of each (if set) and returns the distinct peers found. It does not
// emit sightings and does not take one of the MaxConcurrentLookups slots: it is for
// one-off use (magnet metadata, `btda announce --dht`). A lookup in which some node
// answered succeeds even with no peers.
func (n *Node) Lookup(ctx context.Context, h metainfo.Hash, also ...metainfo.Hash) ([]netip.AddrPort, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	n.loops.Add(1) // Close waits for one-off lookups too
	n.mu.Unlock()
	defer n.loops.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	hashes := []metainfo.Hash{h}
	for _, x := range also {
		if !slices.Contains(hashes, x) {
			hashes = append(hashes, x)
		}
	}
	return n.lookup(ctx, hashes, nil)
}

type traversalResult struct {
	tried, responses uint32
	err              error
}

// lookup is one lookup of a torrent: a traversal per wire hash and address family, all at
// once, counted as one lookup; a peer found under several hashes is found once, under the
// hash that found it first (the daemon dials a peer found under a hybrid's other hash with
// that hash).
func (n *Node) lookup(ctx context.Context, hashes []metainfo.Hash, found func(metainfo.Hash, netip.AddrPort)) ([]netip.AddrPort, error) {
	h := hashes[0]
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	start := time.Now()
	n.m.inFlight.Inc()
	defer n.m.inFlight.Dec()
	deadline, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout)
	defer cancel()

	var (
		mu    sync.Mutex
		seen  = make(map[netip.AddrPort]struct{})
		peers []netip.AddrPort
	)
	add := func(th metainfo.Hash, na krpc.NodeAddr) {
		ip, ok := netip.AddrFromSlice(na.IP)
		if !ok || na.Port <= 0 || na.Port > 65535 {
			return
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() || ip.IsMulticast() {
			return
		}
		ap := netip.AddrPortFrom(ip, uint16(na.Port))
		mu.Lock()
		_, dup := seen[ap]
		if !dup {
			seen[ap] = struct{}{}
			peers = append(peers, ap)
		}
		mu.Unlock()
		if dup {
			return
		}
		n.m.peersReceived.Inc()
		if found != nil {
			found(th, ap)
		}
	}

	results := make([]traversalResult, len(n.servers)*len(hashes))
	var wg sync.WaitGroup
	for i, s := range n.servers {
		for j, th := range hashes {
			wg.Go(func() {
				results[i*len(hashes)+j] = n.traverse(ctx, deadline, s, th, func(na krpc.NodeAddr) { add(th, na) })
			})
		}
	}
	wg.Wait()

	if err := ctx.Err(); err != nil {
		// Shutdown or the caller gave up: not a verdict on the DHT, so not counted.
		return peers, err
	}
	var tried, responses uint32
	var errs []error
	for _, r := range results {
		tried += r.tried
		responses += r.responses
		if r.err != nil && !errors.Is(r.err, errNoStartingNodes) {
			errs = append(errs, r.err)
		}
	}
	n.m.lookups.Inc()
	n.m.lookupDuration.Observe(time.Since(start).Seconds())
	switch {
	case responses > 0:
		n.m.lastSuccess.SetToCurrentTime()
		return peers, nil
	case len(errs) > 0:
		n.m.lookupFailures.WithLabelValues(ReasonError).Inc()
		return nil, fmt.Errorf("dht lookup %s: %w", h, errors.Join(errs...))
	case tried == 0:
		n.m.lookupFailures.WithLabelValues(ReasonNoNodes).Inc()
		return nil, fmt.Errorf("dht lookup %s: %w", h, ErrNoNodes)
	default:
		n.m.lookupFailures.WithLabelValues(ReasonTimeout).Inc()
		return nil, fmt.Errorf("dht lookup %s: %d nodes contacted: %w", h, tried, ErrTimeout)
	}
}

var errNoStartingNodes = errors.New("no starting nodes")

// traverse runs one anacrolix announce traversal. When deadline passes it stops traversing
// but lets announce_peer to the closest nodes found so far run for AnnounceGrace; when ctx
// ends it abandons everything. It always waits for anacrolix to finish (the Peers channel
// closes), so no goroutine outlives it.
func (n *Node) traverse(ctx, deadline context.Context, s *server, h metainfo.Hash, add func(krpc.NodeAddr)) traversalResult {
	var opts []adht.AnnounceOpt
	if n.cfg.PeerPort != 0 {
		opts = append(opts, adht.AnnouncePeer(adht.AnnouncePeerOpts{Port: n.cfg.PeerPort}))
	}
	a, err := s.srv.AnnounceTraversal(h, opts...)
	if err != nil {
		// anacrolix's only error here is that there was nothing to start from.
		return traversalResult{err: fmt.Errorf("%s: %w: %v", s.family, errNoStartingNodes, err)}
	}
	defer a.Close()
	deadlineDone, ctxDone := deadline.Done(), ctx.Done()
	var grace <-chan time.Time
	for {
		select {
		case pv, ok := <-a.Peers:
			if !ok {
				st := a.TraversalStats() // safe: the traversal has stopped
				return traversalResult{tried: st.NumAddrsTried, responses: st.NumResponses}
			}
			for _, p := range pv.Peers {
				add(p)
			}
		case <-deadlineDone:
			deadlineDone = nil
			a.StopTraversing()
			t := time.NewTimer(n.cfg.AnnounceGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			grace = nil
			a.Close()
		case <-ctxDone:
			ctxDone, deadlineDone, grace = nil, nil, nil
			a.Close()
		}
	}
}

// refreshInterval spaces routing-table refreshes; retryInterval follows a failed one.
const (
	refreshInterval = 15 * time.Minute
	retryInterval   = time.Minute
)

// maintain refreshes one routing table until the node closes. It replaces anacrolix's
// TableMaintainer, whose queries ignore cancellation and would hold Close up for a whole
// query timeout.
func (n *Node) maintain(s *server) {
	for {
		delay := jitter(refreshInterval)
		if err := n.refresh(n.ctx, s); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.log.Debug("DHT routing table refresh failed", "family", s.family, "err", err)
			delay = jitter(retryInterval)
		} else if err := n.saveNodes(); err != nil {
			// Saved now and then, not only at shutdown, so that a crash loses little.
			n.log.Warn("cannot save DHT nodes", "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresh runs a find_node traversal toward our own id (a BEP 5 bootstrap): every node that
// answers enters the routing table, and nodes near us learn about us.
func (n *Node) refresh(ctx context.Context, s *server) error {
	start, err := s.srv.TraversalStartingNodes()
	if err != nil {
		return err
	}
	id := s.srv.ID()
	want := krpc.WantNodes
	if s.family == "ipv6" {
		want = krpc.WantNodes6
	}
	op := traversal.Start(traversal.OperationInput{
		Target: id,
		K:      16,
		DoQuery: func(qctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
			// qctx ends when the traversal stops, so no query outlives refresh.
			res := s.srv.Query(qctx, adht.NewAddr(addr.UDP()), "find_node", adht.QueryInput{
				MsgArgs: krpc.MsgArgs{Target: id, Want: []krpc.Want{want}},
			})
			return res.TraversalQueryResult(addr)
		},
		NodeFilter: s.srv.TraversalNodeFilter,
	})
	op.AddNodes(start)
	select {
	case <-op.Stalled():
	case <-ctx.Done():
	}
	op.Stop()
	<-op.Stopped()
	if err := ctx.Err(); err != nil {
		return err
	}
	if op.Stats().NumResponses == 0 {
		return fmt.Errorf("none of %d nodes answered", op.Stats().NumAddrsTried)
	}
	return nil
}

// onAnnouncePeer turns a valid incoming announce_peer for a watched torrent into a sighting.
// anacrolix calls it on a goroutine of its own.
func (n *Node) onAnnouncePeer(ih atmetainfo.Hash, ip net.IP, port int, portOk bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !portOk || port <= 0 || port > 65535 || !ok {
		return
	}
	if _, watched := n.watchedID(metainfo.Hash(ih)); !watched {
		return
	}
	n.m.announcesRecv.Inc()
	// Bound the deliveries waiting for a slow reader: a flood of announces must not become a
	// flood of blocked goroutines.
	select {
	case n.announceSlots <- struct{}{}:
	default:
		n.m.announcesDropped.Inc()
		return
	}
	defer func() { <-n.announceSlots }()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.loops.Add(1)
	n.mu.Unlock()
	defer n.loops.Done()
	n.emit(n.ctx, metainfo.Hash(ih), netip.AddrPortFrom(addr.Unmap(), uint16(port)))
}

func (n *Node) onQuery(q *krpc.Msg, _ net.Addr) bool {
	n.m.queriesRecv.WithLabelValues(queryKind(q.Q)).Inc()
	return true
}

// Close stops all lookups, saves the good nodes, closes the sockets and unregisters nothing
// (metrics keep their last values). It is idempotent and safe to call concurrently with Run.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.cancel()
		n.mu.Unlock()
		n.loops.Wait()
		n.maint.Wait()
		n.closeErr = n.saveNodes()
		n.closeServers()
		n.log.Info("DHT node stopped")
	})
	return n.closeErr
}

func (n *Node) closeServers() {
	for _, s := range n.servers {
		s.srv.Close()
	}
}

func (n *Node) saveNodes() error {
	if n.cfg.NodesFile == "" {
		return nil
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	var nodes []SavedNode
	for _, s := range n.servers {
		for _, ni := range s.srv.Nodes() {
			ip, ok := netip.AddrFromSlice(ni.Addr.IP)
			if !ok || ni.Addr.Port <= 0 || ni.Addr.Port > 65535 {
				continue
			}
			nodes = append(nodes, SavedNode{ID: ni.ID, Addr: netip.AddrPortFrom(ip.Unmap(), uint16(ni.Addr.Port))})
		}
	}
	if len(nodes) == 0 {
		// Keep the previous file: an empty table (offline run) must not erase what we knew.
		n.log.Debug("no DHT nodes to save; keeping the node file")
		return nil
	}
	if err := SaveNodes(n.cfg.NodesFile, nodes); err != nil {
		return fmt.Errorf("dht: saving nodes: %w", err)
	}
	n.log.Debug("saved DHT nodes", "count", min(len(nodes), MaxSavedNodes), "file", n.cfg.NodesFile)
	return nil
}

// anacrolixLogger routes anacrolix/dht's own logging into our slog logger at debug level
// (critical as warning): its info/error lines are routine on a public DHT (unreachable nodes,
// failed bootstraps) and would drown btda's own log.
func anacrolixLogger(l *slog.Logger) alog.Logger {
	al := alog.NewLogger("anacrolix-dht")
	al.SetHandlers(slogBridge{l})
	return al.WithFilterLevel(alog.Info)
}

type slogBridge struct{ l *slog.Logger }

func (b slogBridge) Handle(r alog.Record) {
	lvl := slog.LevelDebug
	if !r.Level.LessThan(alog.Critical) {
		lvl = slog.LevelWarn
	}
	b.l.Log(context.Background(), lvl, r.String(), "anacrolix_level", r.Level.LogString())
}

// HashPeers is what a one-off lookup found under one wire hash.
type HashPeers struct {
	Hash  metainfo.Hash
	Peers []netip.AddrPort
	Err   error // the lookup's failure; peers found before it still count
}

// LookupOnce runs one get_peers traversal per hash, all at once, from a temporary node built
// with cfg (never announcing, never saving nodes) and returns what each found, in the order
// of hashes: `btda announce --dht`, which shows a hybrid's two hashes apart. The error is
// the node's set-up failure only.
func LookupOnce(ctx context.Context, cfg Config, hashes []metainfo.Hash, logger *slog.Logger) ([]HashPeers, error) {
	cfg.PeerPort, cfg.NodesFile = 0, ""
	node, err := New(cfg, nil, nil, logger)
	if err != nil {
		return nil, err
	}
	defer node.Close()
	out := make([]HashPeers, len(hashes))
	var wg sync.WaitGroup
	for i, h := range hashes {
		wg.Go(func() {
			peers, err := node.Lookup(ctx, h)
			out[i] = HashPeers{Hash: h, Peers: peers, Err: err}
		})
	}
	wg.Wait()
	return out, nil
}
