package probe

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/anacrolix/torrent/mse"

	"github.com/btda/btda/discovery"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// seedScript answers btda's handshake as a seed and waits for btda to end the session.
func seedScript(p *peerConn) {
	if _, err := wire.ReadHandshake(p.br, nil); err != nil {
		return // (a plaintext-only peer meeting an MSE handshake: it hangs up)
	}
	p.handshake(fastExt, testHash, "-LT2090-abcdefghijkl")
	p.send(wire.Message{Type: wire.HaveAll})
	p.waitClose()
}

// mseOnly wraps script in an encryption-only peer: it hangs up on a plaintext handshake
// (libtorrent's pe_forced), or with silent it waits without a word (anacrolix/torrent's
// RequirePreferred, which reads for the 96-byte MSE key); selector picks the crypto.
func mseOnly(silent bool, selector mse.CryptoSelector, script func(*peerConn)) func(*peerConn) {
	return func(p *peerConn) {
		var head [len(protocolPrefix)]byte
		if _, err := io.ReadFull(p.c, head[:]); err != nil {
			return
		}
		if string(head[:]) == protocolPrefix {
			if silent {
				_, _ = io.Copy(io.Discard, p.c)
			}
			return
		}
		rw := struct {
			io.Reader
			io.Writer
		}{io.MultiReader(bytes.NewReader(head[:]), p.c), p.c}
		keys := func(cb func([]byte) bool) { cb(testHash[:]) }
		s, _, err := mse.ReceiveHandshake(context.Background(), rw, keys, selector)
		if err != nil {
			p.t.Errorf("fake MSE peer: %v", err)
			return
		}
		c := &streamConn{Conn: p.c, rw: s}
		br := bufio.NewReader(c)
		script(&peerConn{t: p.t, c: c, br: br, dec: wire.NewDecoder(br, 1<<20)})
	}
}

func rc4Only(mse.CryptoMethod) mse.CryptoMethod { return mse.CryptoMethodRC4 }

func TestEncryptionFallback(t *testing.T) {
	checkGoroutines(t)
	cases := []struct {
		name      string
		policy    EncryptionPolicy
		hints     discovery.Hints
		peer      func(*peerConn)
		outcome   Outcome
		enc       Encryption
		fallbacks Fallbacks
	}{
		{"plaintext peer, default policy", "", 0, seedScript, OutcomeOK, EncryptionNone, Fallbacks{}},
		{"MSE-only peer hangs up on plaintext", PreferPlaintext, 0, mseOnly(false, mse.DefaultCryptoSelector, seedScript),
			OutcomeOK, EncryptionHeader, Fallbacks{ToEncrypted: 1}},
		{"MSE-only peer waits in silence", PreferPlaintext, 0, mseOnly(true, rc4Only, seedScript),
			OutcomeOK, EncryptionRC4, Fallbacks{ToEncrypted: 1}},
		{"PEX hint: MSE first", PreferPlaintext, discovery.HintEncryption, mseOnly(false, rc4Only, seedScript),
			OutcomeOK, EncryptionRC4, Fallbacks{}},
		{"prefer_encrypted, plaintext-only peer", PreferEncrypted, 0, seedScript, OutcomeOK, EncryptionNone, Fallbacks{ToPlaintext: 1}},
		{"prefer_encrypted, MSE peer", PreferEncrypted, 0, mseOnly(false, rc4Only, seedScript), OutcomeOK, EncryptionRC4, Fallbacks{}},
		{"require, plaintext-only peer", RequireEncrypted, 0, seedScript, OutcomeReset, 0, Fallbacks{}},
		{"disable, MSE-only peer", DisableEncrypted, 0, mseOnly(false, rc4Only, seedScript), OutcomeReset, EncryptionNone, Fallbacks{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := startPeer(t, c.peer)
			cfg := testConfig()
			cfg.Encryption, cfg.QuietWindow, cfg.HandshakeTimeout = c.policy, 300*time.Millisecond, 500*time.Millisecond
			p, err := NewProber(cfg)
			if err != nil {
				t.Fatal(err)
			}
			o := p.Probe(context.Background(), Target{Torrent: testHash, Pieces: n, Addr: addr, Hints: c.hints})
			if o.Outcome != c.outcome || o.Encryption != c.enc || o.Fallbacks != c.fallbacks || o.Transport != TransportTCP {
				t.Fatalf("outcome %v (%v), encryption %v, fallbacks %+v, transport %v; want %v, %v, %+v, tcp",
					o.Outcome, o.Err, o.Encryption, o.Fallbacks, o.Transport, c.outcome, c.enc, c.fallbacks)
			}
			if c.outcome == OutcomeOK && (!o.Known || o.Last.Pieces != n) {
				t.Fatalf("progress: known %v, %d pieces", o.Known, o.Last.Pieces)
			}
			wantHint := o.Encryption == EncryptionHeader || o.Encryption == EncryptionRC4
			if got := o.Hints()&discovery.HintEncryption != 0; got != wantHint {
				t.Errorf("Hints() encryption bit %v, want %v", got, wantHint)
			}
		})
	}
}

func TestEncryptionPolicyInvalid(t *testing.T) {
	if _, err := NewProber(SessionConfig{Encryption: "sometimes"}); err == nil {
		t.Fatal("an unknown policy was accepted")
	}
}

