package collector

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

// thresholdFn returns the piece count at or above which a peer counts as complete.
type thresholdFn func(numPieces int) int

// newThreshold computes ceil(fraction × pieces) in integer millionths, so that 0.98 × 100
// is 98 and not 99 (0.98*100 is 98.00000000000001 in floating point).
func newThreshold(fraction float64) thresholdFn {
	ppm := int64(math.Round(fraction * 1e6))
	return func(n int) int {
		return int((ppm*int64(n) + 1e6 - 1) / 1e6)
	}
}

// minSpeedInterval is the shortest interval whose speed goes into the histogram and the
// maximum speed: a have or two a few milliseconds apart would give absurd rates. The bytes and
// seconds of shorter intervals still count for the mean.
const minSpeedInterval = time.Second

// unknownNetwork is the network label of peers with neither an ASN nor a registered domain.
const unknownNetwork = "unknown"

type speedSample struct {
	continent      string
	bytesPerSecond float64
}

// batchResult is what one batch changed; it is published only after its commit succeeded.
type batchResult struct {
	delta        *store.Aggregates
	observed     [8]float64 // by discovery.Source
	firstSeen    [8]float64
	speeds       []speedSample
	duplicates   int
	recordErrors int
	downloads    []store.Download // counted in this batch, logged once it is committed
}

func sourceLabel(s int) string { return discovery.Source(s).String() }

func sourceIndex(s discovery.Source) int {
	if int(s) < 8 {
		return int(s)
	}
	return 0
}

// apply runs the rule over a batch inside one write transaction.
func (c *Recorder) apply(tx *store.Tx, batch []probe.Observation) (*batchResult, error) {
	r := &batchResult{delta: store.NewAggregates()}
	for i := range batch {
		// A write error fails the whole batch: bbolt rolls it back, so aggregates never count
		// a record that was not written.
		if err := c.observe(tx, &batch[i], r); err != nil {
			return nil, err
		}
	}
	if err := tx.AddAggregates(r.delta); err != nil {
		return nil, err
	}
	return r, nil
}

// sourceOf is the source an observation is counted under.
func sourceOf(o *probe.Observation) discovery.Source {
	src := sourceIndex(o.Source)
	if src == 0 && o.Direction == probe.Incoming {
		src = int(discovery.SourceIncoming) // the listener may leave Source unset
	}
	return discovery.Source(src)
}

// logDownload writes the audit line of one committed confirmed download: everything in its
// download log entry but the network, under the peer's pseudonymous key (a prefix of it,
// enough to find the entry and the peer record).
func (c *Recorder) logDownload(d *store.Download) {
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "confirmed download",
		slog.String("torrent", d.Torrent.String()),
		slog.String("peer", hex.EncodeToString(d.Peer[:8])),
		slog.String("country", d.Country),
		slog.Int("pieces_below", int(d.Below)), slog.Int("pieces_above", int(d.Above)),
		slog.Int("pieces", int(d.NumPieces)),
		slog.Time("crossed_at", d.At), slog.Time("window_start", d.WindowStart),
		slog.Duration("window", d.At.Sub(d.WindowStart)),
		slog.String("found_by", discovery.Source(d.Source).String()),
		slog.String("direction", probe.Direction(d.Direction).String()))
}

// peerPort is the listen port of the observed peer's identity: the dialled port for outgoing
// sessions, the BEP 10 `p` for incoming ones, 0 when unknown.
func peerPort(o *probe.Observation) uint16 {
	if o.ListenPort != 0 {
		return o.ListenPort
	}
	if o.Direction == probe.Outgoing {
		return o.Addr.Port()
	}
	return 0
}

