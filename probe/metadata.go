package probe

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe/wire"
)

// DefaultMaxMetadataSize caps the metadata_size a peer may announce (BEP 9). Real info
// dictionaries are far smaller; a bigger claim is a lie or an attack on our memory.
const DefaultMaxMetadataSize = 16 << 20

// MetadataConfig configures FetchMetadata. Zero fields take the defaults in the comments.
type MetadataConfig struct {
	PeerID     [20]byte // ours; zero: PeerIDPrefix plus 12 random characters
	Version    string   // sent as `v` = "btda <Version>"; "" sends "btda dev"
	ListenPort uint16   // sent as `p` in our extension handshake; 0 leaves it out

	Parallel         int           // peers asked at once; default 4
	MaxSize          int           // largest metadata_size accepted; default DefaultMaxMetadataSize
	DialTimeout      time.Duration // TCP connect; default 5 s
	HandshakeTimeout time.Duration // connect → the peer's extension handshake; default 10 s
	IdleTimeout      time.Duration // longest wait for the next metadata piece; default 10 s
	PeerTimeout      time.Duration // hard cap on one peer; default 60 s
	Window           int           // piece requests outstanding per peer; default 8

	// Budget caps large message-body buffers (see SessionConfig.Budget); share the
	// Prober's (Prober.Config().Budget) to bound sessions and fetches together. nil: one
	// of DefaultBufferBudget bytes for this call.
	Budget *wire.Budget

	// Dial replaces net.Dialer.DialContext (tests, proxies). It must honour ctx.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger // default: discard
}

func (c *MetadataConfig) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 5*time.Second)
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.IdleTimeout, 10*time.Second)
	def(&c.PeerTimeout, 60*time.Second)
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxMetadataSize
	}
	c.MaxSize = min(c.MaxSize, metainfo.MaxInfoSize)
	if c.Window <= 0 {
		c.Window = 8
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	// The session defaults already know how to make a peer id and a logger.
	sc := SessionConfig{PeerID: c.PeerID, Logger: c.Logger, Budget: c.Budget}
	if err := sc.setDefaults(); err != nil {
		return err
	}
	c.PeerID, c.Logger, c.Budget = sc.PeerID, sc.Logger, sc.Budget
	if c.Dial == nil {
		d := &net.Dialer{}
		c.Dial = d.DialContext
	}
	return nil
}

// Reasons a peer failed to give us the metadata: a bounded set, fit for a metric label.
const (
	MetadataReasonBadAddress   = "bad_address"        // invalid address or port 0
	MetadataReasonDial         = "dial"               // could not connect
	MetadataReasonHandshake    = "handshake"          // no valid BEP 3 handshake, or it closed
	MetadataReasonInfoHash     = "info_hash_mismatch" // answered for another torrent
	MetadataReasonNoExtensions = "no_extensions"      // no BEP 10 extension protocol
	MetadataReasonNoUTMetadata = "no_ut_metadata"     // no ut_metadata, or no metadata_size
	MetadataReasonTooLarge     = "metadata_too_large" // metadata_size above the cap
	MetadataReasonRejected     = "rejected"           // answered a request with reject
	MetadataReasonBadPiece     = "bad_piece"          // wrong length, total_size or unrequested piece
	MetadataReasonHashMismatch = "hash_mismatch"      // assembled bytes do not hash to the magnet
	MetadataReasonBadInfo      = "bad_info"           // hashes match but the info dict is unusable
	MetadataReasonProtocol     = "protocol_violation" // malformed or oversized message
	MetadataReasonTimeout      = "timeout"            // idle, handshake or per-peer time limit
	MetadataReasonClosed       = "closed"             // the peer closed or reset mid-transfer
	MetadataReasonCanceled     = "canceled"           // the caller's context ended
	MetadataReasonNotTried     = "not_tried"          // never dialled: the context ended first
	MetadataReasonLocal        = "local_error"        // our side failed (descriptors, ports, buffer budget)
)

const mdReadBuffer = 4096

// MetadataPeerError is why one peer did not give us the metadata.
type MetadataPeerError struct {
	Addr   netip.AddrPort
	Reason string // one of the MetadataReason constants
	Err    error
}

func (e *MetadataPeerError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s: %s", e.Addr, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %v", e.Addr, e.Reason, e.Err)
}

func (e *MetadataPeerError) Unwrap() error { return e.Err }

// MetadataError is returned when no peer gave valid metadata. It lists every peer's reason.
type MetadataError struct {
	Torrent string // the magnet's label
	Peers   []*MetadataPeerError
}

