// Package swarmtest runs a synthetic BitTorrent swarm on loopback whose
// every observable fact is known in advance: generated torrents, peers that
// speak the real peer wire protocol with scripted progress curves, a GeoIP
// world mapping 127.A.0.0/16 to countries, and a ground-truth record that
// btda's numbers are compared with.
//
// The peer side is an independent implementation of the wire protocol: it
// must not import btda's probe packages, since it exists to check them.
package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	utp "github.com/anacrolix/go-libutp"

	"github.com/btda/btda/internal/swarmtest/swarmdht"
	"github.com/btda/btda/internal/swarmtest/swarmtracker"
)

// Listen modes.
const (
	// ListenAuto picks ListenPerAddress when the peers fit in
	// PerAddressLimit sockets, otherwise ListenShared.
	ListenAuto = "auto"
	// ListenPerAddress binds one socket per peer on its own 127.A.B.C.
	ListenPerAddress = "per-address"
	// ListenShared binds SharedPorts wildcard sockets and tells peers apart
	// by the connection's local address. Allowed only when the network
	// namespace has no interface but loopback (e.g. under `unshare -n`),
	// so that the wildcard still only reaches loopback.
	ListenShared = "shared"
)

// Config describes a swarm. Zero values take the defaults in withDefaults.
type Config struct {
	Seed     uint64 `yaml:"seed"`
	Torrents int    `yaml:"torrents"`
	Peers    int    `yaml:"peers"`
	// Versions weights v1, v2 and hybrid torrents.
	Versions map[Version]float64 `yaml:"versions"`
	// Mix weights the profiles.
	Mix       map[Profile]float64 `yaml:"mix"`
	Countries []Country           `yaml:"countries"`
	// Duration is how long the swarm is meant to run; it shapes the curves
	// (completion times spread over 0.3–3 × Duration) and is the default
	// truth window.
	Duration  time.Duration `yaml:"duration"`
	Threshold float64       `yaml:"threshold"`
	// DialOut, if set, is btda's loopback listen address; DialOutFraction of
	// the talking peers connect to it, and again Redial after each session.
	DialOut         string        `yaml:"dialout"`
	DialOutFraction float64       `yaml:"dialout_fraction"`
	Redial          time.Duration `yaml:"redial"`
	// DialOut6 is btda's [::1] listen address, which IPv6 peers dial (they dial nothing
	// without it).
	DialOut6 string `yaml:"dialout6"`
	// Reach gives shares of the peers reach options: MSE required, uTP only, IPv6.
	Reach ReachConfig `yaml:"reach"`
	// Dir, if set, receives torrents/, magnets.txt and the GeoIP databases.
	Dir string `yaml:"dir"`
	// IdleTimeout and KeepAlive override every profile's values (tests).
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	KeepAlive        time.Duration `yaml:"keepalive"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	WriteTimeout     time.Duration `yaml:"write_timeout"`
	// MaxConns bounds open peer connections (accepted plus dialled); beyond
	// it, new connections are closed at once like a full client.
	MaxConns        int    `yaml:"max_conns"`
	ListenMode      string `yaml:"listen_mode"`
	PerAddressLimit int    `yaml:"per_address_limit"`
	SharedPorts     int    `yaml:"shared_ports"`
	// Trackers are extra announce URLs written into the torrents and
	// magnets (the swarm's own tracker, if enabled, comes first).
	Trackers []string `yaml:"trackers"`
	// Tracker starts a loopback HTTP+UDP tracker (swarmtracker) that knows
	// every peer; DHT starts a loopback DHT cluster (swarmdht) holding them.
	Tracker TrackerConfig `yaml:"tracker"`
	DHT     DHTConfig     `yaml:"dht"`
	// Clock defaults to the wall clock; tests inject a ManualClock.
	Clock Clock `yaml:"-"`
	// CurveFunc, if set, may replace a peer's drawn curve (tests that need
	// exact scenarios); it is called once per peer during Start.
	CurveFunc func(p *Peer) (Curve, bool) `yaml:"-"`
	// PeerFunc, if set, is called once per peer during Start after its curve, DialOut and
	// reach options are drawn; it may change DialOut, DialFrom, FixedPeerID, Unlisted,
	// HidePortFor, RequireMSE, UTPOnly, IPv6 and the curve. (IPv6 peers need Tracker.IPv6
	// for the UDP tracker to hand them out; a non-zero Reach.IPv6 sets it.)
	PeerFunc func(p *Peer) `yaml:"-"`
}

// TrackerConfig configures the swarm's tracker.
type TrackerConfig struct {
	Enabled  bool          `yaml:"enabled"`
	HTTPPort uint16        `yaml:"http_port"` // 0: picked
	UDPPort  uint16        `yaml:"udp_port"`  // 0: picked
	Interval time.Duration `yaml:"interval"`  // announce interval sent to clients (default 30 min)
	// IPv6 also serves the tracker on [::1] and writes its udp:// URL there into the
	// torrents: over UDP a tracker hands out peers of the family asked on (BEP 15).
	IPv6 bool `yaml:"ipv6"`
}

// DHTConfig configures the swarm's DHT cluster.
type DHTConfig struct {
	Nodes int `yaml:"nodes"` // 0: no DHT
}

func (c Config) withDefaults() Config {
	if c.Torrents == 0 {
		c.Torrents = 1
	}
	if len(c.Versions) == 0 {
		c.Versions = map[Version]float64{V1: 60, V2: 15, Hybrid: 25}
	}
	if len(c.Mix) == 0 {
		c.Mix = DefaultMix()
	}
	if len(c.Countries) == 0 {
		c.Countries = DefaultCountries()
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Threshold == 0 {
		c.Threshold = 0.98
	}
	if c.DialOut != "" && c.DialOutFraction == 0 {
		c.DialOutFraction = 0.1
	}
	if c.Redial == 0 {
		c.Redial = 30 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10000
	}
	if c.ListenMode == "" {
		c.ListenMode = ListenAuto
	}
	if c.PerAddressLimit == 0 {
		c.PerAddressLimit = 2000
	}
	if c.SharedPorts == 0 {
		c.SharedPorts = 16
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Reach.IPv6 > 0 {
		c.Tracker.IPv6 = true
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Torrents < 1 || c.Torrents > 10000:
		return fmt.Errorf("torrents: %d outside 1..10000", c.Torrents)
	case c.Peers < 0 || c.Peers > 1_000_000:
		return fmt.Errorf("peers: %d outside 0..1000000", c.Peers)
	case c.Duration < 0:
		return fmt.Errorf("duration: negative (%s)", c.Duration)
	case c.Threshold <= 0 || c.Threshold > 1:
		return fmt.Errorf("threshold: %v outside (0, 1]", c.Threshold)
	case c.DialOutFraction < 0 || c.DialOutFraction > 1:
		return fmt.Errorf("dialout_fraction: %v outside [0, 1]", c.DialOutFraction)
	case c.MaxConns < 1:
		return fmt.Errorf("max_conns: %d must be positive", c.MaxConns)
	case c.SharedPorts < 1 || c.SharedPorts > 1000:
		return fmt.Errorf("shared_ports: %d outside 1..1000", c.SharedPorts)
	}
	for p := range c.Mix {
		if !p.Valid() {
			return fmt.Errorf("mix: unknown profile %q (known: %v)", p, AllProfiles)
		}
	}
	for v := range c.Versions {
		if v != V1 && v != V2 && v != Hybrid {
			return fmt.Errorf("versions: unknown version %q (known: v1, v2, hybrid)", v)
		}
	}
	switch c.ListenMode {
	case ListenAuto, ListenPerAddress, ListenShared:
	default:
		return fmt.Errorf("listen_mode: %q is not one of auto, per-address, shared", c.ListenMode)
	}
	if c.DialOut != "" {
		ap, err := netip.ParseAddrPort(c.DialOut)
		if err != nil {
			return fmt.Errorf("dialout: %q is not an IP:port: %w", c.DialOut, err)
		}
		if !ap.Addr().IsLoopback() {
			return fmt.Errorf("dialout: %s is not a loopback address; the swarm only talks to loopback", ap)
		}
	}
	if c.DialOut6 != "" {
		ap, err := netip.ParseAddrPort(c.DialOut6)
		if err != nil {
			return fmt.Errorf("dialout6: %q is not an [IPv6]:port: %w", c.DialOut6, err)
		}
		if !ap.Addr().Is6() || !ap.Addr().IsLoopback() {
			return fmt.Errorf("dialout6: %s is not the IPv6 loopback address; the swarm only talks to loopback", ap)
		}
	}
	if err := c.Reach.validate(c.Countries); err != nil {
		return err
	}
	if c.DHT.Nodes < 0 || c.DHT.Nodes > swarmdht.MaxNodes {
		return fmt.Errorf("dht.nodes: %d outside 0..%d", c.DHT.Nodes, swarmdht.MaxNodes)
	}
	return validateCountries(c.Countries)
}

// Stats counts what the swarm did (for logs and benchmarks).
type Stats struct {
	Accepted, Rejected, Sessions, Handshakes, BadHandshakes int64
	Updates, DialOuts, DialFailures                         int64
	// Encrypted counts MSE handshakes completed by RequireMSE peers, PlaintextRefused the
	// plaintext handshakes they closed, UTPSessions the sessions of UTPOnly peers.
	Encrypted, PlaintextRefused, UTPSessions int64
}

type stats struct {
	accepted, rejected, sessions, handshakes, badHandshakes atomic.Int64
	updates, dialOuts, dialFailures                         atomic.Int64
	encrypted, plaintextRefused, utpSessions                atomic.Int64
}

// Swarm is a running synthetic swarm.
type Swarm struct {
	cfg      Config
	log      *slog.Logger
	clock    Clock
	start    time.Time
	torrents []*Torrent
	peers    []*Peer
	byTor    [][]*Peer
	mode     string
	cityDB   string
	asnDB    string

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	listeners []net.Listener
	conns     chan struct{} // semaphore of open connections
	stats     stats
	closeOnce sync.Once
	tracker   *swarmtracker.Tracker
	dht       *swarmdht.Cluster
	announce  []string
}

// Start builds the swarm described by cfg and starts its peers. The swarm's
// time 0 is the clock's time when Start returns its peers to service.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Swarm, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("swarmtest: config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Swarm{cfg: cfg, log: logger.With("component", "swarmtest"), clock: cfg.Clock,
		conns: make(chan struct{}, cfg.MaxConns)}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	fail := func(err error) (*Swarm, error) {
		s.Close()
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	if cfg.Tracker.Enabled {
		// The tracker comes first: its URLs go into the torrent files.
		tr, err := swarmtracker.Start(s.ctx, swarmtracker.Config{Seed: cfg.Seed, HTTPPort: cfg.Tracker.HTTPPort,
			UDPPort: cfg.Tracker.UDPPort, Interval: cfg.Tracker.Interval, IPv6: cfg.Tracker.IPv6, Logger: s.log})
		if err != nil {
			return fail(err)
		}
		s.tracker = tr
		s.announce = append(s.announce, tr.AnnounceURL(), tr.UDPAnnounceURL())
		if cfg.Tracker.IPv6 {
			// HTTP hands out peers6 on either family; UDP only the family asked on.
			s.announce = append(s.announce, tr.UDPAnnounceURL6())
		}
	}
	s.announce = append(s.announce, cfg.Trackers...)
	if err := s.build(); err != nil {
		return fail(err)
	}
	if cfg.Dir != "" {
		if err := s.writeFiles(cfg.Dir); err != nil {
			return fail(err)
		}
	}
	if err := s.listen(); err != nil {
		return fail(err)
	}
	if cfg.DHT.Nodes > 0 {
		bctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		d, err := swarmdht.Start(bctx, cfg.DHT.Nodes, s.log)
		cancel()
		if err != nil {
			return fail(err)
		}
		s.dht = d
	}
	s.publish()
	s.start = s.clock.Now()
	for _, l := range s.listeners {
		s.wg.Add(1)
		go s.acceptLoop(l)
	}
	if cfg.DialOut != "" {
		for _, p := range s.peers {
			if p.DialOut {
				s.wg.Add(1)
				go s.dialLoop(p)
			}
		}
	}
	// The caller's ctx ends the swarm too.
	stop := context.AfterFunc(ctx, func() { s.Close() })
	go func() { <-s.ctx.Done(); stop() }()
	s.log.Info("swarm started", "torrents", len(s.torrents), "peers", len(s.peers),
		"listen_mode", s.mode, "listeners", len(s.listeners))
	return s, nil
}

// build generates torrents and peers deterministically from the seed.
func (s *Swarm) build() error {
	cfg := s.cfg
	r := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	vkeys := []Version{V1, V2, Hybrid}
	vcount, err := apportion(cfg.Torrents, vkeys, func(v Version) float64 { return cfg.Versions[v] })
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	var versions []Version
	for _, v := range vkeys {
		for i := 0; i < vcount[v]; i++ {
			versions = append(versions, v)
		}
	}
	r.Shuffle(len(versions), func(i, j int) { versions[i], versions[j] = versions[j], versions[i] })
	for i, v := range versions {
		t, err := GenerateTorrent(rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)), i, v, s.announce)
		if err != nil {
			return err
		}
		s.torrents = append(s.torrents, t)
	}
	if cfg.Peers == 0 {
		s.byTor = make([][]*Peer, len(s.torrents))
		return nil
	}
	// Popularity falls off like 1/(rank+1), as in real swarms.
	tidx := make([]int, len(s.torrents))
	for i := range tidx {
		tidx[i] = i
	}
	tcount, err := apportion(cfg.Peers, tidx, func(i int) float64 { return 1 / float64(i+1) })
	if err != nil {
		return err
	}
	pcount, err := apportion(cfg.Peers, AllProfiles, func(p Profile) float64 { return cfg.Mix[p] })
	if err != nil {
		return fmt.Errorf("mix: %w", err)
	}
	ccount, err := apportion(cfg.Peers, cfg.Countries, func(c Country) float64 { return c.Weight })
	if err != nil {
		return fmt.Errorf("countries: %w", err)
	}
	var tlist []int
	for _, i := range tidx {
		for k := 0; k < tcount[i]; k++ {
			tlist = append(tlist, i)
		}
	}
	var plist []Profile
	for _, p := range AllProfiles {
		for k := 0; k < pcount[p]; k++ {
			plist = append(plist, p)
		}
	}
	var clist []int
	for i, c := range cfg.Countries {
		for k := 0; k < ccount[c]; k++ {
			clist = append(clist, i)
		}
	}
	r.Shuffle(len(plist), func(i, j int) { plist[i], plist[j] = plist[j], plist[i] })
	r.Shuffle(len(clist), func(i, j int) { clist[i], clist[j] = clist[j], clist[i] })
	reach := drawReach(cfg.Seed, cfg.Reach, plist)
	used := make([]int, len(cfg.Countries))
	s.byTor = make([][]*Peer, len(s.torrents))
	for i := 0; i < cfg.Peers; i++ {
		t := s.torrents[tlist[i]]
		c := cfg.Countries[clist[i]]
		addr, half, err := countryAddr(c, used[clist[i]])
		if err != nil {
			return err
		}
		used[clist[i]]++
		p := &Peer{Index: i, Torrent: t, Profile: plist[i], Country: c.ISO, Continent: c.Continent,
			City: c.Cities[half], ASN: c.ASN[half], ASOrg: c.ASOrg[half],
			Addr: netip.AddrPortFrom(addr, 0)}
		p.behaviour = p.Profile.Behaviour()
		if cfg.IdleTimeout > 0 {
			p.behaviour.IdleTimeout = cfg.IdleTimeout
		}
		if cfg.KeepAlive > 0 {
			p.behaviour.KeepAlive = cfg.KeepAlive
		}
		if p.behaviour.KeepAlive <= 0 {
			p.behaviour.KeepAlive = time.Minute
		}
		if p.behaviour.IdleTimeout <= 0 {
			p.behaviour.IdleTimeout = 2 * time.Minute
		}
		s.shapeCurve(r, p)
		if cfg.CurveFunc != nil {
			if c, ok := cfg.CurveFunc(p); ok {
				c.Pieces = t.Pieces
				p.Curve = c
			}
		}
		p.DialOut = cfg.DialOut != "" && p.Profile != Refuse && r.Float64() < cfg.DialOutFraction
		p.RequireMSE, p.UTPOnly, p.IPv6 = reach.mse[i], reach.utp[i], reach.v6[i]
		if cfg.PeerFunc != nil {
			cfg.PeerFunc(p)
			p.DialOut = p.DialOut && cfg.DialOut != ""
		}
		p.RequireMSE = p.RequireMSE && p.behaviour.Talks
		if p.IPv6 {
			// Loopback IPv6 is one address: the peer is told apart by its port, and
			// lives in the country ::1 is in.
			v6 := cfg.ipv6Country()
			p.Addr = netip.AddrPortFrom(netip.IPv6Loopback(), 0)
			p.Country, p.Continent, p.City, p.ASN, p.ASOrg = v6.ISO, v6.Continent, v6.Cities[0], v6.ASN[0], v6.ASOrg[0]
			p.DialOut = p.DialOut && cfg.DialOut6 != ""
		}
		s.peers = append(s.peers, p)
		s.byTor[t.Index] = append(s.byTor[t.Index], p)
	}
	return nil
}

// shapeCurve draws the peer's progress curve and acquisition order.
func (s *Swarm) shapeCurve(r *rand.Rand, p *Peer) {
	n := p.Torrent.Pieces
	d := s.cfg.Duration
	if d <= 0 {
		d = time.Minute
	}
	// A multiplier coprime with n gives a permutation of the pieces.
	for {
		p.permA = 1 + r.IntN(n)
		if gcd(p.permA, n) == 1 {
			break
		}
	}
	p.permB = r.IntN(n)
	c := Curve{Pieces: n}
	switch p.Profile {
	case Libtorrent, Transmission, Rtorrent:
		switch x := r.Float64(); {
		case x < 0.15:
			c.Start = n // a seed
		case x < 0.25:
			c.Start = 0
		default:
			c.Start = r.IntN(n * 9 / 10)
		}
		if c.Start < n {
			complete := time.Duration(float64(d) * (0.3 + 2.7*r.Float64()))
			c.Interval = max(complete/time.Duration(n-c.Start), time.Millisecond)
			if r.Float64() < 0.1 {
				c.StallAt = time.Duration(r.Int64N(int64(d/2) + 1))
				c.StallFor = d/10 + time.Duration(r.Int64N(int64(d/4)+1))
			}
			if p.Profile == Libtorrent && r.Float64() < 0.1 {
				c.RegressAt = d/4 + time.Duration(r.Int64N(int64(d*3/4)+1))
				c.RegressBy = 1 + r.IntN(max(n/20, 1))
			}
		}
	case LazySeed:
		c.Start = n
		p.LazyHidden = 1 + r.IntN(max(n/20, 1))
	case SuperSeed:
		// Shows two pieces, then reveals one more every 10 s.
		c.Start = min(2, n)
		c.Interval = 10 * time.Second
	case PartialSeed:
		c.Start = n*3/10 + r.IntN(n*6/10)
	case AlwaysZero:
		c.Start = 0
	default:
		// Peers whose progress cannot be read keep a flat curve at 0: the
		// truth for them is "not observable", see PeerTruth.Reports.
	}
	p.Curve = c
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// loopbackOnly reports whether every network interface is a loopback one,
// i.e. a wildcard socket cannot be reached from outside this machine.
func loopbackOnly() (bool, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return false, err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return false, nil
		}
	}
	return true, nil
}

func (s *Swarm) listen() error {
	var listening, own []*Peer
	for _, p := range s.peers {
		switch {
		case p.ownSocket():
			own = append(own, p)
		case p.Profile != Refuse:
			listening = append(listening, p)
		}
	}
	if len(own) > s.cfg.PerAddressLimit {
		return fmt.Errorf("listen: %d IPv6 or uTP-only peers exceed per_address_limit %d: each needs a socket of its own",
			len(own), s.cfg.PerAddressLimit)
	}
	mode := s.cfg.ListenMode
	if mode == ListenAuto {
		mode = ListenPerAddress
		if len(listening) > s.cfg.PerAddressLimit {
			mode = ListenShared
		}
	}
	s.mode = mode
	if mode == ListenShared {
		ok, err := loopbackOnly()
		if err != nil {
			return fmt.Errorf("listen: list interfaces: %w", err)
		}
		if !ok {
			return fmt.Errorf("listen: %d listening peers exceed per_address_limit %d and shared listeners "+
				"need a network namespace whose only interface is loopback (run under `unshare -n`)",
				len(listening), s.cfg.PerAddressLimit)
		}
		if err := s.listenShared(listening); err != nil {
			return err
		}
	} else if err := s.listenPerAddress(listening); err != nil {
		return err
	}
	return s.listenOwn(own)
}

func (s *Swarm) listenPerAddress(listening []*Peer) error {
	lc := net.ListenConfig{}
	for _, p := range listening {
		l, err := lc.Listen(context.Background(), "tcp4", netip.AddrPortFrom(p.Addr.Addr(), 0).String())
		if err != nil {
			return fmt.Errorf("listen on %s for peer %d: %w", p.Addr.Addr(), p.Index, err)
		}
		p.Addr = l.Addr().(*net.TCPAddr).AddrPort()
		s.listeners = append(s.listeners, &peerListener{Listener: l, peer: p})
	}
	for _, p := range s.peers {
		if p.Profile == Refuse && !p.ownSocket() {
			port, err := freePort(p.Addr.Addr())
			if err != nil {
				return err
			}
			p.Addr = netip.AddrPortFrom(p.Addr.Addr(), port)
		}
	}
	return nil
}

// listenOwn gives the IPv6 and uTP-only peers sockets of their own (a TCP listener, or a
// uTP socket that is also the peer's dialer), in every listen mode; refusing ones get a
// port nothing listens on. They count against PerAddressLimit on their own. A uTP-only
// peer's port is never one of the shared wildcard TCP ports, so that a TCP connect to it
// is refused, not taken by a shared listener.
func (s *Swarm) listenOwn(own []*Peer) error {
	wild := map[uint16]bool{}
	for _, l := range s.listeners {
		if pl := l.(*peerListener); pl.byAddr != nil {
			wild[pl.Addr().(*net.TCPAddr).AddrPort().Port()] = true
		}
	}
	for _, p := range own {
		host := p.Addr.Addr()
		switch {
		case p.Profile == Refuse && p.UTPOnly:
			port, err := freeUDPPort(host)
			if err != nil {
				return err
			}
			p.Addr = netip.AddrPortFrom(host, port)
		case p.Profile == Refuse:
			port, err := freePort(host)
			if err != nil {
				return err
			}
			p.Addr = netip.AddrPortFrom(host, port)
		case p.UTPOnly:
			var sock *utp.Socket
			for try := 0; sock == nil; try++ {
				var err error
				if sock, err = listenUTP(netip.AddrPortFrom(host, 0)); err != nil {
					return fmt.Errorf("uTP socket on %s for peer %d: %w", host, p.Index, err)
				}
				if wild[sock.Addr().(*net.UDPAddr).AddrPort().Port()] && try < 10 {
					sock.Close()
					sock = nil
				}
			}
			p.utp = sock
			p.Addr = sock.Addr().(*net.UDPAddr).AddrPort()
			s.listeners = append(s.listeners, &peerListener{Listener: utpListener{sock}, peer: p})
		default:
			l, err := net.Listen(tcpNetwork(host), netip.AddrPortFrom(host, 0).String())
			if err != nil {
				return fmt.Errorf("listen on %s for peer %d: %w", host, p.Index, err)
			}
			p.Addr = l.Addr().(*net.TCPAddr).AddrPort()
			s.listeners = append(s.listeners, &peerListener{Listener: l, peer: p})
		}
	}
	return nil
}

func tcpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// freePort returns a port nothing listens on at addr (bind, then release).
func freePort(addr netip.Addr) (uint16, error) {
	l, err := net.Listen(tcpNetwork(addr), netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return 0, fmt.Errorf("reserve a refusing port on %s: %w", addr, err)
	}
	port := l.Addr().(*net.TCPAddr).AddrPort().Port()
	l.Close()
	return port, nil
}

type peerListener struct {
	net.Listener
	peer   *Peer                    // per-address mode
	byAddr map[netip.AddrPort]*Peer // shared mode
}

func (s *Swarm) listenShared(listening []*Peer) error {
	var ports []uint16
	byAddr := make(map[netip.AddrPort]*Peer, len(listening))
	for i := 0; i < s.cfg.SharedPorts; i++ {
		// Safe only because loopbackOnly() held: the namespace has no
		// other interface for the wildcard to reach.
		l, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			return fmt.Errorf("shared listener %d: %w", i, err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).AddrPort().Port())
		s.listeners = append(s.listeners, &peerListener{Listener: l, byAddr: byAddr})
	}
	for i, p := range listening {
		p.Addr = netip.AddrPortFrom(p.Addr.Addr(), ports[i%len(ports)])
		byAddr[p.Addr] = p
	}
	port, err := freePort(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if err != nil {
		return err
	}
	for _, p := range s.peers {
		if p.Profile == Refuse && !p.ownSocket() {
			p.Addr = netip.AddrPortFrom(p.Addr.Addr(), port)
		}
	}
	return nil
}

func (s *Swarm) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	pl := l.(*peerListener)
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accept failed", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond): // e.g. EMFILE: back off briefly
			}
			continue
		}
		s.stats.accepted.Add(1)
		p := pl.peer
		if p == nil {
			local, ok := conn.LocalAddr().(*net.TCPAddr)
			if ok {
				p = pl.byAddr[local.AddrPort()]
			}
			if p == nil {
				conn.Close()
				continue
			}
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.stats.rejected.Add(1)
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.conns }()
			s.serve(s.ctx, p, conn, false)
		}()
	}
}

// dialLoop connects peer p to Config.DialOut, first after a spread-out
// delay, then again Redial after each session ends (at most a second after a
// failed dial), until the swarm closes.
func (s *Swarm) dialLoop(p *Peer) {
	defer s.wg.Done()
	delay := time.Duration(p.Index%1000) * time.Millisecond
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = s.cfg.Redial
		if p.left(s.Elapsed()) {
			return // the peer quit
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.stats.rejected.Add(1)
			continue
		}
		conn, err := s.dial(p)
		if err != nil {
			<-s.conns
			s.stats.dialFailures.Add(1)
			delay = min(s.cfg.Redial, time.Second) // btda may not listen yet
			continue
		}
		s.stats.dialOuts.Add(1)
		s.serve(s.ctx, p, conn, true)
		<-s.conns
	}
}

// dial opens one of p's own connections to btda: from its listen address (or DialFrom)
// over TCP to DialOut, over uTP from its uTP socket, and to DialOut6 when it is an IPv6 peer.
// A uTP-only peer dials from its socket, never from DialFrom.
func (s *Swarm) dial(p *Peer) (net.Conn, error) {
	target := s.cfg.DialOut
	if p.IPv6 {
		target = s.cfg.DialOut6
	}
	if p.UTPOnly {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		network := "udp4"
		if p.IPv6 {
			network = "udp6"
		}
		return p.utp.DialContext(ctx, network, target)
	}
	from := p.Addr.Addr()
	if p.DialFrom.IsValid() {
		from = p.DialFrom
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
	return d.DialContext(s.ctx, tcpNetwork(from), target)
}

// pexPayload names up to 50 other peers of p's torrent (BEP 11, IPv6 in added6), with the
// flags their reach options imply.
func (s *Swarm) pexPayload(p *Peer) []byte {
	peers := s.byTor[p.Torrent.Index]
	var added, flags, added6, flags6 []byte
	for i := 0; i < len(peers) && len(flags)+len(flags6) < 50; i++ {
		o := peers[(p.Index+i)%len(peers)]
		if o == p || o.Unlisted {
			continue
		}
		port := []byte{byte(o.Addr.Port() >> 8), byte(o.Addr.Port())}
		if a := o.Addr.Addr(); a.Is4() {
			a4 := a.As4()
			added = append(append(added, a4[:]...), port...)
			flags = append(flags, o.pexFlags())
		} else {
			a16 := a.As16()
			added6 = append(append(added6, a16[:]...), port...)
			flags6 = append(flags6, o.pexFlags())
		}
	}
	return encodePEX(added, flags, added6, flags6)
}

// Elapsed is the swarm time now.
func (s *Swarm) Elapsed() time.Duration { return s.clock.Now().Sub(s.start) }

// StartTime is the clock time of swarm time 0.
func (s *Swarm) StartTime() time.Time { return s.start }

// Torrents returns the generated torrents.
func (s *Swarm) Torrents() []*Torrent { return s.torrents }

// Peers returns every peer, in index order.
func (s *Swarm) Peers() []*Peer { return s.peers }

// Config returns the effective configuration (defaults applied).
func (s *Swarm) Config() Config { return s.cfg }

// ListenMode is the listen mode in use (per-address or shared).
func (s *Swarm) ListenMode() string { return s.mode }

// GeoIPPaths returns the City and ASN database paths if Dir was set.
func (s *Swarm) GeoIPPaths() (city, asn string) { return s.cityDB, s.asnDB }

// Stats returns the swarm's counters.
func (s *Swarm) Stats() Stats {
	return Stats{Accepted: s.stats.accepted.Load(), Rejected: s.stats.rejected.Load(),
		Sessions: s.stats.sessions.Load(), Handshakes: s.stats.handshakes.Load(),
		BadHandshakes: s.stats.badHandshakes.Load(), Updates: s.stats.updates.Load(),
		DialOuts: s.stats.dialOuts.Load(), DialFailures: s.stats.dialFailures.Load(),
		Encrypted: s.stats.encrypted.Load(), PlaintextRefused: s.stats.plaintextRefused.Load(),
		UTPSessions: s.stats.utpSessions.Load()}
}

// Close stops every listener, connection, the tracker and the DHT, and
// waits for them.
func (s *Swarm) Close() error {
	s.closeOnce.Do(func() {
		began := time.Now()
		if s.cancel != nil {
			s.cancel()
		}
		for _, l := range s.listeners {
			l.Close()
		}
		if s.tracker != nil {
			s.tracker.Close()
		}
		trackerDone := time.Now()
		if s.dht != nil {
			s.dht.Close()
		}
		dhtDone := time.Now()
		s.wg.Wait()
		s.log.Debug("swarm closed", "tracker", trackerDone.Sub(began), "dht", dhtDone.Sub(trackerDone),
			"peers", time.Since(dhtDone))
	})
	return nil
}

// publish gives the tracker and the DHT every peer of every torrent, under
// each info hash a client may look it up by (v1, and truncated v2).
func (s *Swarm) publish() {
	if s.tracker == nil && s.dht == nil {
		return
	}
	for _, t := range s.torrents {
		addrs := make([]netip.AddrPort, 0, len(s.byTor[t.Index]))
		var addrs4 []netip.AddrPort
		complete := 0
		for _, p := range s.byTor[t.Index] {
			if p.Unlisted {
				continue
			}
			addrs = append(addrs, p.Addr)
			if p.Addr.Addr().Is4() {
				addrs4 = append(addrs4, p.Addr)
			}
			if Progress(p, 0) == t.Pieces {
				complete++
			}
		}
		for _, h := range t.lookupHashes() {
			if s.tracker != nil {
				s.tracker.SetPeers(h, addrs)
				s.tracker.SetScrape(h, complete, len(addrs)-complete, 0)
			}
			if s.dht != nil {
				// The DHT cluster is IPv4 nodes only (no BEP 32): IPv6 peers are on the tracker.
				s.dht.Announce(h, addrs4)
			}
		}
	}
}

// Tracker returns the swarm's tracker, or nil if Config.Tracker is off.
func (s *Swarm) Tracker() *swarmtracker.Tracker { return s.tracker }

// DHT returns the swarm's DHT cluster, or nil if Config.DHT.Nodes is 0.
func (s *Swarm) DHT() *swarmdht.Cluster { return s.dht }

// AnnounceURLs are the tracker URLs written into the torrents and magnets.
func (s *Swarm) AnnounceURLs() []string { return s.announce }

// DHTNodes returns the DHT cluster's addresses (a client's bootstrap list).
func (s *Swarm) DHTNodes() []netip.AddrPort {
	if s.dht == nil {
		return nil
	}
	return s.dht.Addrs()
}

// writeFiles writes torrents/, magnets.txt and the GeoIP databases.
func (s *Swarm) writeFiles(dir string) error {
	tdir := filepath.Join(dir, "torrents")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tdir, err)
	}
	var magnets []byte
	for _, t := range s.torrents {
		path := filepath.Join(tdir, t.Name+".torrent")
		if err := os.WriteFile(path, t.File, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		magnets = append(magnets, t.Magnet(s.announce)+"\n"...)
	}
	if err := os.WriteFile(filepath.Join(dir, "magnets.txt"), magnets, 0o644); err != nil {
		return fmt.Errorf("write magnets.txt: %w", err)
	}
	var v6 *Country
	for _, p := range s.peers {
		if p.IPv6 {
			c := s.cfg.ipv6Country()
			v6 = &c
			break
		}
	}
	city, asn, err := writeGeoIP(dir, s.cfg.Countries, v6)
	if err != nil {
		return err
	}
	s.cityDB, s.asnDB = city, asn
	return nil
}
