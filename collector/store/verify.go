package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"time"
)

// The store is verified before bbolt opens it, by reading the file here rather than through
// bbolt: bbolt trusts every page reference it follows and panics (or faults on the memory
// map) on a damaged one, and with NoFreelistSync it walks every page at Open in a goroutine
// of its own, where no recover() can catch the panic. The walk below visits the same pages
// in the same way, but checks each reference and offset first, so that once it passes,
// bbolt's walk cannot fail. It reads bbolt's file format version 2 (bbolt 1.x).
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	elemSize       = 16 // both branch and leaf page elements
	metaChecksumAt = 56 // the meta's FNV-64a checksum covers the 56 bytes before it
	metaSize       = 64

	flagBranch     = 0x01
	flagLeaf       = 0x02
	flagMeta       = 0x04
	flagFreelist   = 0x10
	bucketLeafFlag = 0x01
	noFreelist     = ^uint64(0)

	// maxDepth bounds the tree depth (bbolt's trees are a handful of levels deep), so a
	// damaged file cannot recurse without end.
	maxDepth = 64
	// maxProblems bounds the problems kept for the report; the total is still counted.
	maxProblems = 50
)

// native is bbolt's byte order: it writes its structures in the machine's own order.
var native = binary.NativeEndian

// DamagedError reports a store file whose bbolt structure or btda records are damaged.
type DamagedError struct {
	Path     string
	Problems []string // the first problems found, each naming the page or record
	Total    int      // how many problems were found in all
}

func (e *DamagedError) Error() string {
	more := ""
	if n := e.Total - 1; n > 0 {
		more = fmt.Sprintf(" (and %d more problems: run `btda store check %s` to list them)", n, e.Path)
	}
	return fmt.Sprintf("store %s is damaged: %s%s; btda left the file untouched: restore it from a backup, or move it aside to start with an empty store",
		e.Path, e.Problems[0], more)
}

// CheckReport summarizes a verified store file.
type CheckReport struct {
	Path     string
	Size     int64          // file size in bytes
	PageSize int            // bbolt page size
	Pages    uint64         // pages in use (bbolt's high-water mark)
	Txid     uint64         // last committed transaction
	Records  map[string]int // records per top-level bucket
	Notes    []string       // facts worth knowing that are not damage (e.g. one stale meta page)
}

// checker walks one store file.
type checker struct {
	f        io.ReaderAt
	path     string
	size     int64
	pageSize int
	hwm      uint64
	seen     map[uint64]bool
	problems []string
	total    int
	rep      *CheckReport
	records  bool // also decode every record (Check); Open checks the structure only
}