func (e *MetadataError) Error() string {
	if len(e.Peers) == 0 {
		return fmt.Sprintf("metadata %s: no peers to ask", e.Torrent)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "metadata %s: none of %d peers gave valid metadata: ", e.Torrent, len(e.Peers))
	for i, p := range e.Peers {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// FetchMetadata fetches the info dictionary named by m from peers (then m.Peers, the
// magnet's x.pe peers) with ut_metadata (BEP 9), asking up to cfg.Parallel peers at once. Each peer's copy is assembled on its
// own and hash-checked against the magnet (SHA-1 for btih, SHA-256 for btmh), so a peer
// sending wrong bytes is identified and dropped; the first verified copy wins and the
// other transfers are stopped. When every peer fails the error is a *MetadataError naming
// each peer's reason. It returns when ctx is done, with no goroutine left behind.
func FetchMetadata(ctx context.Context, cfg MetadataConfig, m *metainfo.Magnet, peers []netip.AddrPort) (*metainfo.Torrent, error) {
	if m == nil || (m.InfoHashV1.IsZero() && m.InfoHashV2.IsZero()) {
		return nil, errors.New("metadata: no magnet hash to fetch")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	f := &fetcher{cfg: cfg, m: m, hash: m.Hash(),
		log: cfg.Logger.With("component", "metadata", "torrent", m.Label())}
	ext := wire.ExtHandshake{M: map[string]int{wire.ExtMetadata: int(wire.OurMetadataID)},
		V: "btda " + cfg.Version, P: int(cfg.ListenPort), Reqq: -1, MetadataSize: -1, CompleteAgo: -1}
	payload, err := wire.AppendExtHandshake(nil, ext)
	if err != nil {
		return nil, fmt.Errorf("metadata: encoding our extension handshake: %w", err)
	}
	f.extMsg = wire.AppendMessage(nil, wire.Message{Type: wire.Extended, Payload: payload})

	// Unique peers, in the caller's order (the caller puts the likeliest first), then the
	// magnet's own x.pe peers.
	seen := make(map[netip.AddrPort]bool, len(peers)+len(m.Peers))
	var list []netip.AddrPort
	for _, p := range append(peers[:len(peers):len(peers)], m.Peers...) {
		p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
		if !seen[p] {
			seen[p] = true
			list = append(list, p)
		}
	}
	errs := make([]*MetadataPeerError, len(list))

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner *metainfo.Torrent
		next   int
	)
	// take hands out the next peer index, or -1 when there is none or we are done.
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		if winner != nil || fctx.Err() != nil || next >= len(list) {
			return -1
		}
		next++
		return next - 1
	}
	for range min(cfg.Parallel, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := take(); i >= 0; i = take() {
				t, perr := f.fromPeer(fctx, list[i])
				mu.Lock()
				if perr == nil && winner == nil {
					winner = t
					cancel() // stop the other transfers
				}
				errs[i] = perr
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if winner != nil {
		return winner, nil
	}
	me := &MetadataError{Torrent: m.Label()}
	for i, e := range errs {
		if e == nil {
			e = &MetadataPeerError{Addr: list[i], Reason: MetadataReasonNotTried, Err: ctx.Err()}
		}
		me.Peers = append(me.Peers, e)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%w)", me, ctx.Err())
	}
	return nil, me
}

// fetcher is the shared state of one FetchMetadata call.
type fetcher struct {
	cfg    MetadataConfig
	m      *metainfo.Magnet
	hash   metainfo.Hash // the wire hash we handshake with
	extMsg []byte
	log    *slog.Logger
}

// fromPeer fetches and verifies the whole info dictionary from one peer.
func (f *fetcher) fromPeer(ctx context.Context, addr netip.AddrPort) (*metainfo.Torrent, *MetadataPeerError) {
	fail := func(reason string, err error) (*metainfo.Torrent, *MetadataPeerError) {
		if ctx.Err() != nil && reason != MetadataReasonHashMismatch && reason != MetadataReasonBadPiece {
			reason, err = MetadataReasonCanceled, ctx.Err()
		}
		f.log.Debug("metadata peer failed", "peer", addr, "reason", reason, "err", err)
		return nil, &MetadataPeerError{Addr: addr, Reason: reason, Err: err}
	}
	if !addr.IsValid() || addr.Port() == 0 {
		return fail(MetadataReasonBadAddress, nil)
	}
	pctx, cancel := context.WithTimeout(ctx, f.cfg.PeerTimeout)
	defer cancel()
	dctx, dcancel := context.WithTimeout(pctx, f.cfg.DialTimeout)
	conn, err := f.cfg.Dial(dctx, "tcp", addr.String())
	dcancel()
	if err != nil {
		if localErrno(err) {
			return fail(MetadataReasonLocal, err)
		}
		return fail(MetadataReasonDial, err)
	}
	defer conn.Close()
	// A done context (caller, winner elsewhere, or the per-peer cap) closes the
	// connection, which unblocks any read or write at once.
	stop := context.AfterFunc(pctx, func() { conn.Close() })
	defer stop()

	info, reason, err := f.transfer(conn)
	if err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			reason, err = MetadataReasonTimeout, fmt.Errorf("no metadata within %v", f.cfg.PeerTimeout)
		}
		return fail(reason, err)
	}
	// Check the hashes first, to tell a lying peer from an unusable torrent.
	if !f.m.InfoHashV1.IsZero() && metainfo.Hash(sha1.Sum(info)) != f.m.InfoHashV1 {
		return fail(MetadataReasonHashMismatch, fmt.Errorf("%d bytes with SHA-1 %x, want %s", len(info), sha1.Sum(info), f.m.InfoHashV1))
	}
	if !f.m.InfoHashV2.IsZero() && metainfo.HashV2(sha256.Sum256(info)) != f.m.InfoHashV2 {
		return fail(MetadataReasonHashMismatch, fmt.Errorf("%d bytes with SHA-256 %x, want %s", len(info), sha256.Sum256(info), f.m.InfoHashV2))
	}
	t, err := metainfo.FromInfo(info, f.m)
	if err != nil {
		return fail(MetadataReasonBadInfo, err)
	}
	f.log.Debug("metadata fetched", "peer", addr, "bytes", len(info))
	return t, nil
}

