package collector

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/probe"
)

// One identity per client. A peer identity is (torrent, IP, listen port); an incoming
// session whose peer did not tell its port (no BEP 10 `p`) has port 0, and a client whose
// connections leave from another address than the one it listens on shows two IPs. The
// wire links them through the peer_id, which a client keeps for all its connections while
// it runs (libtorrent, Transmission, rtorrent, aria2, ctorrent):
//
//   - an incoming session without a port is taken as the known-port identity of its
//     (torrent, IP) when there is exactly one and the peer_id its last session showed is
//     this session's: the same client, so its progress goes on that record;
//   - the other way round, when the first known-port identity of a (torrent, IP) appears
//     while an unknown-port one is stored there, and the session that makes it shows the
//     peer_id the unknown-port identity's last session showed, the unknown-port identity
//     becomes the known-port one (adoptUnknown): its record (points, below-threshold
//     state, crossing, contacts) moves to the known-port key and the session's progress
//     is applied on top, so a crossing spanning the two is counted once, at its time;
//     btda_peer_identities_total does not grow;
//   - a crossing whose session showed a peer_id for which a crossing of the same torrent was
//     counted within claimWindow (under any identity, any address) is the same download:
//     it is recorded on its peer record but not counted again.
//
// Limits: clients that draw a new peer_id per connection (libtorrent's anonymous mode, the
// test swarm's peers without FixedPeerID) are linked only by the per-IP rule of
// claimCrossing, and their unknown-port identity stays a separate identity; so does one
// whose link shows only after both identities stored progress (the known-port one
// existed already: its history is not merged), and a client seen at two IPs (its crossing
// still counted once, by the peer_id claim). A confirmed download counted under the
// unknown-port identity keeps that identity's key in the download log. Two clients sharing
// one peer_id (broken or fake clients with a fixed one) crossing the same torrent within
// claimWindow count once.

// claimWindow: a peer_id's second crossing of a torrent this soon after its first is the
// same download seen under another identity (a client downloads a torrent once per run).
const claimWindow = 24 * time.Hour

// linkable reports whether a peer_id can link sessions: one was read (not all zero).
func linkable(id [20]byte) bool { return id != [20]byte{} }

// resolvePort returns the listen port of an incoming session without one when it belongs
// to the one known-port identity of its (torrent, IP) (see above), else 0.
func (c *Recorder) resolvePort(tx *store.Tx, o *probe.Observation, addr netip.Addr) uint16 {
	if !linkable(o.Client.PeerID) {
		return 0
	}
	h, err := tx.Host(c.store.HostKey(o.Torrent, addr))
	if err != nil || h.KnownPorts != 1 || h.PeerID != c.store.PeerIDTag(o.Client.PeerID) {
		return 0
	}
	return h.Port
}

// noteKnownPort keeps the host record's count of known-port identities (isNew: this
// observation made one) and the peer_id tag of the first one's last session.
func (c *Recorder) noteKnownPort(tx *store.Tx, o *probe.Observation, addr netip.Addr, port uint16, isNew bool) error {
	if !isNew && !linkable(o.Client.PeerID) {
		return nil
	}
	hk := c.store.HostKey(o.Torrent, addr)
	h, err := tx.Host(hk)
	if err != nil {
		return nil // claimCrossing logs unreadable host records; no link is made
	}
	changed := false
	if isNew {
		h.KnownPorts++
		if h.KnownPorts == 1 {
			h.Port = port
		}
		changed = true
	}
	if linkable(o.Client.PeerID) && h.KnownPorts == 1 && h.Port == port {
		if tag := c.store.PeerIDTag(o.Client.PeerID); tag != h.PeerID {
			h.PeerID, changed = tag, true
		}
	}
	if !changed {
		return nil
	}
	if err := tx.PutHost(hk, h); err != nil {
		return fmt.Errorf("writing host record: %w", err)
	}
	return nil
}

// claimPeerID reports whether a crossing of o's torrent by o's peer_id was counted within
// claimWindow of at, and records this one.
func (c *Recorder) claimPeerID(tx *store.Tx, o *probe.Observation, at time.Time) (bool, error) {
	if !linkable(o.Client.PeerID) {
		return false, nil
	}
	k := c.store.ClaimKey(o.Torrent, o.Client.PeerID)
	if prev, ok := tx.Claim(k); ok && at.Sub(prev).Abs() < claimWindow {
		return true, nil
	}
	if err := tx.PutClaim(k, at); err != nil {
		return false, fmt.Errorf("writing claim: %w", err)
	}
	return false, nil
}

// noteUnknownPort keeps, in the host record, the peer_id tag of the last session recorded on
// the unknown-port identity of o's (torrent, IP), for adoptUnknown.
func (c *Recorder) noteUnknownPort(tx *store.Tx, o *probe.Observation, addr netip.Addr) error {
	if !linkable(o.Client.PeerID) {
		return nil
	}
	hk := c.store.HostKey(o.Torrent, addr)
	h, err := tx.Host(hk)
	if err != nil {
		return nil // claimCrossing logs unreadable host records; no link is made
	}
	tag := c.store.PeerIDTag(o.Client.PeerID)
	if h.UnknownPeerID == tag {
		return nil
	}
	h.UnknownPeerID = tag
	if err := tx.PutHost(hk, h); err != nil {
		return fmt.Errorf("writing host record: %w", err)
	}
	return nil
}

// adoptUnknown is called when o makes a new known-port identity (torrent, addr, port). If
// it is the first known-port identity there and an unknown-port identity is stored whose
// last session showed o's peer_id, that identity becomes this one: its record is returned
// (ok) to be stored under the known-port key, and it is deleted under its own. A crossing it
// had counted becomes a known-port identity's in the host record (claimCrossing).
func (c *Recorder) adoptUnknown(tx *store.Tx, o *probe.Observation, addr netip.Addr, port uint16) (store.Peer, bool, error) {
	if !linkable(o.Client.PeerID) {
		return store.Peer{}, false, nil
	}
	hk := c.store.HostKey(o.Torrent, addr)
	h, err := tx.Host(hk)
	if err != nil || h.KnownPorts != 0 || h.UnknownPeerID != c.store.PeerIDTag(o.Client.PeerID) {
		return store.Peer{}, false, nil
	}
	uk := c.store.PeerKey(o.Torrent, addr, 0)
	rec, found, err := tx.Peer(uk)
	if err != nil || !found {
		return store.Peer{}, false, nil // unreadable: logged where it is read for its own sessions
	}
	if err := tx.DeletePeer(uk); err != nil {
		return store.Peer{}, false, fmt.Errorf("deleting merged peer record: %w", err)
	}
	h.UnknownPeerID = [8]byte{}
	if rec.Has(store.FlagCounted) && h.UnknownCounted {
		h.UnknownCounted = false
		h.KnownCounted++
	}
	if err := tx.PutHost(hk, h); err != nil {
		return store.Peer{}, false, fmt.Errorf("writing host record: %w", err)
	}
	return rec, true, nil
}
