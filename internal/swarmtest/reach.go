package swarmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	utp "github.com/anacrolix/go-libutp"
	"github.com/anacrolix/torrent/mse"
)

// Reach options: peers that a reader speaking only plaintext BitTorrent over TCP and IPv4
// cannot read. Encryption is anacrolix/torrent's mse package and uTP anacrolix/go-libutp,
// both independent of btda's probe.

// ReachConfig gives shares of the peers reach options. Each share is exact (rounded) and
// the peers that get it are drawn from the seed on a stream of their own, so a swarm
// without reach options is the same peer for peer as before they existed, and the shares
// combine independently (a peer may need MSE over uTP on [::1]).
type ReachConfig struct {
	// RequireMSE is the share of the talking peers that accept only an MSE (BEP 8)
	// handshake with RC4, as clients set to require encryption do: a plaintext handshake
	// is closed as soon as its first 20 bytes arrive, and their own connections start
	// with MSE.
	RequireMSE float64 `yaml:"require_mse"`
	// UTPOnly is the share of the peers that listen and dial over uTP (BEP 29) only: no
	// TCP listener (a TCP connect is refused).
	UTPOnly float64 `yaml:"utp_only"`
	// IPv6 is the share of the peers that live on [::1], each on its own port. Loopback
	// IPv6 has one address, so they are all in one country: IPv6Country.
	IPv6 float64 `yaml:"ipv6"`
	// IPv6Country is the ISO code of the country the GeoIP databases place ::1 in
	// (default: the first country).
	IPv6Country string `yaml:"ipv6_country"`
}

func (rc ReachConfig) validate(countries []Country) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"require_mse", rc.RequireMSE}, {"utp_only", rc.UTPOnly}, {"ipv6", rc.IPv6}} {
		if f.v < 0 || f.v > 1 || math.IsNaN(f.v) {
			return fmt.Errorf("reach.%s: %v outside [0, 1]", f.name, f.v)
		}
	}
	if rc.IPv6Country != "" {
		for _, c := range countries {
			if c.ISO == rc.IPv6Country {
				return nil
			}
		}
		return fmt.Errorf("reach.ipv6_country: %q is not one of the countries", rc.IPv6Country)
	}
	return nil
}

// ipv6Country is the country ::1 belongs to.
func (c Config) ipv6Country() Country {
	for _, k := range c.Countries {
		if k.ISO == c.Reach.IPv6Country {
			return k
		}
	}
	return c.Countries[0]
}

// reachDraw is which peers (by index) get each reach option.
type reachDraw struct{ mse, utp, v6 []bool }

// drawReach picks the peers of each reach option from the profiles in peer order: exact
// shares (RequireMSE among the talking peers, the others among all), drawn on a random
// stream of their own.
func drawReach(seed uint64, rc ReachConfig, plist []Profile) reachDraw {
	r := rand.New(rand.NewPCG(seed, 0x7eac4))
	pick := func(share float64, eligible func(Profile) bool) []bool {
		out := make([]bool, len(plist))
		if share <= 0 {
			return out
		}
		var idx []int
		for i, p := range plist {
			if eligible(p) {
				idx = append(idx, i)
			}
		}
		k := int(math.Round(share * float64(len(idx))))
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for _, i := range idx[:k] {
			out[i] = true
		}
		return out
	}
	all := func(Profile) bool { return true }
	return reachDraw{
		mse: pick(rc.RequireMSE, Profile.ReportsProgress),
		utp: pick(rc.UTPOnly, all),
		v6:  pick(rc.IPv6, all),
	}
}

// ownSocket reports whether the peer always has sockets of its own, in every listen mode:
// a shared wildcard socket can tell neither IPv6 peers (one address) nor uTP peers (UDP
// gives no local address) apart.
func (p *Peer) ownSocket() bool { return p.IPv6 || p.UTPOnly }

// pexFlags are the BEP 11 flags other peers tell about p: 0x01 prefers encryption, 0x04
// supports uTP.
func (p *Peer) pexFlags() byte {
	var f byte
	if p.RequireMSE {
		f |= 0x01
	}
	if p.UTPOnly {
		f |= 0x04
	}
	return f
}

// packetConn hides the *net.UDPConn from go-libutp: given one, it reads with recvmmsg into
// 16 buffers of 64 KiB per socket; behind an interface it keeps one (uTP-only peers each
// have a socket, and a swarm may have thousands).
type packetConn struct{ net.PacketConn }

