package dht

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
)

// The node file keeps the DHT nodes that were good at shutdown so that the next start does
// not depend on the bootstrap routers. Format: the 8-byte magic, then fixed 38-byte records
// (20-byte node id, 16-byte IPv6 or IPv4-mapped address, 2-byte big-endian port), the same
// record layout as BEP 32 "nodes6". A fixed layout makes a truncated or foreign file easy to
// recognise.
const (
	nodesFileMagic = "btdadht1"
	nodeRecordSize = 20 + 16 + 2
	// MaxSavedNodes bounds both the file we write and how much of a file we read.
	MaxSavedNodes = 512
)

// SavedNode is one DHT node remembered across restarts.
type SavedNode struct {
	ID   [20]byte
	Addr netip.AddrPort
}

// usable reports whether a node is worth contacting: a real unicast address, a port, an id.
func (n SavedNode) usable() bool {
	a := n.Addr.Addr()
	return n.ID != [20]byte{} && n.Addr.Port() != 0 && a.IsValid() &&
		!a.IsUnspecified() && !a.IsMulticast()
}

// ParseNodes decodes a node file. It rejects a wrong magic or a length that is not a whole
// number of records, and skips records that cannot be contacted (zero id, port or address).
func ParseNodes(b []byte) ([]SavedNode, error) {
	if !bytes.HasPrefix(b, []byte(nodesFileMagic)) {
		return nil, errors.New("not a btda DHT node file (bad magic)")
	}
	b = b[len(nodesFileMagic):]
	if len(b)%nodeRecordSize != 0 {
		return nil, fmt.Errorf("truncated: %d bytes after the magic is not a multiple of %d",
			len(b), nodeRecordSize)
	}
	n := len(b) / nodeRecordSize
	if n > MaxSavedNodes {
		return nil, fmt.Errorf("%d nodes, more than the %d btda ever writes", n, MaxSavedNodes)
	}
	nodes := make([]SavedNode, 0, n)
	for i := range n {
		r := b[i*nodeRecordSize : (i+1)*nodeRecordSize]
		var sn SavedNode
		copy(sn.ID[:], r[:20])
		ip := netip.AddrFrom16([16]byte(r[20:36])).Unmap()
		sn.Addr = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(r[36:]))
		if sn.usable() {
			nodes = append(nodes, sn)
		}
	}
	return nodes, nil
}

// MarshalNodes encodes nodes in the node file format, skipping unusable ones and keeping at
// most MaxSavedNodes.
func MarshalNodes(nodes []SavedNode) []byte {
	b := make([]byte, 0, len(nodesFileMagic)+min(len(nodes), MaxSavedNodes)*nodeRecordSize)
	b = append(b, nodesFileMagic...)
	kept := 0
	for _, n := range nodes {
		if kept == MaxSavedNodes {
			break
		}
		if !n.usable() {
			continue
		}
		b = append(b, n.ID[:]...)
		ip := n.Addr.Addr().As16()
		b = append(b, ip[:]...)
		b = binary.BigEndian.AppendUint16(b, n.Addr.Port())
		kept++
	}
	return b
}

// LoadNodes reads a node file. A missing file is not an error (first start).
func LoadNodes(path string) ([]SavedNode, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read one byte more than the largest valid file so an oversized file is refused
	// without reading all of it.
	limit := int64(len(nodesFileMagic) + (MaxSavedNodes+1)*nodeRecordSize)
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, limit)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	nodes, err := ParseNodes(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return nodes, nil
}

// SaveNodes writes a node file atomically (temporary file in the same directory, fsync,
// rename) so that a crash leaves either the old or the new file, never a torn one.
func SaveNodes(path string, nodes []SavedNode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if _, err := tmp.Write(MarshalNodes(nodes)); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	return nil
}