func (c *checker) problem(format string, args ...any) {
	c.total++
	if len(c.problems) < maxProblems {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// read returns n bytes at off, or nil when the file ends first.
func (c *checker) read(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+int64(n) > c.size {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := c.f.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("store %s: %w", c.path, err)
	}
	return b, nil
}

// boltMeta is a decoded meta page.
type boltMeta struct {
	pageSize  uint32
	root      uint64
	freelist  uint64
	pgid      uint64
	txid      uint64
	valid     bool
	invalidAs string
}

func decodeMeta(page []byte) boltMeta {
	var m boltMeta
	if len(page) < pageHeaderSize+metaSize {
		m.invalidAs = "cut short"
		return m
	}
	b := page[pageHeaderSize : pageHeaderSize+metaSize]
	h := fnv.New64a()
	h.Write(b[:metaChecksumAt])
	switch {
	case native.Uint32(b) != boltMagic:
		m.invalidAs = "no bbolt magic number"
	case native.Uint32(b[4:]) != boltVersion:
		m.invalidAs = fmt.Sprintf("bbolt format version %d, want %d", native.Uint32(b[4:]), boltVersion)
	case native.Uint64(b[metaChecksumAt:]) != h.Sum64():
		m.invalidAs = "checksum mismatch"
	default:
		m.valid = true
	}
	m.pageSize = native.Uint32(b[8:])
	m.root = native.Uint64(b[16:])
	m.freelist = native.Uint64(b[32:])
	m.pgid = native.Uint64(b[40:])
	m.txid = native.Uint64(b[48:])
	return m
}

// findPageSize follows bbolt's own search (DB.getPageSize): the first meta page if it is
// valid, else a valid second meta page at any power-of-two offset from 1 KiB to 16 MiB.
func (c *checker) findPageSize() (int, error) {
	if b, err := c.read(0, 4096); err != nil {
		return 0, err
	} else if m := decodeMeta(b); b != nil && m.valid {
		return int(m.pageSize), nil
	}
	for i := 0; i <= 14; i++ {
		pos := int64(1024) << i
		if pos >= c.size-1024 {
			break
		}
		n := int64(4096)
		if pos+n > c.size {
			n = c.size - pos
		}
		b, err := c.read(pos, int(n))
		if err != nil {
			return 0, err
		}
		if m := decodeMeta(b); m.valid {
			return int(m.pageSize), nil
		}
	}
	return 0, nil
}

// verifyFile checks f (of the given size) and returns its report, or a *DamagedError. With
// records, every record is decoded too; without, only what bbolt itself reads is checked
// (a record that does not decode is the collector's to skip and count).
func verifyFile(path string, f io.ReaderAt, size int64, records bool) (*CheckReport, error) {
	rep := &CheckReport{Path: path, Size: size, Records: map[string]int{}}
	c := &checker{f: f, path: path, size: size, seen: map[uint64]bool{}, rep: rep, records: records}
	if err := c.walkFile(); err != nil {
		return rep, err
	}
	if c.total > 0 {
		return rep, &DamagedError{Path: path, Problems: c.problems, Total: c.total}
	}
	return rep, nil
}

func (c *checker) walkFile() error {
	if c.size == 0 {
		c.problem("it is empty (0 bytes), and a btda store never is, so it was truncated")
		return nil
	}
	ps, err := c.findPageSize()
	if err != nil {
		return err
	}
	if ps == 0 {
		c.problem("neither of its two bbolt meta pages is valid (it is not a bbolt file, or its first pages were overwritten)")
		return nil
	}
	if ps < 512 || ps > 1<<24 || ps&(ps-1) != 0 {
		c.problem("its meta page gives a page size of %d bytes, not a power of two between 512 B and 16 MiB", ps)
		return nil
	}
	c.pageSize = ps
	c.rep.PageSize = ps
	var metas [2]boltMeta
	for i := range metas {
		b, err := c.read(int64(i*ps), pageHeaderSize+metaSize)
		if err != nil {
			return err
		}
		metas[i] = decodeMeta(b)
	}
	// bbolt uses the meta page with the higher transaction id if it is valid, else the other.
	a, b := metas[0], metas[1]
	if b.txid > a.txid {
		a, b = b, a
	}
	m := a
	if !a.valid {
		m = b
		c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("the newer meta page is invalid (%s): bbolt falls back to the older one", a.invalidAs))
	} else if !b.valid {
		c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("the older meta page is invalid (%s); bbolt uses the newer one and rewrites the other at the next commit", b.invalidAs))
	}
	if !m.valid {
		c.problem("neither of its two bbolt meta pages is valid (%s; %s)", metas[0].invalidAs, metas[1].invalidAs)
		return nil
	}
	if int(m.pageSize) != ps {
		c.problem("its meta pages disagree on the page size (%d and %d bytes)", ps, m.pageSize)
		return nil
	}
	c.hwm = m.pgid
	c.rep.Pages, c.rep.Txid = m.pgid, m.txid
	if m.pgid < 3 || m.pgid > uint64(c.size)/uint64(ps) {
		if m.pgid >= 3 && m.pgid <= uint64(1)<<48 {
			c.problem("it is %d bytes long but its %d pages of %d bytes need %d: it was truncated", c.size, m.pgid, ps, m.pgid*uint64(ps))
		} else {
			c.problem("its meta page claims %d pages, impossible for a file of %d bytes", m.pgid, c.size)
		}
		return nil
	}
	c.seen[0], c.seen[1] = true, true
	if m.freelist != noFreelist {
		if err := c.walkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.walkPage(m.root, "", "the root bucket", 0, nil, nil)
}

// claim reads page id with its overflow pages after checking the references; it returns
// nil (after recording the problem) if the page cannot be used.
func (c *checker) claim(id uint64, from string) ([]byte, uint16, uint16, error) {
	if id < 2 || id >= c.hwm {
		c.problem("%s points to page %d, outside the file's pages 2-%d", from, id, c.hwm-1)
		return nil, 0, 0, nil
	}
	if c.seen[id] {
		c.problem("page %d is referenced twice (again from %s)", id, from)
		return nil, 0, 0, nil
	}
	// One read for the page, a second only for its overflow pages.
	buf, err := c.read(int64(id)*int64(c.pageSize), c.pageSize)
	if err != nil || buf == nil {
		if err == nil {
			c.problem("page %d (from %s) lies past the end of the file", id, from)
		}
		return nil, 0, 0, err
	}
	hid, flags, count, overflow := native.Uint64(buf), native.Uint16(buf[8:]), native.Uint16(buf[10:]), native.Uint32(buf[12:])
	if hid != id {
		c.problem("page %d (from %s) identifies itself as page %d", id, from, hid)
		return nil, 0, 0, nil
	}
	if uint64(overflow) >= c.hwm-id {
		c.problem("page %d (from %s) claims %d overflow pages, past the file's last page %d", id, from, overflow, c.hwm-1)
		return nil, 0, 0, nil
	}
	for i := id; i <= id+uint64(overflow); i++ {
		if c.seen[i] {
			c.problem("page %d is referenced twice (again from %s)", i, from)
			return nil, 0, 0, nil
		}
		c.seen[i] = true
	}
	if overflow > 0 {
		rest, err := c.read(int64(id+1)*int64(c.pageSize), int(overflow)*c.pageSize)
		if err != nil || rest == nil {
			if err == nil {
				c.problem("page %d (from %s) lies past the end of the file", id, from)
			}
			return nil, 0, 0, err
		}
		buf = append(buf, rest...)
	}
	return buf, flags, count, nil
}

func (c *checker) walkFreelist(id uint64) error {
	buf, flags, count, err := c.claim(id, "the meta page's freelist")
	if buf == nil {
		return err
	}
	if flags != flagFreelist {
		c.problem("freelist page %d has type flags %#x, want %#x", id, flags, flagFreelist)
		return nil
	}
	n, at := uint64(count), pageHeaderSize
	if count == 0xFFFF { // bbolt's marker: the real count is the first element
		if len(buf) < pageHeaderSize+8 {
			c.problem("freelist page %d is cut short", id)
			return nil
		}
		n, at = native.Uint64(buf[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > uint64(len(buf)-at)/8 {
		c.problem("freelist page %d claims %d free pages, more than it holds", id, n)
		return nil
	}
	for i := uint64(0); i < n; i++ {
		if p := native.Uint64(buf[at+8*int(i):]); p < 2 || p >= c.hwm {
			c.problem("freelist page %d lists page %d, outside the file's pages", id, p)
			return nil
		}
	}
	return nil
}

// walkPage checks one branch or leaf page of a bucket and everything below it. bucket is
// the top-level bucket it belongs to ("" for the root bucket).
// keyRange bounds the keys of a page its parent branch points to: every key is at least
// lo (the branch element's key; nil: no bound) and below hi (the next element's key, or the
// parent's own bound; nil: none). bbolt's free-page scan checks the same and panics, out of
// reach of recover(), when it fails (a flipped byte in a branch key).
func (c *checker) keyRange(where string, first, last, lo, hi []byte) bool {
	if lo != nil && bytes.Compare(first, lo) < 0 {
		c.problem("%s: its first key %q is below its parent's key %q", where, printable(first), printable(lo))
		return false
	}
	if hi != nil && bytes.Compare(last, hi) >= 0 {
		c.problem("%s: its last key %q is not below the next key of its parent %q", where, printable(last), printable(hi))
		return false
	}
	return true
}

func (c *checker) walkPage(id uint64, bucket, from string, depth int, lo, hi []byte) error {
	if depth > maxDepth {
		c.problem("%s nests deeper than %d levels at page %d", from, maxDepth, id)
		return nil
	}
	buf, flags, count, err := c.claim(id, from)
	if buf == nil {
		return err
	}
	where := fmt.Sprintf("page %d", id)
	if bucket != "" {
		where += " of bucket " + bucket
	}
	switch flags {
	case flagBranch:
		if count == 0 {
			c.problem("%s is a branch page without elements", where)
			return nil
		}
		if int(count) > (len(buf)-pageHeaderSize)/elemSize {
			c.problem("%s claims %d elements, more than it holds", where, count)
			return nil
		}
		var prev []byte
		keys, children := make([][]byte, count), make([]uint64, count)
		for i := 0; i < int(count); i++ {
			off := pageHeaderSize + i*elemSize
			pos, ksize := int(native.Uint32(buf[off:])), int(native.Uint32(buf[off+4:]))
			child := native.Uint64(buf[off+8:])
			if off+pos+ksize > len(buf) || off+pos+ksize < off {
				c.problem("%s: element %d's key lies outside the page", where, i)
				return nil
			}
			key := buf[off+pos : off+pos+ksize]
			if i > 0 && bytes.Compare(prev, key) >= 0 {
				c.problem("%s: keys out of order at element %d", where, i)
				return nil
			}
			prev = key
			keys[i], children[i] = key, child
		}
		if !c.keyRange(where, keys[0], keys[len(keys)-1], lo, hi) {
			return nil
		}
		for i, child := range children {
			next := hi
			if i+1 < len(keys) {
				next = keys[i+1]
			}
			if err := c.walkPage(child, bucket, where, depth+1, keys[i], next); err != nil {
				return err
			}
		}
		return nil
	case flagLeaf:
		return c.walkLeaf(buf, count, bucket, where, depth, lo, hi)
	}
	c.problem("%s has type flags %#x, want a branch (%#x) or leaf (%#x) page", where, flags, flagBranch, flagLeaf)
	return nil
}

// walkLeaf checks the elements of a leaf page (paged or inline) and decodes its records.
func (c *checker) walkLeaf(buf []byte, count uint16, bucket, where string, depth int, lo, hi []byte) error {
	if int(count) > (len(buf)-pageHeaderSize)/elemSize {
		c.problem("%s claims %d elements, more than it holds", where, count)
		return nil
	}
	var prev []byte
	for i := 0; i < int(count); i++ {
		off := pageHeaderSize + i*elemSize
		flags := native.Uint32(buf[off:])
		pos, ksize, vsize := uint64(native.Uint32(buf[off+4:])), uint64(native.Uint32(buf[off+8:])), uint64(native.Uint32(buf[off+12:]))
		if uint64(off)+pos+ksize+vsize > uint64(len(buf)) {
			c.problem("%s: element %d lies outside the page", where, i)
			return nil
		}
		k := buf[uint64(off)+pos : uint64(off)+pos+ksize]
		v := buf[uint64(off)+pos+ksize : uint64(off)+pos+ksize+vsize]
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			c.problem("%s: keys out of order at element %d", where, i)
			return nil
		}
		prev = k
		if (i == 0 && !c.keyRange(where, k, k, lo, nil)) || (i == int(count)-1 && !c.keyRange(where, k, k, nil, hi)) {
			return nil
		}
		if flags&bucketLeafFlag == 0 {
			if bucket == "" {
				c.problem("%s: a value (key %q) where only buckets belong", where, printable(k))
				continue
			}
			c.rep.Records[bucket]++
			if !c.records {
				continue
			}
			if err := checkRecord(bucket, k, v); err != nil {
				c.problem("%s: %v", where, err)
			}
			continue
		}
		name := string(k)
		if bucket != "" {
			c.problem("%s: unexpected nested bucket %q in bucket %s", where, printable(k), bucket)
			continue
		}
		c.rep.Records[name] += 0
		if len(v) < 16 {
			c.problem("%s: bucket %s's header is %d bytes, want 16", where, name, len(v))
			continue
		}
		root := native.Uint64(v)
		if root != 0 {
			if err := c.walkPage(root, name, "bucket "+name, depth+1, nil, nil); err != nil {
				return err
			}
			continue
		}
		// An inline bucket: its leaf page follows the header inside the value.
		in := v[16:]
		if len(in) < pageHeaderSize {
			c.problem("%s: inline bucket %s is cut short", where, name)
			continue
		}
		if fl := native.Uint16(in[8:]); fl != flagLeaf {
			c.problem("%s: inline bucket %s has page flags %#x, want a leaf (%#x)", where, name, fl, flagLeaf)
			continue
		}
		if err := c.walkLeaf(in, native.Uint16(in[10:]), name, "inline bucket "+name+" in "+where, depth+1, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

func printable(b []byte) string {
	s := string(b)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// checkRecord decodes one record with the store's own decoders. Records of buckets btda
// does not know are left to Open's schema check.
func checkRecord(bucket string, k, v []byte) error {
	switch bucket {
	case string(bucketPeers):
		if len(k) != len(PeerKey{}) {
			return fmt.Errorf("peer key of %d bytes, want %d", len(k), len(PeerKey{}))
		}
		var p Peer
		if err := p.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("peer %x: %w", k[:4], err)
		}
	case string(bucketHosts):
		if len(k) != len(HostKey{}) {
			return fmt.Errorf("host key of %d bytes, want %d", len(k), len(HostKey{}))
		}
		var h Host
		if err := h.unmarshal(v); err != nil {
			return fmt.Errorf("host %x: %w", k[:4], err)
		}
	case string(bucketDownloads):
		if _, err := UnmarshalDownload(k, v); err != nil {
			return err
		}
	case string(bucketClaims):
		if len(k) != len(ClaimKey{}) || len(v) != 8 {
			return fmt.Errorf("claim: key %d bytes, value %d bytes, want %d and 8", len(k), len(v), len(ClaimKey{}))
		}
	case string(bucketTorrents):
		if len(k) != 20 || len(v) != 32 {
			return fmt.Errorf("torrent aggregate: key %d bytes, value %d bytes, want 20 and 32", len(k), len(v))
		}
	case string(bucketConfirmed):
		if len(k) != 24 || len(v) != 8 {
			return fmt.Errorf("confirmed aggregate: key %d bytes, value %d bytes, want 24 and 8", len(k), len(v))
		}
	case string(bucketCountries):
		if len(k) != 2 || len(v) != 16 {
			return fmt.Errorf("country aggregate: key %d bytes, value %d bytes, want 2 and 16", len(k), len(v))
		}
	case string(bucketNetworks):
		if len(k) == 0 || len(k) > maxString || len(v) != 16 {
			return fmt.Errorf("network aggregate %q: key %d bytes, value %d bytes, want 1-%d and 16", printable(k), len(k), len(v), maxString)
		}
	case string(bucketMeta):
		want := map[string]int{string(keySchema): 4, string(keySecret): 32, string(keyCreated): 8}
		if n, ok := want[string(k)]; ok && len(v) != n {
			return fmt.Errorf("meta %s: %d bytes, want %d", k, len(v), n)
		}
	}
	return nil
}

// openVerified opens an existing store file read-only, takes a shared lock on it (waiting
// up to timeout for a writer to let go) and verifies it (its records too if records). The caller closes the file, which
// drops the lock. It returns (nil, nil, nil) when the file does not exist.
func openVerified(path string, timeout time.Duration, records bool) (*os.File, *CheckReport, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("store %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("store %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, fmt.Errorf("store %s is not a regular file (%s): storage.path must name a file", path, fi.Mode().Type())
	}
	if err := lockShared(f, timeout); err != nil {
		_ = f.Close()
		if errors.Is(err, errLockTimeout) {
			return nil, nil, fmt.Errorf("store %s is %w (waited %s)", path, ErrLocked, timeout)
		}
		return nil, nil, fmt.Errorf("store %s: lock: %w", path, err)
	}
	// The size is read under the lock: a writer may have grown the file meanwhile.
	if fi, err = f.Stat(); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("store %s: %w", path, err)
	}
	rep, err := verifyFile(path, f, fi.Size(), records)
	if err != nil {
		_ = f.Close()
		return nil, rep, err
	}
	return f, rep, nil
}
