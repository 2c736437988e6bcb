package scheduler

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// check verifies the scheduler's internal invariants.
func (s *Scheduler) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	live, inFlight, held, done, givenUp, waiting := 0, 0, 0, 0, 0, 0
	busyIPs := map[[16]byte]bool{}
	for i := range s.ents {
		e := &s.ents[i]
		if e.state == stFree {
			continue
		}
		if e.flags&flOrphan == 0 {
			live++
			if j, ok := s.peers[peerKey{e.ip, e.port, e.torrent}]; !ok || j != uint32(i) {
				return fmt.Errorf("entry %d not in the peer map", i)
			}
			if !s.torrents[e.torrent].live {
				return fmt.Errorf("entry %d of a removed torrent", i)
			}
		} else if e.state != stInFlight {
			return fmt.Errorf("orphan %d not in flight", i)
		}
		switch e.state {
		case stQueued:
			q := &s.revQ
			if e.flags&flNewQueue != 0 {
				q = &s.newQ
			}
			if e.heapIdx < 0 || int(e.heapIdx) >= q.Len() || q.items[e.heapIdx] != uint32(i) {
				return fmt.Errorf("queued entry %d not at its heap position", i)
			}
		case stInFlight:
			if e.flags&(flHeld|flHeldIn) != 0 {
				held++ // a held connection holds neither a slot nor its IP
				break
			}
			inFlight++
			if busyIPs[e.ip] {
				return fmt.Errorf("two sessions to one IP")
			}
			busyIPs[e.ip] = true
		case stWaitingIP:
			waiting++
		case stDone:
			done++
		case stGivenUp:
			givenUp++
		}
		if e.state != stQueued && e.heapIdx != -1 {
			return fmt.Errorf("entry %d in state %d has heap position %d", i, e.state, e.heapIdx)
		}
	}
	if live != len(s.peers) {
		return fmt.Errorf("%d live entries, %d in the map", live, len(s.peers))
	}
	if inFlight != s.inFlight || inFlight > s.cfg.MaxInFlight {
		return fmt.Errorf("in flight: %d entries, counter %d, limit %d", inFlight, s.inFlight, s.cfg.MaxInFlight)
	}
	if held != s.st.Held {
		return fmt.Errorf("held: %d entries, counter %d", held, s.st.Held)
	}
	if done != s.st.Done || givenUp != s.st.GivenUp {
		return fmt.Errorf("done %d/%d, given up %d/%d", done, s.st.Done, givenUp, s.st.GivenUp)
	}
	if len(s.busy) != len(busyIPs) {
		return fmt.Errorf("%d busy IPs, %d sessions", len(s.busy), len(busyIPs))
	}
	w := 0
	for ip, ws := range s.busy {
		if !busyIPs[ip] {
			return fmt.Errorf("IP busy without a session")
		}
		for _, i := range ws {
			if s.ents[i].state != stWaitingIP || s.ents[i].ip != ip {
				return fmt.Errorf("waiter %d in state %d", i, s.ents[i].state)
			}
			w++
		}
	}
	if w != waiting {
		return fmt.Errorf("%d waiters listed, %d waiting", w, waiting)
	}
	for _, q := range []*queue{&s.newQ, &s.revQ} {
		for k := 1; k < q.Len(); k++ {
			if q.Less(k, (k-1)/2) {
				return fmt.Errorf("heap order broken at %d", k)
			}
		}
	}
	return nil
}