// observe applies one observation to its peer record.
//
// Sessions that never reached a BitTorrent peer of this torrent (refused, timeouts, not
// BitTorrent, wrong info hash) change no peer state: they are probe metrics only. Sessions
// without progress (Known false) only add a contact. An observation no newer than what the
// record already holds (its last progress point, or its last contact for sessions without
// progress) is a duplicate, e.g. a replay after a crash, and changes nothing.
func (c *Recorder) observe(tx *store.Tx, o *probe.Observation, r *batchResult) error {
	if !o.Outcome.Reached() || !o.Addr.IsValid() || o.Torrent.IsZero() {
		return nil
	}
	addr := o.Addr.Addr().Unmap()
	port := peerPort(o)
	if port == 0 {
		port = c.resolvePort(tx, o, addr)
	}
	key := c.store.PeerKey(o.Torrent, addr, port)
	rec, found, err := tx.Peer(key)
	if err != nil {
		// Skip rather than overwrite: rebuilding the record could count a crossing again.
		r.recordErrors++
		c.log.Error("unreadable peer record; observation skipped", "err", err)
		return nil
	}
	end := o.Start.Add(o.Timings.Total)
	if found {
		if o.Known && rec.Has(store.FlagHasPoint) && !o.Last.At.After(rec.Last.At) {
			r.duplicates++
			return nil
		}
		if !o.Known && !end.After(rec.LastContact) {
			r.duplicates++
			return nil
		}
	}
	src := int(sourceOf(o))
	merged := false
	if !found && port != 0 {
		// The known-port identity appears now: the unknown-port one of the same client,
		// stored before it, becomes it (identity.go).
		if rec, merged, err = c.adoptUnknown(tx, o, addr, port); err != nil {
			return err
		}
	}
	if !found && !merged {
		rec = c.newPeer(o, addr)
		t := r.delta.Torrents[o.Torrent]
		t.Peers++
		r.delta.Torrents[o.Torrent] = t
		addNetwork(r.delta, rec.NetLabel, 1, 0)
		r.firstSeen[src]++
	}
	if !o.Interim { // a held session's interim report is not a contact of its own
		r.observed[src]++
		rec.Contacts++
	}
	if src != 0 {
		rec.Sources |= 1 << src
	}
	if o.Client.Family != "" {
		rec.Client = o.Client.Family
	}
	if end.After(rec.LastContact) {
		rec.LastContact = end
	}
	c.enrichLater(&rec, addr, r.delta)
	if port != 0 {
		if err := c.noteKnownPort(tx, o, addr, port, !found); err != nil {
			return err
		}
	} else if err := c.noteUnknownPort(tx, o, addr); err != nil {
		return err
	}
	if o.Known {
		if err := c.progress(tx, key, &rec, o, addr, port, r); err != nil {
			return err
		}
	}
	rec.Torrent = o.Torrent // records written before record version 2 learn it here
	if err := tx.PutPeer(key, &rec); err != nil {
		return fmt.Errorf("writing peer record: %w", err)
	}
	return nil
}

func (c *Recorder) newPeer(o *probe.Observation, addr netip.Addr) store.Peer {
	info := c.cfg.Geo.Lookup(addr)
	p := store.Peer{
		FirstSeen: o.Start.UTC(), Country: info.Country, Continent: info.Continent, City: info.City,
		ASN: info.ASN, Org: info.Org, Network: geo.Anonymize(addr, !c.cfg.NoAnonymize),
		Flags: store.FlagGeoDone,
	}
	if c.cfg.KeepRawIP {
		p.Addr = addr
	}
	switch {
	case info.Org != "":
		p.NetLabel = info.Org
	case info.ASN != 0:
		p.NetLabel = fmt.Sprintf("AS%d", info.ASN)
	default:
		p.NetLabel = unknownNetwork
	}
	return p
}

func addNetwork(d *store.Aggregates, label string, peers, confirmed int64) {
	n := d.Networks[label]
	n.Peers += peers
	n.Confirmed += confirmed
	d.Networks[label] = n
}

// enrichLater fills in the registered domain once reverse DNS has answered (never waiting for
// it). A peer without an ASN then moves from the "unknown" network to its domain, so the
// network tables use the ASN organisation when there is one and the domain otherwise.
func (c *Recorder) enrichLater(rec *store.Peer, addr netip.Addr, d *store.Aggregates) {
	if c.cfg.RDNS == nil || rec.Has(store.FlagRDNSDone) {
		return
	}
	dom, ok := c.cfg.RDNS.Lookup(addr)
	if !ok {
		return
	}
	rec.Flags |= store.FlagRDNSDone
	rec.Domain = dom
	if dom != "" && rec.NetLabel == unknownNetwork {
		var conf int64
		if rec.Has(store.FlagCounted) {
			conf = 1
		}
		addNetwork(d, unknownNetwork, -1, -conf)
		addNetwork(d, dom, 1, conf)
		rec.NetLabel = dom
	}
}

