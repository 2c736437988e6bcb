package probe

import (
	"bytes"
	"errors"
	"testing"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// FuzzAcceptStream runs the listener's first steps (the sniff, the MSE receiver with two
// watched keys, then the BitTorrent handshake over the resulting stream) on arbitrary
// peer bytes: it must never panic or hang, and a failure is always one of the listener's
// reasons.
func FuzzAcceptStream(f *testing.F) {
	f.Add(wire.AppendHandshake(nil, wire.Handshake{InfoHash: testHash}))
	f.Add([]byte(protocolPrefix))
	f.Add(bytes.Repeat([]byte{0xAB}, 96))
	f.Add(bytes.Repeat([]byte{0}, 700))
	keys := func() []metainfo.Hash { return []metainfo.Hash{testHash, hashB} }
	f.Fuzz(func(t *testing.T, in []byte) {
		sr, err := acceptStream(&memConn{r: bytes.NewReader(in)}, keys)
		if err != nil {
			if !errors.Is(err, errMSE) && !errors.Is(err, errMSEUnknownInfoHash) && !errors.Is(err, errSniff) &&
				!errors.Is(err, wire.ErrNotBitTorrent) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if sr.enc == EncryptionNone && !bytes.HasPrefix(in, []byte(protocolPrefix)) {
			t.Fatalf("plaintext stream without the protocol prefix: %q", in[:min(len(in), 20)])
		}
		hs, err := wire.ReadHandshake(sr.conn, nil)
		if err == nil && sr.enc == EncryptionNone && !bytes.Equal(hs.InfoHash[:], in[28:48]) {
			t.Fatalf("handshake info hash %x, input has %x", hs.InfoHash, in[28:48])
		}
	})
}