func readReason(err error) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return MetadataReasonTimeout
	case localErrno(err), errors.Is(err, wire.ErrBudget):
		return MetadataReasonLocal
	}
	return MetadataReasonClosed
}

// transfer runs the handshakes and fetches every metadata piece over conn. It returns the
// assembled bytes, or a reason and an error.
func (f *fetcher) transfer(conn net.Conn) ([]byte, string, error) {
	cfg := f.cfg
	br := bufio.NewReaderSize(conn, mdReadBuffer)
	// With no metadata we do not know the piece count, so bitfields and haves cannot be
	// checked: the decoder returns only extended messages and skips the rest (ids it does
	// not know included) unread, with only the frame length bounded
	// (wire.DefaultMaxExtendedLen covers a bitfield for wire.MaxPieces pieces).
	dec := wire.NewDecoder(br, wire.PiecesUnknown)
	dec.SetSkip(func(t wire.Type) bool { return t != wire.Extended })
	dec.SetBudget(cfg.Budget)
	defer dec.Reset(nil, wire.PiecesUnknown) // gives back any budget
	var m wire.Message
	// next returns the next extended message's id and payload, valid until the next call.
	next := func(deadline time.Time) (uint8, []byte, string, error) {
		if err := conn.SetReadDeadline(deadline); err != nil {
			return 0, nil, MetadataReasonLocal, err
		}
		if err := dec.Next(&m); err != nil {
			var v *wire.Violation
			if errors.As(err, &v) {
				return 0, nil, MetadataReasonProtocol, err
			}
			return 0, nil, readReason(err), err
		}
		return m.ExtendedID, m.Payload, "", nil
	}
	hsDeadline := time.Now().Add(cfg.HandshakeTimeout)
	if err := conn.SetDeadline(hsDeadline); err != nil {
		return nil, MetadataReasonLocal, err
	}
	ours := wire.Handshake{Reserved: wire.OurReserved, InfoHash: f.hash, PeerID: cfg.PeerID}
	hs, err := wire.Exchange(conn, br, ours, nil, nil)
	switch {
	case errors.Is(err, wire.ErrSendHandshake):
		return nil, MetadataReasonHandshake, err
	case errors.Is(err, wire.ErrInfoHashMismatch):
		return nil, MetadataReasonInfoHash, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, MetadataReasonTimeout, fmt.Errorf("handshake: %w", err)
	case err != nil:
		return nil, MetadataReasonHandshake, err
	}
	if !hs.Reserved.Extended() {
		return nil, MetadataReasonNoExtensions, errors.New("handshake lacks the BEP 10 extension bit")
	}
	if _, err := conn.Write(f.extMsg); err != nil {
		return nil, MetadataReasonClosed, err
	}

	// Their extension handshake tells us their ut_metadata id and the size.
	var peerID uint8
	size := -1
	for {
		id, payload, reason, err := next(hsDeadline)
		if err != nil {
			return nil, reason, fmt.Errorf("waiting for the extension handshake: %w", err)
		}
		if id != 0 {
			continue // nothing else is useful before it
		}
		h, err := wire.ParseExtHandshake(payload)
		if err != nil {
			return nil, MetadataReasonProtocol, err
		}
		peerID, size = uint8(h.M[wire.ExtMetadata]), h.MetadataSize
		break
	}
	switch {
	case peerID == 0:
		return nil, MetadataReasonNoUTMetadata, errors.New("extension handshake lacks ut_metadata")
	case size <= 0:
		return nil, MetadataReasonNoUTMetadata, errors.New("extension handshake lacks metadata_size (the peer has no metadata)")
	case size > cfg.MaxSize:
		return nil, MetadataReasonTooLarge, fmt.Errorf("metadata_size %d, more than the %d byte cap", size, cfg.MaxSize)
	}

	// Pieces are stored as they arrive, so memory follows the bytes really sent, not the
	// size a peer claimed.
	n := (size + wire.MetadataBlock - 1) / wire.MetadataBlock
	pieces := make([][]byte, n)
	got, requested := 0, 0
	request := func() error {
		var w []byte
		for requested < n && requested-got < cfg.Window {
			w = wire.AppendMessage(w, wire.Message{Type: wire.Extended, ExtendedID: peerID,
				Payload: wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataRequest, Piece: requested})})
			requested++
		}
		if len(w) == 0 {
			return nil
		}
		_ = conn.SetWriteDeadline(time.Now().Add(cfg.IdleTimeout))
		_, err := conn.Write(w)
		return err
	}
	if err := request(); err != nil {
		return nil, MetadataReasonClosed, err
	}
	for got < n {
		id, payload, reason, err := next(time.Now().Add(cfg.IdleTimeout))
		if err != nil {
			return nil, reason, fmt.Errorf("after %d of %d pieces: %w", got, n, err)
		}
		if id != wire.OurMetadataID {
			continue // a late handshake update, PEX we did not ask for, …
		}
		md, err := wire.ParseMetadataMsg(payload)
		if err != nil {
			return nil, MetadataReasonProtocol, err
		}
		switch md.Type {
		case wire.MetadataReject:
			return nil, MetadataReasonRejected, fmt.Errorf("piece %d rejected", md.Piece)
		case wire.MetadataRequest:
			// We have nothing to serve: say so, so the peer asks someone else.
			w := wire.AppendMessage(nil, wire.Message{Type: wire.Extended, ExtendedID: peerID,
				Payload: wire.AppendMetadataMsg(nil, wire.MetadataMsg{Type: wire.MetadataReject, Piece: md.Piece})})
			_ = conn.SetWriteDeadline(time.Now().Add(cfg.IdleTimeout))
			if _, err := conn.Write(w); err != nil {
				return nil, MetadataReasonClosed, err
			}
			continue
		}
		// A data message.
		if md.TotalSize != size {
			return nil, MetadataReasonBadPiece, fmt.Errorf("piece %d says total_size %d, the handshake said %d", md.Piece, md.TotalSize, size)
		}
		if md.Piece >= requested || pieces[md.Piece] != nil {
			return nil, MetadataReasonBadPiece, fmt.Errorf("piece %d was not requested or came twice", md.Piece)
		}
		// Every piece is 16 KiB but the last, which holds the rest: 1 to 16384 bytes.
		want := min(wire.MetadataBlock, size-md.Piece*wire.MetadataBlock)
		if len(md.Data) != want {
			return nil, MetadataReasonBadPiece, fmt.Errorf("piece %d of %d bytes, want %d", md.Piece, len(md.Data), want)
		}
		pieces[md.Piece] = append([]byte(nil), md.Data...)
		got++
		if err := request(); err != nil {
			return nil, MetadataReasonClosed, err
		}
	}
	info := make([]byte, 0, size)
	for _, p := range pieces {
		info = append(info, p...)
	}
	if len(info) != size {
		// Cannot happen given the per-piece checks; kept as the final guard.
		return nil, MetadataReasonBadPiece, fmt.Errorf("assembled %d bytes, metadata_size %d", len(info), size)
	}
	return info, "", nil
}