// progress applies the observation's progress points (its first and last, in time order)
// to the record. The rule, decided once:
//
//   - Threshold = ceil(fraction × pieces).
//   - A peer whose first point ever is at or above the threshold is a seed, never a download,
//     even if it later falls below and climbs back (a re-check is not a download).
//   - A point below the threshold from a session that announced upload_only is a partial
//     seed's point (BEP 21): the peer is counted once as a partial seed, and such a point is
//     no evidence of downloading, so it can never start a confirmed download.
//   - Any other point below the threshold marks the peer as seen below (LastBelow = its time).
//   - The first point at or above the threshold after a point seen below is the crossing:
//     CrossedAt is its time, WindowStart the last-below time. It happens at most once per
//     identity (FlagConfirmed), whatever the peer does afterwards.
//   - A point lower than the one before it flags the peer as regressed; it never yields a
//     negative speed.
//   - Whether the crossing is counted as a confirmed download also depends on the other
//     identities at the same IP (see claimCrossing).
func (c *Recorder) progress(tx *store.Tx, key store.PeerKey, rec *store.Peer, o *probe.Observation,
	addr netip.Addr, port uint16, r *batchResult) error {
	n := o.NumPieces
	if n <= 0 {
		return nil
	}
	rec.NumPieces = uint32(n)
	thr := c.thr(n)
	pl := c.pieceLength(o.Torrent)
	if o.Flags.Regressed {
		rec.Flags |= store.FlagRegressed
	}
	if o.Flags.UploadOnly {
		rec.Flags |= store.FlagUploadOnly
	} else {
		rec.Flags &^= store.FlagUploadOnly
	}
	pts := []probe.Point{o.First, o.Last}
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].At.Before(pts[j].At) })
	if pts[0].At.Equal(pts[1].At) {
		pts = pts[1:] // one point: take the end of the session
	}
	for _, p := range pts {
		if p.At.IsZero() || (rec.Has(store.FlagHasPoint) && !p.At.After(rec.Last.At)) {
			continue // overlaps what is stored already
		}
		pieces := min(max(p.Pieces, 0), n)
		pt := store.Point{Pieces: uint32(pieces), At: p.At.UTC()}
		below := pieces < thr
		partial := below && o.Flags.UploadOnly
		if partial && !rec.Has(store.FlagPartialSeed) {
			rec.Flags |= store.FlagPartialSeed
			t := r.delta.Torrents[o.Torrent]
			t.PartialSeeds++
			r.delta.Torrents[o.Torrent] = t
		}
		if !rec.Has(store.FlagHasPoint) {
			rec.Flags |= store.FlagHasPoint
			rec.First, rec.Prev, rec.Last = pt, pt, pt
			switch {
			case !below:
				rec.Flags |= store.FlagSeed
				t := r.delta.Torrents[o.Torrent]
				t.Seeds++
				r.delta.Torrents[o.Torrent] = t
			case !partial:
				rec.Flags |= store.FlagBelowSeen
				rec.LastBelow = pt.At
			}
			continue
		}
		prev := rec.Last
		c.speed(rec, prev, pt, n, pl, r)
		switch {
		case below && !partial:
			rec.Flags |= store.FlagBelowSeen
			rec.LastBelow = pt.At
		case !below && rec.Has(store.FlagBelowSeen) && !rec.Has(store.FlagConfirmed) && !rec.Has(store.FlagSeed):
			if err := c.cross(tx, key, rec, o, addr, port, prev, pt, pl, r); err != nil {
				return err
			}
		}
		rec.Prev, rec.Last = prev, pt
	}
	return nil
}

// speed accounts for the interval prev → pt.
func (c *Recorder) speed(rec *store.Peer, prev, pt store.Point, n int, pl int64, r *batchResult) {
	if pt.Pieces < prev.Pieces {
		rec.Flags |= store.FlagRegressed
		return
	}
	dt := pt.At.Sub(prev.At)
	// Only time spent downloading counts: a seed's idle hours would drag the mean down.
	if dt <= 0 || int(prev.Pieces) >= n || pl <= 0 {
		return
	}
	gained := uint64(pt.Pieces-prev.Pieces) * uint64(pl)
	ca := r.delta.Countries[rec.Country]
	ca.Bytes += gained
	ca.Seconds += dt.Seconds()
	r.delta.Countries[rec.Country] = ca
	if dt < minSpeedInterval {
		return
	}
	bps := float64(gained) / dt.Seconds()
	r.speeds = append(r.speeds, speedSample{continent: rec.Continent, bytesPerSecond: bps})
	if bps > rec.MaxSpeed {
		rec.MaxSpeed = bps
	}
}

