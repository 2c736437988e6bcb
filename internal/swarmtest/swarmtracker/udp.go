package swarmtracker

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"
)

func (t *Tracker) serveUDP(conn *net.UDPConn, v6 bool) {
	buf := make([]byte, 2048)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-t.closing:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Debug("udp read", "err", err)
			continue
		}
		t.mu.Lock()
		t.stats.UDPPackets++
		t.mu.Unlock()
		reply, fault := t.handleUDP(buf[:n], src, v6)
		if reply != nil {
			t.sendUDP(conn, src, reply, fault)
		}
	}
}

// handleUDP answers one packet. It returns the normal reply (nil for none) and the fault mode
// to apply when sending it.
func (t *Tracker) handleUDP(pkt []byte, src netip.AddrPort, v6 bool) ([]byte, FaultMode) {
	req, err := ParseUDPRequest(pkt)
	if err != nil {
		t.reject(UDP, src, err)
		if errors.Is(err, errShort) {
			return nil, FaultNone // no transaction ID to answer
		}
		return udpError(req.TransactionID, "swarmtracker: bad request: "+err.Error()), FaultNone
	}
	now := t.cfg.Now()
	if req.Action == ActionConnect {
		t.mu.Lock()
		t.stats.UDPConnects++
		id := t.newConnID(src.Addr(), now)
		t.mu.Unlock()
		b := make([]byte, 16)
		binary.BigEndian.PutUint32(b[0:], ActionConnect)
		binary.BigEndian.PutUint32(b[4:], req.TransactionID)
		binary.BigEndian.PutUint64(b[8:], id)
		return b, FaultMode(t.connectFault.Load())
	}
	if err := t.checkConnID(req.ConnectionID, src.Addr(), now); err != nil {
		t.reject(UDP, src, err)
		if t.cfg.DropBadConnectionID {
			return nil, FaultNone
		}
		return udpError(req.TransactionID, "swarmtracker: "+err.Error()), FaultNone
	}
	fault := t.Fault()
	switch req.Action {
	case ActionAnnounce:
		// Over IPv4 the reply carries 6-byte peers, over IPv6 18-byte peers (BEP 15).
		keep := func(a netip.Addr) bool { return a.Is4() != v6 }
		rep := t.announce(Announce{AnnounceRequest: req.Announce, Protocol: UDP, Remote: src, Fault: fault, Path: req.Announce.URLData}, keep)
		t.log.Debug("udp announce", "remote", src, "event", req.Announce.Event, "left", req.Announce.Left, "fault", fault, "peers", len(rep.peers))
		b := make([]byte, 20, 20+18*len(rep.peers))
		binary.BigEndian.PutUint32(b[0:], ActionAnnounce)
		binary.BigEndian.PutUint32(b[4:], req.TransactionID)
		binary.BigEndian.PutUint32(b[8:], uint32(seconds(t.cfg.Interval)))
		binary.BigEndian.PutUint32(b[12:], uint32(rep.incomplete))
		binary.BigEndian.PutUint32(b[16:], uint32(rep.complete))
		for _, p := range rep.peers {
			b = appendCompact(b, p.addr)
		}
		return b, fault
	default: // ActionScrape; ParseUDPRequest admits nothing else
		_, counts := t.scrape(req.InfoHashes, UDP, src, fault)
		b := make([]byte, 8, 8+12*len(counts))
		binary.BigEndian.PutUint32(b[0:], ActionScrape)
		binary.BigEndian.PutUint32(b[4:], req.TransactionID)
		for _, c := range counts {
			// seeders, completed, leechers
			b = binary.BigEndian.AppendUint32(b, uint32(c[0]))
			b = binary.BigEndian.AppendUint32(b, uint32(c[2]))
			b = binary.BigEndian.AppendUint32(b, uint32(c[1]))
		}
		return b, fault
	}
}

// appendCompact appends the BEP 23 / BEP 7 compact form: the 4 or 16 address bytes, then the
// port big-endian. (netip.AddrPort.MarshalBinary puts the port little-endian: not this.)
func appendCompact(b []byte, a netip.AddrPort) []byte {
	b = append(b, a.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(b, a.Port())
}

func udpError(tid uint32, msg string) []byte {
	b := make([]byte, 8, 8+len(msg))
	binary.BigEndian.PutUint32(b[0:], ActionError)
	binary.BigEndian.PutUint32(b[4:], tid)
	return append(b, msg...)
}

// maxConnIDs bounds the connection-ID table against a client that connects in a loop.
const maxConnIDs = 1 << 16

// newConnID issues a connection ID tied to the client's IP. Caller holds t.mu.
func (t *Tracker) newConnID(ip netip.Addr, now time.Time) uint64 {
	if len(t.conns) >= maxConnIDs {
		for id, c := range t.conns {
			if now.Sub(c.issued) > ConnectionIDLifetime {
				delete(t.conns, id)
			}
		}
		if len(t.conns) >= maxConnIDs {
			clear(t.conns)
		}
	}
	var id uint64
	for id == 0 || id == ProtocolID || t.conns[id] != (connEntry{}) {
		id = t.rng.Uint64()
	}
	t.conns[id] = connEntry{ip: ip, issued: now}
	return id
}

var (
	errConnIDUnknown = errors.New("connection ID unknown")
	errConnIDExpired = errors.New("connection ID expired")
	errConnIDForeign = errors.New("connection ID issued to another IP")
)

func (t *Tracker) checkConnID(id uint64, ip netip.Addr, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.conns[id]
	switch {
	case !ok:
		return errConnIDUnknown
	case now.Sub(c.issued) > ConnectionIDLifetime:
		delete(t.conns, id)
		return errConnIDExpired
	case c.ip != ip:
		return errConnIDForeign
	}
	return nil
}

func (t *Tracker) sendUDP(conn *net.UDPConn, dst netip.AddrPort, reply []byte, fault FaultMode) {
	switch fault {
	case FaultNoReply:
		return
	case FaultFailureReason:
		reply = udpError(binary.BigEndian.Uint32(reply[4:8]), FailureReason)
	case FaultTruncated:
		reply = reply[:len(reply)-3]
	case FaultWrongTransaction:
		binary.BigEndian.PutUint32(reply[4:], binary.BigEndian.Uint32(reply[4:])+1)
	case FaultGarbage, FaultForeignPacket:
		t.mu.Lock()
		reply = make([]byte, 16+t.rng.IntN(48))
		for i := range reply {
			reply[i] = byte(t.rng.Uint32())
		}
		t.mu.Unlock()
	case FaultSlow:
		// Runs under the serving goroutine's wg slot, so Add is safe here.
		t.wg.Go(func() {
			timer := time.NewTimer(t.cfg.SlowHold)
			defer timer.Stop()
			select {
			case <-t.closing:
			case <-timer.C:
				if _, err := conn.WriteToUDPAddrPort(reply, dst); err != nil {
					t.log.Debug("udp write", "remote", dst, "err", err)
				}
			}
		})
		return
	}
	if _, err := conn.WriteToUDPAddrPort(reply, dst); err != nil {
		t.log.Debug("udp write", "remote", dst, "err", err)
	}
}
