package probe

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/btda/btda/probe/wire"
)

const n = 100 // pieces in the test torrent

func TestSessionPeers(t *testing.T) {
	cases := []struct {
		name   string
		script func(p *peerConn)
		check  func(t *testing.T, o Observation)
	}{
		{"libtorrent seed with Fast: have_all", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "-LT20A0-abcdefghijkl")
			p.extHandshake(wire.ExtHandshake{M: map[string]int{"ut_metadata": 3, "lt_donthave": 7}, V: "libtorrent/2.0.10",
				P: -1, Reqq: 500, MetadataSize: -1, CompleteAgo: 5, YourIP: netip.MustParseAddr("127.0.0.1")})
			p.send(wire.Message{Type: wire.HaveAll})
			p.readFor(time.Second)
			// btda never claims to be a seed: have_none with Fast, then its extension handshake.
			if len(p.seen) < 2 || p.seen[0].Type != wire.HaveNone || p.seen[1].Type != wire.Extended || p.seen[1].ExtendedID != 0 {
				p.t.Errorf("btda sent %+v, want have_none then the extension handshake", p.seen)
				return
			}
			h, err := wire.ParseExtHandshake(p.seen[1].Payload)
			if err != nil || h.V != "btda test" || h.P != 6881 || h.M[wire.ExtMetadata] == 0 || h.M[wire.ExtPEX] == 0 || h.M[wire.ExtDontHave] == 0 || h.UploadOnly {
				p.t.Errorf("btda's extension handshake: %+v %v", h, err)
			}
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, n)
			if !o.Flags.Seed || !o.Flags.Fast || !o.Flags.Extended || !o.Flags.DHT || o.Flags.HaveNone {
				t.Errorf("flags %+v", o.Flags)
			}
			if o.Client.Family != "libtorrent (Rasterbar)" || o.Client.Version != "2.0.10" || o.Client.V != "libtorrent/2.0.10" || o.CompleteAgo != 5 {
				t.Errorf("client %+v complete_ago %d", o.Client, o.CompleteAgo)
			}
			if o.ListenPort != o.Addr.Port() || o.Direction != Outgoing {
				t.Errorf("listen port %d addr %v", o.ListenPort, o.Addr)
			}
		}},
		{"libtorrent without Fast: bitfield", func(p *peerConn) {
			p.readHandshake()
			p.handshake(extOnly, testHash, "-qB4560-abcdefghijkl")
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 0, 1, 2, 50, 99)})
			p.readFor(time.Second)
			for _, m := range p.seen {
				if m.Type == wire.HaveNone {
					p.t.Error("have_none sent to a peer without Fast")
				}
			}
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 5)
			if o.Flags.Fast || o.Flags.Seed || o.Client.Family != "qBittorrent" {
				t.Errorf("flags %+v client %+v", o.Flags, o.Client)
			}
			if !bytes.Equal(o.Bitfield, bitfieldOf(n, 0, 1, 2, 50, 99)) {
				t.Errorf("bitfield %x", o.Bitfield)
			}
		}},
		{"rtorrent-like silence: unknown, not 0", func(p *peerConn) {
			p.readHandshake()
			p.handshake(extOnly, testHash, "-lt0D80-abcdefghijkl")
			p.waitClose()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeNoProgress, false, 0)
			if o.Bitfield != nil || o.Client.Family != "libTorrent (rakshasa)" {
				t.Errorf("bitfield %x client %+v", o.Bitfield, o.Client)
			}
		}},
		{"lazy bitfield then haves merge exactly", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "-UT355W-abcdefghijkl")
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 0, 1, 2, 3)})
			for _, i := range []int{3, 4, 5, 99, 4} { // 3 and the second 4 are repeats
				p.send(have(i))
			}
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 7)
			// The haves right after a lazy bitfield are part of the initial report.
			if o.First.Pieces != 7 || o.Messages != 6 {
				t.Errorf("first %d messages %d", o.First.Pieces, o.Messages)
			}
		}},
		{"haves then a later bitfield merge, not replace", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "A2-1-36-0-abcdefghij")
			p.send(have(10))
			p.send(have(11))
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 1, 2, 3)})
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 5)
			if o.Flags.Regressed || o.Client.Family != "aria2" {
				t.Errorf("flags %+v client %+v", o.Flags, o.Client)
			}
		}},
		{"a smaller later bitfield replaces and flags a regression", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 1, 2, 3, 4)})
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 7)})
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 1)
			if !o.Flags.Regressed || o.First.Pieces != 4 {
				t.Errorf("flags %+v first %+v", o.Flags, o.First)
			}
		}},
		{"have_none is a known 0", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "-TR4060-abcdefghijkl")
			p.send(wire.Message{Type: wire.HaveNone})
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 0)
			if !o.Flags.HaveNone || o.Flags.SuperSeedSuspect || len(o.Bitfield) != 13 {
				t.Errorf("flags %+v bitfield %d bytes", o.Flags, len(o.Bitfield))
			}
		}},
		{"have_none then a couple of haves: super-seed suspect", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "-LT20A0-abcdefghijkl")
			p.send(wire.Message{Type: wire.HaveNone})
			p.send(have(40))
			p.send(have(41))
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 2)
			if !o.Flags.SuperSeedSuspect || !o.Flags.HaveNone {
				t.Errorf("flags %+v", o.Flags)
			}
		}},
		{"partial seed: upload_only", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "-TR4060-abcdefghijkl")
			p.extHandshake(wire.ExtHandshake{UploadOnly: true, P: 51413, V: "Transmission 4.0.6", Reqq: -1, MetadataSize: -1, CompleteAgo: -1, ShareMode: true})
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 1, 2, 3)})
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 3)
			if !o.Flags.UploadOnly || !o.Flags.ShareMode || o.Flags.Seed || o.CompleteAgo != -1 {
				t.Errorf("flags %+v", o.Flags)
			}
			if o.ListenPort != o.Addr.Port() {
				t.Error("p must not replace the dialled port of an outgoing session")
			}
		}},
		{"lt_donthave regression", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "-LT20A0-abcdefghijkl")
			p.send(wire.Message{Type: wire.HaveAll})
			p.ext(wire.OurDontHaveID, wire.AppendDontHave(nil, 17))
			p.ext(wire.OurDontHaveID, wire.AppendDontHave(nil, 17))
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, n-1)
			if !o.Flags.Regressed || !o.Flags.Seed || o.First.Pieces != n || o.Bitfield[2]&0x40 != 0 {
				t.Errorf("flags %+v first %+v", o.Flags, o.First)
			}
		}},
		{"haves over time: first and last points differ", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.send(wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 0)})
			time.Sleep(settleGap + 50*time.Millisecond) // past the initial report
			p.send(have(1))
			time.Sleep(30 * time.Millisecond)
			p.send(have(2))
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 3)
			if o.First.Pieces != 1 || !o.Last.At.After(o.First.At) || o.Timings.FirstProgress <= 0 || o.Timings.MaxGap <= 0 {
				t.Errorf("first %+v last %+v timings %+v", o.First, o.Last, o.Timings)
			}
		}},
		{"PEX peers are collected", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			b, _ := wire.AppendPEX(nil, wire.PEX{Added: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.7:6881"), netip.MustParseAddrPort("[::1]:6882")}})
			p.ext(wire.OurPEXID, b)
			p.send(wire.Message{Type: wire.HaveNone})
			p.finish()
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 0)
			if len(o.PEX) != 2 || o.PEX[0] != netip.MustParseAddrPort("127.0.0.7:6881") {
				t.Errorf("pex %v", o.PEX)
			}
		}},
		{"ut_metadata requests are rejected politely", func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			p.extHandshake(wire.ExtHandshake{M: map[string]int{"ut_metadata": 9}, P: -1, Reqq: -1, MetadataSize: -1, CompleteAgo: -1})
			p.ext(wire.OurMetadataID, wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataRequest, Piece: 3}))
			p.send(wire.Message{Type: wire.HaveAll})
			p.readFor(time.Second)
			for _, m := range p.seen {
				if m.Type == wire.Extended && m.ExtendedID == 9 {
					md, err := wire.ParseMetadataMsg(m.Payload)
					if err != nil || md.Type != wire.MetadataReject || md.Piece != 3 {
						p.t.Errorf("reply %+v %v", md, err)
					}
					return
				}
			}
			p.t.Errorf("no ut_metadata reject in %+v", p.seen)
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, n)
		}},
		{"closed after the handshake", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeClosedBeforeProgress, false, 0)
		}},
		{"closed mid-message", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.raw([]byte{0, 0, 0, 14, 5, 0xFF})
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeReset, false, 0)
		}},
		{"closed after progress is ok", func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.send(have(5))
		}, func(t *testing.T, o Observation) {
			want(t, o, OutcomeOK, true, 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGoroutines(t)
			addr := startPeer(t, c.script)
			cfg := testConfig()
			if strings.HasPrefix(c.name, "rtorrent") {
				cfg.QuietWindow = 300 * time.Millisecond // this case ends by the quiet window
			}
			o := probeOnce(t, cfg, addr, n)
			c.check(t, o)
			if o.Torrent != testHash || o.NumPieces != n || o.Addr != addr || o.Start.IsZero() || o.Timings.Total <= 0 {
				t.Errorf("identity fields: %+v", o)
			}
		})
	}
}

