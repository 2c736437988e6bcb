package daemon

import (
	"context"
	"net/netip"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// routeBatch is how many queued sightings readSightings passes to the scheduler at once.
const routeBatch = 512

// readSightings passes what trackers and the DHT send to route, until ctx is done. It
// takes what is queued (up to routeBatch) at once, so that a tracker reply of hundreds of
// peers enters the scheduler under one hold of its lock, not one per peer.
func (d *Daemon) readSightings(ctx context.Context) error {
	batch := make([]discovery.Sighting, 0, routeBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case sg := <-d.sightings:
			batch = append(batch[:0], sg)
		}
	more:
		for len(batch) < routeBatch {
			select {
			case sg := <-d.sightings:
				batch = append(batch, sg)
			default:
				break more
			}
		}
		d.routeAll(batch)
	}
}

// route is the one filter every sighting passes on its way to the scheduler, whatever its
// source (trackers and the DHT through the sightings channel, PEX from probe sessions, a
// magnet's x.pe peers):
//
//   - a torrent not watched is dropped; the watch list holds this instance's shard only
//     (Shard.Keep), so a torrent of another shard is dropped here too;
//   - the torrent's wire hash is rewritten to its registry ID (a hybrid's peers may use
//     either of its two hashes; the scheduler, the recorder and the metrics key by ID); a
//     peer found under the other hash is marked (HintOtherHash) so that it is dialled with
//     that hash;
//   - a magnet still waiting for its metadata gets the peer as a metadata candidate
//     instead (its piece count is unknown, so it cannot be probed yet).
func (d *Daemon) route(sg discovery.Sighting) {
	if d.filter(&sg) {
		d.sched.Add(sg)
	}
}

// routeAll routes every sighting of sgs as route does; those for the scheduler go in one
// AddBatch. It rewrites sgs in place.
func (d *Daemon) routeAll(sgs []discovery.Sighting) {
	keep := sgs[:0]
	for _, sg := range sgs {
		if d.filter(&sg) {
			keep = append(keep, sg)
		}
	}
	d.sched.AddBatch(keep)
}

// filter applies route's rules to sg; true: it goes to the scheduler (with its ID).
func (d *Daemon) filter(sg *discovery.Sighting) bool {
	e, ok := d.registry.Lookup(sg.Torrent)
	if !ok {
		return false
	}
	if sg.Torrent != e.ID {
		sg.Hints |= discovery.HintOtherHash // found under a hybrid's other hash: handshake with it
	}
	sg.Torrent = e.ID
	d.status.sighted(*sg)
	if e.Pending() {
		d.metadata.candidate(e.ID, sg.Addr, sg.Source)
		return false
	}
	return true
}

// routePEX routes the PEX peers a session with a peer of torrent learned, in one batch.
func (d *Daemon) routePEX(torrent metainfo.Hash, obs *probe.Observation) {
	if len(obs.PEX) == 0 {
		return
	}
	sgs := make([]discovery.Sighting, len(obs.PEX))
	for i, a := range obs.PEX {
		sgs[i] = discovery.Sighting{Torrent: torrent, Addr: a, Source: discovery.SourcePEX}
		if i < len(obs.PEXHints) {
			sgs[i].Hints = obs.PEXHints[i]
		}
	}
	d.routeAll(sgs)
}

// probe runs the session the scheduler asks for, with the wire hash the peer knows the
// torrent by; the observation comes back keyed by the ID.
func (d *Daemon) probe(ctx context.Context, t scheduler.Target) probe.Observation {
	wire := d.wireHash(t.Torrent, t.Hints)
	obs := d.prober.Probe(ctx, probe.Target{Torrent: wire, Pieces: d.pieces(t.Torrent), Addr: t.Addr, Source: t.Source,
		Hints: t.Hints,
		Watch: probe.WatchInfo{Threshold: t.Threshold, Prev: t.Prev}, OnHold: func(interim probe.Observation) {
			// The point below the threshold is stored now, not only when the hold ends.
			interim.Torrent = t.Torrent
			_ = d.recorder.Record(context.Background(), interim)
			t.Hold()
		}})
	obs.Torrent = t.Torrent
	return obs
}

