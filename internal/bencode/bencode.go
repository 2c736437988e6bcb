// Package bencode is btda's one bounded bencode reader. Every bencoded byte string btda
// receives (a .torrent file, BEP 9 metadata, BEP 10/11 extension messages, HTTP tracker
// replies) is read here first, because zeebo/bencode v1.0.0 recurses without a depth limit
// and allocates a string's declared length before reading it: a 12-byte input can ask for
// 2 GiB. Here nesting depth and the number of values are capped, every string length is
// checked against the bytes that remain, and integers must fit in an int64, so the work and
// memory spent on a document are bounded by its size.
//
// Errors are *Error values naming the byte offset and what was wrong.
package bencode

import (
	"fmt"
)

// Default limits, used for a zero Limits field.
const (
	// DefaultMaxDepth is the deepest list/dict nesting accepted (libtorrent's bdecode uses
	// 100 too).
	DefaultMaxDepth = 100
	// DefaultMaxItems is the most values one document may hold (dictionary keys not
	// counted).
	DefaultMaxItems = 2 << 20
)

// Limits bound the work done on one document. A zero (or negative) field takes its default.
type Limits struct {
	// MaxDepth is the most lists and dictionaries nested inside one another, the outermost
	// included: with MaxDepth 1, "li1ee" is accepted and "llee" is not.
	MaxDepth int
	// MaxItems is the most values in the document; dictionary keys are not counted.
	MaxItems int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultMaxItems
	}
	return l
}

// Trailing says what may follow the value at the start of the input.
type Trailing uint8

const (
	// TrailingNone means nothing may follow; the input is exactly one value.
	TrailingNone Trailing = iota
	// TrailingSpace means ASCII whitespace may follow (some trackers end a reply with a newline).
	TrailingSpace
	// TrailingAny means anything may follow, unread; Doc.Len says where the value ended (the raw
	// piece data after a ut_metadata dict, a newline after a .torrent).
	TrailingAny
)

// Options say what a document must satisfy beyond being well-formed bencode within Limits.
// The zero Options accept any well-formed value with nothing after it, within the default
// limits; repeated dictionary keys are then counted in Doc.Duplicates and the last value
// is kept.
type Options struct {
	Limits
	// Canonical refuses integers with a leading zero or "-0", and string lengths with a
	// leading zero: bytes that are hashed (a .torrent's info dictionary) must have one
	// spelling.
	Canonical bool
	// NoDuplicates refuses a repeated dictionary key anywhere.
	NoDuplicates bool
	// Key names a key of the top-level dictionary whose value's span Doc reports (a
	// .torrent's "info"). Because that span is what callers hash, a repeated Key, and a
	// repeated key anywhere inside its value, is refused even without NoDuplicates.
	Key string
	// Trailing says what may follow the value.
	Trailing Trailing
}

// Doc is what a scan found.
type Doc struct {
	// Len is the number of bytes the value took: input[Len:] is what followed it.
	Len int
	// Duplicates counts the repeated dictionary keys that were tolerated.
	Duplicates int
	// KeyStart and KeyEnd are the span of Options.Key's value in the top-level dictionary,
	// both -1 when there is no such key.
	KeyStart, KeyEnd int
}

// Error is a malformed or over-limit document: Offset is where in the input the offending
// value or byte starts.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("bencode: offset %d: %s", e.Offset, e.Msg)
}

// Raw is one bencoded value as it stands in the input (it aliases the input).
type Raw []byte

// Int returns r as an integer; ok is false when r is not exactly one bencoded integer.
func (r Raw) Int() (n int64, ok bool) {
	if len(r) == 0 || r[0] != 'i' {
		return 0, false
	}
	s := scanner{b: r}
	n, err := s.integer()
	if err != nil || s.pos != len(r) {
		return 0, false
	}
	return n, true
}

// Bytes returns r's content without copying; ok is false when r is not exactly one
// bencoded string.
func (r Raw) Bytes() (b []byte, ok bool) {
	if len(r) == 0 || !isDigit(r[0]) {
		return nil, false
	}
	s := scanner{b: r}
	b, err := s.str()
	if err != nil || s.pos != len(r) {
		return nil, false
	}
	return b, true
}

// Scan checks the value at the start of b against o without building anything.
func Scan(b []byte, o Options) (Doc, error) {
	s := newScanner(b, o, false)
	_, err := s.document(nil)
	return s.result(err)
}

// Decode decodes the value at the start of b into int64, string, []any or map[string]any
// (the types zeebo/bencode produces for an interface{}). Strings are copied.
func Decode(b []byte, o Options) (any, error) {
	s := newScanner(b, o, true)
	v, err := s.document(nil)
	if _, err := s.result(err); err != nil {
		return nil, err
	}
	return v, nil
}