func want(t *testing.T, o Observation, outcome Outcome, known bool, pieces int) {
	t.Helper()
	if o.Outcome != outcome || o.Known != known {
		t.Fatalf("outcome %v known %v (err %v, violation %q), want %v known %v", o.Outcome, o.Known, o.Err, o.Violation, outcome, known)
	}
	if known && (o.Last.Pieces != pieces || wire.Popcount(o.Bitfield) != pieces || len(o.Bitfield) != wire.BitfieldLen(o.NumPieces)) {
		t.Fatalf("pieces: last %d, bitfield %d (%d bytes), want %d", o.Last.Pieces, wire.Popcount(o.Bitfield), len(o.Bitfield), pieces)
	}
}

// Hostile peers: each session ends cleanly, with the right outcome, in bounded memory.
func TestSessionHostile(t *testing.T) {
	cases := []struct {
		name      string
		cfg       func(*SessionConfig)
		script    func(p *peerConn)
		outcome   Outcome
		violation string
	}{
		{"4 GiB length prefix", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			p.raw([]byte{0xFF, 0xFF, 0xFF, 0xFF, 5})
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindLengthTooLarge},
		{"oversized extended message", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			p.raw(append(u32(wire.DefaultMaxExtendedLen+2), 20, 0))
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindLengthTooLarge},
		{"wrong-size bitfield", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.send(wire.Message{Type: wire.Bitfield, Payload: make([]byte, 12)})
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindBitfieldSize},
		{"spare bits set", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			b := bitfieldOf(n, 1)
			b[len(b)-1] |= 0x01
			p.send(wire.Message{Type: wire.Bitfield, Payload: b})
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindBitfieldSpareBits},
		{"have index out of range", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.send(have(n))
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindHaveIndex},
		{"lt_donthave index out of range", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			p.send(wire.Message{Type: wire.HaveAll})
			p.ext(wire.OurDontHaveID, wire.AppendDontHave(nil, n))
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindDontHaveIndex},
		{"unknown message id", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			p.raw([]byte{0, 0, 0, 1, 99})
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindUnknownMessage},
		{"malformed extension handshake", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			p.ext(0, []byte("d1:m"))
			p.waitClose()
		}, OutcomeProtocolViolation, wire.KindExtHandshake},
		{"endless haves hit the message cap", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			msg := wire.AppendMessage(nil, have(1))
			for range 100000 { // bounded; btda closes long before
				if _, err := p.c.Write(msg); err != nil {
					return
				}
			}
		}, OutcomeMessageCap, ""},
		{"endless keep-alives hit the message cap", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			for range 100000 {
				if _, err := p.c.Write([]byte{0, 0, 0, 0}); err != nil {
					return
				}
			}
		}, OutcomeMessageCap, ""},
		{"slowloris: one byte at a time until the session cap", func(c *SessionConfig) {
			c.QuietWindow, c.SessionCap = 2*time.Second, 400*time.Millisecond
		}, func(p *peerConn) {
			p.readHandshake()
			p.handshake(noBits, testHash, "")
			for _, b := range wire.AppendMessage(nil, wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(n, 1)}) {
				if _, err := p.c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}, OutcomeSessionCap, ""},
		{"a large message over the buffer budget", func(c *SessionConfig) { c.Budget = wire.NewBudget(64 << 10) }, func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, testHash, "")
			p.send(wire.Message{Type: wire.HaveAll})
			p.ext(wire.OurPEXID, make([]byte, 200<<10)) // sent in full: the budget, not the cap, stops it
			p.waitClose()
		}, OutcomeLocalError, ""},
		{"wrong info hash", nil, func(p *peerConn) {
			p.readHandshake()
			p.handshake(fastExt, otherHash, "")
			p.waitClose()
		}, OutcomeInfoHashMismatch, ""},
		{"the handshake never comes", func(c *SessionConfig) { c.HandshakeTimeout = 200 * time.Millisecond }, func(p *peerConn) {
			p.readHandshake()
			p.waitClose()
		}, OutcomeHandshakeTimeout, ""},
		{"half a handshake, then nothing", func(c *SessionConfig) { c.HandshakeTimeout = 200 * time.Millisecond }, func(p *peerConn) {
			p.readHandshake()
			p.raw(wire.AppendHandshake(nil, wire.Handshake{InfoHash: testHash})[:40])
			p.waitClose()
		}, OutcomeHandshakeTimeout, ""},
		{"garbage instead of a handshake", nil, func(p *peerConn) {
			p.raw([]byte(strings.Repeat("\x8e\x13garbage-like-MSE-", 8)))
			p.waitClose()
		}, OutcomeNotBitTorrent, ""},
		{"closed during the handshake", nil, func(p *peerConn) {
			p.readHandshake()
			p.raw(wire.AppendHandshake(nil, wire.Handshake{InfoHash: testHash})[:30])
		}, OutcomeReset, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGoroutines(t)
			cfg := testConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			o := probeOnce(t, cfg, startPeer(t, c.script), n)
			if o.Outcome != c.outcome || o.Violation != c.violation {
				t.Fatalf("outcome %v violation %q (err %v), want %v %q", o.Outcome, o.Violation, o.Err, c.outcome, c.violation)
			}
			if o.Messages > cfg.MaxMessages {
				t.Errorf("%d messages past the cap", o.Messages)
			}
		})
	}
}