// cross records the crossing and, if claimCrossing allows, counts the confirmed download,
// logging it in the same transaction.
func (c *Recorder) cross(tx *store.Tx, key store.PeerKey, rec *store.Peer, o *probe.Observation,
	addr netip.Addr, port uint16, prev, pt store.Point, pl int64, r *batchResult) error {
	rec.Flags |= store.FlagConfirmed
	rec.CrossedAt = pt.At
	rec.WindowStart = rec.LastBelow
	seen, err := c.claimPeerID(tx, o, pt.At)
	if err != nil || seen {
		return err // the same client's crossing was counted under another identity
	}
	count, err := c.claimCrossing(tx, o.Torrent, addr, port)
	if err != nil || !count {
		return err
	}
	rec.Flags |= store.FlagCounted
	t := r.delta.Torrents[o.Torrent]
	t.Confirmed++
	r.delta.Torrents[o.Torrent] = t
	r.delta.Confirmed[store.ConfirmedKey{Torrent: o.Torrent, Country: rec.Country, Continent: rec.Continent}]++
	addNetwork(r.delta, rec.NetLabel, 0, 1)
	var ws float64
	if dt := pt.At.Sub(prev.At); prev.At.Equal(rec.LastBelow) && dt > 0 && pl > 0 {
		ws = float64(uint64(pt.Pieces-prev.Pieces)*uint64(pl)) / dt.Seconds()
	}
	d := store.Download{At: pt.At, WindowStart: rec.WindowStart, Peer: key, Torrent: o.Torrent,
		Country: rec.Country, Continent: rec.Continent, Speed: ws, MaxSpeed: rec.MaxSpeed,
		Network: rec.Network, NetLabel: rec.NetLabel,
		Below: prev.Pieces, Above: pt.Pieces, NumPieces: rec.NumPieces,
		Source: uint8(sourceOf(o)), Direction: uint8(o.Direction)}
	if err := tx.LogDownload(&d); err != nil {
		return fmt.Errorf("writing download log: %w", err)
	}
	r.downloads = append(r.downloads, d)
	return nil
}

// claimCrossing decides whether a crossing is counted, so one client is not counted twice
// under two identities at the same IP. A peer that connects to us without announcing its
// listen port (no BEP 10 `p`) is the identity (torrent, IP, 0); the same client found by a
// tracker is (torrent, IP, port). The rule, per (torrent, IP):
//
//   - the unknown-port identity's crossing is not counted if any known-port identity there
//     has already been counted (it is presumably one of them);
//   - once the unknown-port crossing has been counted, the first known-port crossing there
//     is taken to be the same download and is not counted again; later known-port crossings
//     are other clients behind the same address (NAT) and count.
//
// So with one client per IP the count is one whichever identity crosses first, and with k
// clients behind a NAT it is k. The crossing itself is always recorded on the peer record
// (FlagConfirmed without FlagCounted when it was merged).
func (c *Recorder) claimCrossing(tx *store.Tx, t metainfo.Hash, addr netip.Addr, port uint16) (bool, error) {
	hk := c.store.HostKey(t, addr)
	h, err := tx.Host(hk)
	if err != nil {
		c.log.Error("unreadable host record; treated as empty", "err", err)
		h = store.Host{}
	}
	count := true
	switch {
	case port == 0 && h.KnownCounted > 0:
		count = false
	case port == 0:
		h.UnknownCounted = true
	case h.UnknownCounted && !h.Claimed:
		h.Claimed = true
		count = false
	default:
		h.KnownCounted++
	}
	if err := tx.PutHost(hk, h); err != nil {
		return false, fmt.Errorf("writing host record: %w", err)
	}
	return count, nil
}

// Threshold is the piece count at or above which a peer of a torrent with pieces pieces
// counts as complete: ceil(fraction × pieces), exact for decimal fractions. Every part of
// btda that needs the threshold (the scheduler's done rule, reports) uses this one.
func Threshold(fraction float64, pieces int) int { return newThreshold(fraction)(pieces) }