// listenUTP opens a uTP socket on addr (port 0: picked).
func listenUTP(addr netip.AddrPort) (*utp.Socket, error) {
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	pc, err := net.ListenPacket(network, addr.String())
	if err != nil {
		return nil, err
	}
	s, err := utp.NewSocketFromPacketConn(packetConn{pc})
	if err != nil {
		pc.Close()
		return nil, err
	}
	return s, nil
}

// utpListener is a uTP socket as a net.Listener that reports its close as net.ErrClosed.
type utpListener struct{ *utp.Socket }

func (l utpListener) Accept() (net.Conn, error) {
	c, err := l.Socket.Accept()
	if err != nil {
		return nil, fmt.Errorf("uTP accept: %w (%w)", net.ErrClosed, err)
	}
	return c, nil
}

// freeUDPPort returns a UDP port nothing listens on at addr (bind, then release): a
// refusing uTP-only peer's.
func freeUDPPort(addr netip.Addr) (uint16, error) {
	network := "udp4"
	if addr.Is6() {
		network = "udp6"
	}
	pc, err := net.ListenPacket(network, netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return 0, fmt.Errorf("reserve a refusing uTP port on %s: %w", addr, err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	pc.Close()
	return port, nil
}

// mseConn runs a connection's reads and writes through an MSE stream; deadlines and
// addresses are the underlying connection's.
type mseConn struct {
	net.Conn
	rw     io.ReadWriter
	broken atomic.Bool
}

func (c *mseConn) Read(b []byte) (int, error) { return c.rw.Read(b) }

// Write fails for good after a short write: mse's RC4 writer drops its cipher then (the
// stream position is lost) and would panic on the next Write, which a session's other
// writer (PEX, metadata, haves) may try before it sees the connection end.
func (c *mseConn) Write(b []byte) (int, error) {
	if c.broken.Load() {
		return 0, errBrokenStream
	}
	n, err := c.rw.Write(b)
	if err != nil || n != len(b) {
		c.broken.Store(true)
	}
	return n, err
}

var errBrokenStream = fmt.Errorf("MSE stream: %w after a failed write", net.ErrClosed)

// errPlaintextRefused: a peer that requires MSE was sent a plaintext handshake.
var errPlaintextRefused = errors.New("plaintext handshake refused: this peer requires MSE")

// encrypt runs the MSE handshake of a RequireMSE peer on ss.conn and returns the
// encrypted connection: as the initiator on the peer's own connections (RC4 only), as the
// receiver otherwise, with the torrent's lookup hashes as the secret keys, choosing RC4
// whatever the initiator offers. A plaintext BitTorrent handshake is closed at once, as
// libtorrent does with encryption forced.
func (ss *session) encrypt(ctx context.Context) (net.Conn, error) {
	conn := ss.conn
	_ = conn.SetDeadline(time.Now().Add(ss.s.cfg.HandshakeTimeout))
	defer func() { _ = conn.SetDeadline(time.Time{}) }()
	t := ss.p.Torrent
	if ss.outgoing {
		rw, _, err := mse.InitiateHandshakeContext(ctx, conn, t.WireHash[:], nil, mse.CryptoMethodRC4)
		if err != nil {
			return nil, fmt.Errorf("MSE initiate: %w", err)
		}
		return &mseConn{Conn: conn, rw: rw}, nil
	}
	var head [1 + len(protocolString)]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return nil, fmt.Errorf("MSE receive: first bytes: %w", err)
	}
	if head[0] == byte(len(protocolString)) && string(head[1:]) == protocolString {
		return nil, errPlaintextRefused
	}
	rw := struct {
		io.Reader
		io.Writer
	}{io.MultiReader(bytes.NewReader(head[:]), conn), conn}
	keys := t.lookupHashes()
	iter := func(yield func([]byte) bool) {
		for i := range keys {
			if !yield(keys[i][:]) {
				return
			}
		}
	}
	rc4Only := func(mse.CryptoMethod) mse.CryptoMethod { return mse.CryptoMethodRC4 }
	ret, _, err := mse.ReceiveHandshake(ctx, rw, iter, rc4Only)
	if err != nil {
		return nil, fmt.Errorf("MSE receive: %w", err)
	}
	return &mseConn{Conn: conn, rw: ret}, nil
}