// wireHash is the hash to handshake with: the ID, or with HintOtherHash the torrent's
// other wire hash (a hybrid's).
func (d *Daemon) wireHash(id metainfo.Hash, h discovery.Hints) metainfo.Hash {
	if h&discovery.HintOtherHash == 0 {
		return id
	}
	if e, ok := d.registry.Lookup(id); ok {
		for _, x := range e.Hashes() {
			if x != id {
				return x
			}
		}
	}
	return id
}

// result takes the observation of a session the scheduler started: it is counted,
// recorded, and its PEX peers are routed. The scheduler reschedules the peer itself.
func (d *Daemon) result(t scheduler.Target, obs probe.Observation) {
	d.observed(&obs)
	// The target's hash: a session that failed early may leave obs.Torrent empty.
	d.routePEX(t.Torrent, &obs)
}

// incoming takes the observation of a session the listener ran. Its torrent is the ID (a
// hybrid's v2 peers handshake with the truncated v2 hash); the scheduler learns of the
// peer (its listen port makes it visitable) and its PEX peers are routed.
func (d *Daemon) incoming(obs probe.Observation) {
	other := false
	if e, ok := d.registry.Lookup(obs.Torrent); ok {
		other = obs.Torrent != e.ID
		obs.Torrent = e.ID
	}
	d.observed(&obs)
	d.sched.Observed(obs)
	if other && obs.ListenPort != 0 {
		// It knows the torrent by the other hash (a v2-only client): visit it with that.
		d.sched.AddHints(obs.Torrent, netip.AddrPortFrom(obs.Addr.Addr(), obs.ListenPort), discovery.HintOtherHash)
	}
	d.routePEX(obs.Torrent, &obs)
}

// incomingWatch answers an incoming session's hold decision (probe.ListenerConfig.Watch)
// from the scheduler, under the torrent's ID.
func (d *Daemon) incomingWatch(o *probe.Observation) (probe.WatchInfo, bool) {
	q := probe.Observation{Torrent: o.Torrent, Addr: o.Addr, ListenPort: o.ListenPort}
	if e, ok := d.registry.Lookup(o.Torrent); ok {
		q.Torrent = e.ID
	}
	return d.sched.IncomingWatch(&q)
}

// incomingHeld takes the report of an incoming session at the start of its hold: its point
// below the threshold is stored now (as an outgoing held session's), and the scheduler
// leaves the peer alone while the connection is held (incoming ends it).
func (d *Daemon) incomingHeld(interim probe.Observation) {
	if e, ok := d.registry.Lookup(interim.Torrent); ok {
		interim.Torrent = e.ID
	}
	_ = d.recorder.Record(context.Background(), interim)
	d.sched.HeldIncoming(interim)
}

// observed counts a session in the probe metrics and hands it to the recorder.
func (d *Daemon) observed(obs *probe.Observation) {
	d.metrics.Observe(obs)
	d.probed(obs)
	// The recorder's queue is the back-pressure; it only refuses once stopped.
	_ = d.recorder.Record(context.Background(), *obs)
}

// lookupActive routes an incoming handshake to a torrent whose piece count is known.
func (d *Daemon) lookupActive(h metainfo.Hash) (int, bool) {
	e, ok := d.registry.Lookup(h)
	if !ok || e.Pending() {
		return 0, false
	}
	return e.Torrent.Pieces, true
}

func (d *Daemon) pieces(id metainfo.Hash) int {
	n, _ := d.lookupActive(id)
	return n
}

// infoHashes lists the wire hashes of every torrent whose piece count is known: the keys
// an incoming MSE handshake may be made with (lookupActive routes the rest).
func (d *Daemon) infoHashes() []metainfo.Hash {
	es := d.registry.Entries()
	out := make([]metainfo.Hash, 0, len(es))
	for _, e := range es {
		if !e.Pending() {
			out = append(out, e.Hashes()...)
		}
	}
	return out
}