func TestSessionDialOutcomes(t *testing.T) {
	checkGoroutines(t)
	// A port nothing listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	if o := probeOnce(t, testConfig(), addr, n); o.Outcome != OutcomeRefused || o.Err == nil {
		t.Errorf("closed port: %v %v", o.Outcome, o.Err)
	}
	// A dialer that times out (no real blackhole address is reachable in a test).
	cfg := testConfig()
	cfg.DialTimeout = 50 * time.Millisecond
	cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if o := probeOnce(t, cfg, addr, n); o.Outcome != OutcomeConnectTimeout {
		t.Errorf("dial timeout: %v %v", o.Outcome, o.Err)
	}
	// Bad targets never dial.
	if o := probeOnce(t, testConfig(), addr, 0); o.Outcome != OutcomeLocalError {
		t.Errorf("0 pieces: %v", o.Outcome)
	}
	if o := probeOnce(t, testConfig(), netip.AddrPort{}, n); o.Outcome != OutcomeLocalError {
		t.Errorf("no address: %v", o.Outcome)
	}
}

func TestSessionContextCancel(t *testing.T) {
	checkGoroutines(t)
	addr := startPeer(t, func(p *peerConn) {
		p.readHandshake()
		p.handshake(noBits, testHash, "")
		p.waitClose()
	})
	cfg := testConfig()
	cfg.QuietWindow, cfg.SessionCap = 20*time.Second, 30*time.Second
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	o := p.Probe(ctx, Target{Torrent: testHash, Pieces: n, Addr: addr})
	if o.Outcome != OutcomeLocalError || o.Known {
		t.Fatalf("outcome %v known %v", o.Outcome, o.Known)
	}
}