// FuzzOperations runs random sequences of sightings, dispatches, session ends, clock
// steps, incoming observations (held or not) and torrent changes, and checks the invariants after each.
// The input is pairs of bytes: an operation (op % 10) and its argument.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 3, 4, 1, 5, 2, 0, 6, 1, 2, 7, 8, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 1, 2, 3, 1, 2})
	f.Add([]byte("\x00\x11\x00\x21\x00\x31\x01\x02\x13\x04\x05\x01\x12\x01\x06\x07\x01\x02\x03"))
	f.Add([]byte{0, 16, 32, 48, 1, 2, 4, 1, 2, 36, 1, 2, 68, 1, 2, 100, 1, 2, 132, 1, 2, 5, 1, 2})
	// A known peer held from the incoming side: not dialled; a second incoming session ends
	// without ending the hold; the torrent removed under it.
	f.Add([]byte{0, 0, 8, 70, 1, 0, 3, 50, 1, 0, 6, 71, 1, 0, 6, 70, 1, 0, 8, 100, 4, 0, 8, 70, 1, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		h := newHarness(t, Config{MaxInFlight: 3, RetryBase: time.Second, MaxRetries: 2,
			ForgetAfter: time.Hour, SeedLikeFor: 10 * time.Minute})
		var running []launch
		arg := func(k int) int {
			if k < len(ops) {
				return int(ops[k])
			}
			return 0
		}
		outcomes := []probe.Outcome{probe.OutcomeOK, probe.OutcomeRefused, probe.OutcomeLocalError, probe.OutcomeNoProgress}
		for k := 0; k < len(ops); k += 2 {
			op, a := ops[k], arg(k+1)
			switch op % 10 {
			case 0: // sighting: a picks the torrent, the IP (few, to collide) and the port
				h.s.Add(discovery.Sighting{Torrent: hash(a % 5), Addr: netip.AddrPortFrom(
					netip.AddrFrom4([4]byte{10, 0, 0, byte(a>>3) % 4}), uint16(1+a%3)),
					Source: discovery.Source(1 + a%5)})
			case 1:
				running = append(running, h.step()...)
			case 2: // finish a running session
				if len(running) > 0 {
					j := a % len(running)
					l := running[j]
					running = append(running[:j], running[j+1:]...)
					known := h.s.Stats().Known
					h.finish(l, outcomes[a%len(outcomes)], pieces(a%120), func(o *probe.Observation) {
						o.Flags.UploadOnly = a%7 == 0
						if a%11 == 0 {
							o.PEX = []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(a)}), 9)}
						}
					})
					if k := h.s.Stats().Known; k != known { // PEX peers are the caller's to add
						t.Fatalf("a session's end changed the known peers from %d to %d", known, k)
					}
				}
			case 3:
				h.clk.Advance(time.Duration(a) * 7 * time.Second)
			case 4:
				h.s.RemoveTorrent(hash(a % 5))
			case 5:
				if err := h.s.AddTorrent(hash(a%5), a); err != nil {
					t.Fatal(err)
				}
			case 6:
				h.s.Observed(probe.Observation{Torrent: hash(a % 5), Addr: netip.AddrPortFrom(
					netip.AddrFrom4([4]byte{10, 0, 0, byte(a>>3) % 4}), 40000), ListenPort: uint16(a % 3),
					Outcome: outcomes[a%len(outcomes)], Known: true, Flags: probe.Flags{Seed: a%5 == 0}, Held: a%2 == 0})
			case 7:
				h.clk.Advance(2 * time.Hour) // past ForgetAfter: the next dispatch sweeps
			case 8: // an incoming session held open (its end is op 6 with Held)
				h.s.HeldIncoming(probe.Observation{Torrent: hash(a % 5), Addr: netip.AddrPortFrom(
					netip.AddrFrom4([4]byte{10, 0, 0, byte(a>>3) % 4}), 40000), ListenPort: uint16(a % 3),
					Outcome: probe.OutcomeOK, Known: true, Interim: true})
			default:
				h.s.Stats()
			}
			if err := h.s.check(); err != nil {
				t.Fatalf("after op %d (%d): %v", k, op, err)
			}
		}
		for _, l := range running {
			h.finish(l, probe.OutcomeOK)
		}
		if err := h.s.check(); err != nil {
			t.Fatal(err)
		}
		if h.s.Stats().InFlight != 0 {
			t.Fatal("sessions left in flight")
		}
	})
}