// DecodeDict decodes the dictionary at the start of b into its raw values (aliasing b), so
// that one field of an unexpected type does not lose the others. The whole dictionary is
// checked against o first, values included.
func DecodeDict(b []byte, o Options) (map[string]Raw, Doc, error) {
	s := newScanner(b, o, false)
	if len(b) > 0 && b[0] != 'd' {
		doc, err := s.result(s.fail("not a dictionary (starts with %q)", b[0]))
		return nil, doc, err
	}
	m := map[string]Raw{}
	_, err := s.document(m)
	doc, err := s.result(err)
	if err != nil {
		return nil, doc, err
	}
	return m, doc, nil
}

// scanner reads one document. The same code validates, decodes and splits: build makes
// value return decoded values, and a non-nil raw map given for the top-level dictionary
// collects its raw values.
type scanner struct {
	b     []byte
	pos   int
	items int
	o     Options
	build bool
	// strict is set inside Key's value (or everywhere with NoDuplicates): a repeated key
	// there is an error.
	strict bool
	doc    Doc
}

func newScanner(b []byte, o Options, build bool) *scanner {
	o.Limits = o.withDefaults()
	return &scanner{b: b, o: o, build: build, strict: o.NoDuplicates, doc: Doc{KeyStart: -1, KeyEnd: -1}}
}

func (s *scanner) fail(format string, args ...any) error {
	return s.failAt(s.pos, format, args...)
}

func (s *scanner) failAt(off int, format string, args ...any) error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// document reads the top-level value and checks what follows it.
func (s *scanner) document(raw map[string]Raw) (any, error) {
	if len(s.b) == 0 {
		return nil, s.fail("empty input")
	}
	var v any
	var err error
	if raw != nil {
		s.items++ // what value would have counted
		v, err = s.dict(0, raw)
	} else {
		v, err = s.value(0)
	}
	if err != nil {
		return nil, err
	}
	end := s.pos
	switch s.o.Trailing {
	case TrailingAny:
		return v, nil
	case TrailingSpace:
		for ; s.pos < len(s.b); s.pos++ {
			if c := s.b[s.pos]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				break
			}
		}
	}
	if s.pos != len(s.b) {
		return nil, s.fail("%d bytes of trailing data after the value", len(s.b)-s.pos)
	}
	s.pos = end
	return v, nil
}

// result is the Doc for a finished scan; on error, an empty one.
func (s *scanner) result(err error) (Doc, error) {
	if err != nil {
		return Doc{KeyStart: -1, KeyEnd: -1}, err
	}
	s.doc.Len = s.pos
	return s.doc, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *scanner) value(depth int) (any, error) {
	if s.pos >= len(s.b) {
		return nil, s.fail("unexpected end of data")
	}
	s.items++
	if s.items > s.o.MaxItems {
		return nil, s.fail("more than %d values", s.o.MaxItems)
	}
	switch c := s.b[s.pos]; {
	case c == 'i':
		n, err := s.integer()
		if err != nil || !s.build {
			return nil, err
		}
		return n, nil
	case isDigit(c):
		str, err := s.str()
		if err != nil || !s.build {
			return nil, err
		}
		return string(str), nil
	case c == 'l':
		return s.list(depth)
	case c == 'd':
		return s.dict(depth, nil)
	default:
		return nil, s.fail("unexpected byte %q", c)
	}
}

func (s *scanner) list(depth int) (any, error) {
	if depth >= s.o.MaxDepth {
		return nil, s.fail("nesting deeper than %d", s.o.MaxDepth)
	}
	open := s.pos
	s.pos++
	var l []any
	if s.build {
		l = []any{}
	}
	for {
		if s.pos >= len(s.b) {
			return nil, s.failAt(open, "unterminated list")
		}
		if s.b[s.pos] == 'e' {
			s.pos++
			if !s.build {
				return nil, nil
			}
			return l, nil
		}
		v, err := s.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if s.build {
			l = append(l, v)
		}
	}
}