func TestSessionKeepAliveAndInterested(t *testing.T) {
	checkGoroutines(t)
	addr := startPeer(t, func(p *peerConn) {
		p.readHandshake()
		p.handshake(noBits, testHash, "")
		p.send(have(3))
		p.readFor(700 * time.Millisecond)
		var interested, keepAlives int
		for _, m := range p.seen {
			switch m.Type {
			case wire.Interested:
				interested++
			case wire.KeepAlive:
				keepAlives++
			}
		}
		if interested != 1 || keepAlives == 0 {
			p.t.Errorf("saw %d interested, %d keep-alives in %+v", interested, keepAlives, p.seen)
		}
	})
	cfg := testConfig()
	cfg.SendInterested, cfg.KeepAlive, cfg.QuietWindow = true, 100*time.Millisecond, time.Second
	if o := probeOnce(t, cfg, addr, n); o.Outcome != OutcomeOK || o.Last.Pieces != 1 {
		t.Fatalf("outcome %v last %+v", o.Outcome, o.Last)
	}
}

func TestSessionContextDeadlineIsACap(t *testing.T) {
	checkGoroutines(t)
	addr := startPeer(t, func(p *peerConn) {
		p.readHandshake()
		p.handshake(noBits, testHash, "")
		p.send(have(1))
		p.waitClose()
	})
	cfg := testConfig()
	cfg.QuietWindow, cfg.SessionCap = 20*time.Second, 30*time.Second
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	o := p.Probe(ctx, Target{Torrent: testHash, Pieces: n, Addr: addr})
	if o.Outcome != OutcomeSessionCap || !o.Known || o.Last.Pieces != 1 {
		t.Fatalf("outcome %v known %v last %+v (%v)", o.Outcome, o.Known, o.Last, o.Err)
	}
}

func TestSessionOverCallerConn(t *testing.T) {
	checkGoroutines(t)
	addr := startPeer(t, func(p *peerConn) {
		p.readHandshake()
		p.handshake(fastExt, testHash, "-DE2110-abcdefghijkl")
		p.send(wire.Message{Type: wire.HaveAll})
		p.finish()
	})
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := NewProber(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	o := p.Session(context.Background(), c, Target{Torrent: testHash, Pieces: n, Addr: addr})
	want(t, o, OutcomeOK, true, n)
	if o.Timings.Connect != 0 || o.Client.Family != "Deluge" {
		t.Fatalf("%+v", o)
	}
	if o := p.Session(context.Background(), c, Target{Torrent: testHash, Addr: addr}); o.Outcome != OutcomeLocalError {
		t.Fatalf("0 pieces: %v", o.Outcome)
	}
}