// mseDial opens an MSE connection to the listener keyed with h, offering provides.
func mseDial(t *testing.T, addr netip.AddrPort, h metainfo.Hash, provides mse.CryptoMethod) (net.Conn, mse.CryptoMethod, error) {
	t.Helper()
	c := dialFrom(t, addr, "127.0.0.1")
	rw, m, err := mse.InitiateHandshake(c, h[:], nil, provides)
	if err != nil {
		return c, 0, err
	}
	return &streamConn{Conn: c, rw: rw}, m, nil
}

func TestListenerMSE(t *testing.T) {
	checkGoroutines(t)
	l, addr, obs, stop := testListener(t, testConfig(), ListenerConfig{
		HandshakeTimeout: time.Second,
		InfoHashes:       func() []metainfo.Hash { return []metainfo.Hash{otherHash, hashB, testHash} },
	})
	for _, c := range []struct {
		provides mse.CryptoMethod
		want     Encryption
	}{{mse.AllSupportedCrypto, EncryptionHeader}, {mse.CryptoMethodRC4, EncryptionRC4}} {
		conn, m, err := mseDial(t, addr, hashB, c.provides)
		if err != nil {
			t.Fatalf("MSE to the listener (provides %d): %v", c.provides, err)
		}
		sendHandshake(t, conn, hashB, fastExt)
		br := bufio.NewReader(conn)
		if hs, err := wire.ReadHandshake(br, nil); err != nil || metainfo.Hash(hs.InfoHash) != hashB {
			t.Fatalf("our handshake over MSE: %+v %v", hs, err)
		}
		if _, err := conn.Write(wire.AppendMessage(nil, wire.Message{Type: wire.Bitfield, Payload: bitfieldOf(9, 1, 2, 3)})); err != nil {
			t.Fatal(err)
		}
		// Half-close the TCP side under the stream: btda reads EOF after the bitfield.
		_ = conn.(*streamConn).Conn.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, br)
		o := <-obs
		want(t, o, OutcomeOK, true, 3)
		if o.Encryption != c.want || encryptionOf(m) != c.want || o.Transport != TransportTCP {
			t.Fatalf("encryption %v (dialler got %v), transport %v; want %v", o.Encryption, m, o.Transport, c.want)
		}
	}

	// An MSE handshake keyed with a torrent nobody watches, then garbage that is not MSE.
	if _, _, err := mseDial(t, addr, metainfo.Hash{0xEE}, mse.AllSupportedCrypto); err == nil {
		t.Fatal("MSE handshake with an unknown info hash succeeded")
	}
	g := dialFrom(t, addr, "127.0.0.1")
	_, _ = g.Write(bytes.Repeat([]byte("not MSE either "), 50))
	// (The receiver sends its key at once, before reading; the padding limit ends it.)
	if _, err := io.Copy(io.Discard, g); err != nil && !isReset(err) {
		t.Fatalf("garbage: %v", err)
	}
	stop()
	st := l.Stats()
	if st.Sessions != 2 || st.Encrypted != 2 || st.MSEUnknownHash != 1 || st.MSEFailed != 1 || st.NotBitTorrent != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMSEBothWays runs btda's prober against btda's listener with encryption required:
// the initiator and the receiver agree with each other, not only with anacrolix.
func TestMSEBothWays(t *testing.T) {
	checkGoroutines(t)
	_, addr, obs, _ := testListener(t, testConfig(), ListenerConfig{InfoHashes: func() []metainfo.Hash { return []metainfo.Hash{testHash} }})
	cfg := testConfig()
	cfg.Encryption, cfg.QuietWindow = RequireEncrypted, 300*time.Millisecond
	cfg.PeerID = pid("-DA0001-otherbtda123")
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := p.Probe(context.Background(), Target{Torrent: testHash, Pieces: n, Addr: addr})
	// btda's listener says have_none: progress 0, read through the encrypted stream.
	if o.Outcome != OutcomeOK || !o.Known || !o.Flags.HaveNone || o.Encryption != EncryptionHeader {
		t.Fatalf("outcome %v (%v), encryption %v", o.Outcome, o.Err, o.Encryption)
	}
	in := <-obs
	if in.Encryption != EncryptionHeader || in.Client.PeerID != cfg.PeerID {
		t.Fatalf("incoming side: encryption %v, peer id %q", in.Encryption, in.Client.PeerID)
	}
}

// TestStreamConnWriteAfterFailure: after a failed write the RC4 stream is unusable (mse's
// writer drops its cipher after a short write); the next Write must fail, not panic.
func TestStreamConnWriteAfterFailure(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	h := metainfo.Hash{1, 2, 3}
	done := make(chan error, 1)
	go func() {
		keys := func(yield func([]byte) bool) { yield(h[:]) }
		_, _, err := mse.ReceiveHandshake(context.Background(), b, keys, func(mse.CryptoMethod) mse.CryptoMethod { return mse.CryptoMethodRC4 })
		done <- err
	}()
	c, enc, err := initiateMSE(a, h, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if enc != EncryptionRC4 {
		t.Fatalf("encryption %v, want rc4", enc)
	}
	b.Close()
	for i := range 3 {
		if _, err := c.Write([]byte("after close")); err == nil {
			t.Errorf("write %d to a closed pipe succeeded", i)
		}
	}
}