// dict reads a dictionary: into a map[string]any when building, into raw when given (the
// top-level dictionary of DecodeDict), else only checking it.
func (s *scanner) dict(depth int, raw map[string]Raw) (any, error) {
	if depth >= s.o.MaxDepth {
		return nil, s.fail("nesting deeper than %d", s.o.MaxDepth)
	}
	open := s.pos
	s.pos++
	var m map[string]any
	if s.build {
		m = map[string]any{}
	}
	// Without a map to look keys up in, repeats are found by order: sorted keys (the
	// canonical case) cannot repeat, so only the last one is needed; once the order breaks,
	// every key is remembered. The small buffer keeps typical dicts off the heap.
	var (
		buf    [8][]byte
		keys   = buf[:0]
		seen   map[string]struct{}
		sorted = true
	)
	for {
		if s.pos >= len(s.b) {
			return nil, s.failAt(open, "unterminated dictionary")
		}
		if s.b[s.pos] == 'e' {
			s.pos++
			if !s.build {
				return nil, nil
			}
			return m, nil
		}
		if !isDigit(s.b[s.pos]) {
			return nil, s.fail("dictionary key is not a string")
		}
		keyAt := s.pos
		key, err := s.str()
		if err != nil {
			return nil, err
		}
		var dup bool
		switch {
		case m != nil:
			_, dup = m[string(key)]
		case raw != nil:
			_, dup = raw[string(key)]
		default:
			if sorted && len(keys) > 0 && string(key) <= string(keys[len(keys)-1]) {
				sorted = false
				seen = make(map[string]struct{}, len(keys)+1)
				for _, k := range keys {
					seen[string(k)] = struct{}{}
				}
			}
			if sorted {
				keys = append(keys, key)
			} else {
				_, dup = seen[string(key)]
				seen[string(key)] = struct{}{}
			}
		}
		isKey := depth == 0 && s.o.Key != "" && string(key) == s.o.Key
		if dup {
			if s.strict || isKey {
				return nil, s.failAt(keyAt, "duplicate dictionary key %q", truncate(key, 40))
			}
			s.doc.Duplicates++
		}
		valueAt := s.pos
		wasStrict := s.strict
		if isKey {
			s.strict = true
		}
		v, err := s.value(depth + 1)
		if err != nil {
			return nil, err
		}
		s.strict = wasStrict
		if isKey {
			s.doc.KeyStart, s.doc.KeyEnd = valueAt, s.pos
		}
		if m != nil {
			m[string(key)] = v
		}
		if raw != nil {
			raw[string(key)] = Raw(s.b[valueAt:s.pos:s.pos])
		}
	}
}

// integer reads "i<digits>e". It fits in an int64 always; with Canonical it has no
// leading zero and is not "-0".
func (s *scanner) integer() (int64, error) {
	start := s.pos
	i := start + 1 // 'i'
	neg := i < len(s.b) && s.b[i] == '-'
	if neg {
		i++
	}
	digits := i
	var n uint64
	for ; i < len(s.b) && isDigit(s.b[i]); i++ {
		if i-digits >= 19 {
			return 0, s.failAt(start, "integer does not fit in 64 bits")
		}
		n = n*10 + uint64(s.b[i]-'0')
	}
	switch {
	case i >= len(s.b):
		return 0, s.failAt(start, "unterminated integer")
	case s.b[i] != 'e':
		return 0, s.failAt(start, "invalid integer: byte %q at offset %d", s.b[i], i)
	case i == digits:
		return 0, s.failAt(start, "empty integer")
	case (!neg && n > 1<<63-1) || (neg && n > 1<<63):
		return 0, s.failAt(start, "integer does not fit in 64 bits")
	case s.o.Canonical && s.b[digits] == '0' && (i-digits > 1 || neg):
		return 0, s.failAt(start, "non-canonical integer %q (leading zero or -0)", s.b[start+1:i])
	}
	s.pos = i + 1
	if neg {
		return -int64(n), nil // n == 1<<63 wraps to math.MinInt64, as wanted
	}
	return int64(n), nil
}

// str reads "<length>:<bytes>" and returns the bytes (aliasing the input). The length is
// checked against what remains before anything else happens.
func (s *scanner) str() ([]byte, error) {
	start := s.pos
	i := start
	var n int64
	for ; i < len(s.b) && isDigit(s.b[i]); i++ {
		if i-start >= 10 {
			return nil, s.failAt(start, "string length too long")
		}
		n = n*10 + int64(s.b[i]-'0')
	}
	switch {
	case i >= len(s.b):
		return nil, s.failAt(start, "unterminated string length")
	case s.b[i] != ':':
		return nil, s.failAt(start, "invalid string length: byte %q at offset %d", s.b[i], i)
	case s.o.Canonical && i-start > 1 && s.b[start] == '0':
		return nil, s.failAt(start, "non-canonical string length (leading zero)")
	}
	i++ // ':'
	if n > int64(len(s.b)-i) {
		return nil, s.failAt(start, "string of %d bytes runs past the end of the data (%d bytes left)", n, len(s.b)-i)
	}
	s.pos = i + int(n)
	return s.b[i:s.pos:s.pos], nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
