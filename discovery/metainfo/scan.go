package metainfo

import (
	"bytes"
	"fmt"
)

// Limits on the bencode structure, checked before any value is decoded. zeebo/bencode
// recurses without a depth limit and accepts non-canonical integers, so a strict pass over
// the bytes comes first: it bounds the work the decoder does on hostile input and finds the
// exact byte span of the info dictionary.
const (
	// MaxNesting is the deepest list/dict nesting accepted (libtorrent's bdecode uses 100).
	MaxNesting = 100
	// MaxItems is the most bencode values one document may hold.
	MaxItems = 2 << 20
)

// scanner validates one bencode document.
type scanner struct {
	data  []byte
	pos   int
	items int
	// infoStart/infoEnd is the span of the top-level "info" value, when present.
	infoStart, infoEnd int
	// strict is set while inside the info dictionary (or for a bare info dictionary):
	// there a repeated key is an error, since it makes the hashed bytes ambiguous.
	strict bool
	// dupOutside counts repeated keys outside the info dictionary (tolerated).
	dupOutside int
}

// syntaxError names the byte offset where the document went wrong.
type syntaxError struct {
	Offset int
	Msg    string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("bencode: offset %d: %s", e.Offset, e.Msg)
}

func (s *scanner) fail(format string, args ...any) error {
	return &syntaxError{Offset: s.pos, Msg: fmt.Sprintf(format, args...)}
}

// scanResult is what scanDocument found.
type scanResult struct {
	infoStart, infoEnd int // span of the top-level "info" value; -1 when absent
	trailing           int // bytes after the value
	dupOutside         int // repeated keys outside the info dictionary
}

// scanDocument checks that data is one canonical bencode value: integers without leading
// zeros or "-0", string lengths within the data, dictionary keys that are strings, nesting
// at most MaxNesting deep. A repeated key is refused inside the info dictionary, and for
// the "info" key itself; elsewhere it is counted. With bareInfo, data is an info dictionary
// itself (BEP 9 metadata): every key is checked, and nothing may follow the value. Otherwise
// trailing bytes are allowed and counted.
func scanDocument(data []byte, bareInfo bool) (scanResult, error) {
	s := &scanner{data: data, infoStart: -1, infoEnd: -1, strict: bareInfo}
	fail := scanResult{infoStart: -1, infoEnd: -1}
	if len(data) == 0 {
		return fail, s.fail("empty input")
	}
	if err := s.value(0); err != nil {
		return fail, err
	}
	if s.pos != len(data) && bareInfo {
		return fail, s.fail("%d bytes of trailing data after the top-level value", len(data)-s.pos)
	}
	return scanResult{infoStart: s.infoStart, infoEnd: s.infoEnd, trailing: len(data) - s.pos, dupOutside: s.dupOutside}, nil
}

func (s *scanner) value(depth int) error {
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of data")
	}
	s.items++
	if s.items > MaxItems {
		return s.fail("more than %d values", MaxItems)
	}
	switch c := s.data[s.pos]; {
	case c == 'i':
		return s.integer()
	case c >= '0' && c <= '9':
		_, err := s.str()
		return err
	case c == 'l':
		if depth >= MaxNesting {
			return s.fail("nesting deeper than %d", MaxNesting)
		}
		s.pos++
		for {
			if s.pos >= len(s.data) {
				return s.fail("unterminated list")
			}
			if s.data[s.pos] == 'e' {
				s.pos++
				return nil
			}
			if err := s.value(depth + 1); err != nil {
				return err
			}
		}
	case c == 'd':
		if depth >= MaxNesting {
			return s.fail("nesting deeper than %d", MaxNesting)
		}
		return s.dict(depth)
	default:
		return s.fail("unexpected byte %q", c)
	}
}

func (s *scanner) dict(depth int) error {
	s.pos++
	var (
		last   []byte
		keys   [][]byte // kept only while the keys are sorted; then seen takes over
		seen   map[string]struct{}
		sorted = true
	)
	for {
		if s.pos >= len(s.data) {
			return s.fail("unterminated dictionary")
		}
		if s.data[s.pos] == 'e' {
			s.pos++
			return nil
		}
		if c := s.data[s.pos]; c < '0' || c > '9' {
			return s.fail("dictionary key is not a string")
		}
		keyAt := s.pos
		key, err := s.str()
		if err != nil {
			return err
		}
		// Sorted keys cannot repeat; once the order breaks, remember every key so that a
		// repeated key (which decoders resolve differently) is still caught.
		if sorted && last != nil && bytes.Compare(key, last) <= 0 {
			sorted = false
			seen = make(map[string]struct{}, len(keys)+1)
			for _, k := range keys {
				seen[string(k)] = struct{}{}
			}
		}
		if sorted {
			keys = append(keys, key)
			last = key
		} else {
			if _, dup := seen[string(key)]; dup {
				if s.strict || (depth == 0 && string(key) == "info") {
					s.pos = keyAt
					return s.fail("duplicate dictionary key %q", truncate(string(key), 40))
				}
				s.dupOutside++
			}
			seen[string(key)] = struct{}{}
		}
		valueAt := s.pos
		isInfo := depth == 0 && !s.strict && string(key) == "info"
		if isInfo {
			s.strict = true
		}
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if isInfo {
			s.strict = false
			s.infoStart, s.infoEnd = valueAt, s.pos
		}
	}
}

func (s *scanner) integer() error {
	start := s.pos
	s.pos++ // 'i'
	end := bytes.IndexByte(s.data[s.pos:], 'e')
	if end < 0 {
		return s.fail("unterminated integer")
	}
	digits := s.data[s.pos : s.pos+end]
	neg := len(digits) > 0 && digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	switch {
	case len(digits) == 0:
		s.pos = start
		return s.fail("empty integer")
	case len(digits) > 19:
		s.pos = start
		return s.fail("integer does not fit in 64 bits")
	case digits[0] == '0' && (len(digits) > 1 || neg):
		s.pos = start
		return s.fail("non-canonical integer %q (leading zero or -0)", s.data[start+1:start+1+end])
	}
	var n uint64
	for _, d := range digits {
		if d < '0' || d > '9' {
			s.pos = start
			return s.fail("invalid integer %q", truncate(string(s.data[start+1:start+1+end]), 40))
		}
		n = n*10 + uint64(d-'0')
	}
	if (!neg && n > 1<<63-1) || (neg && n > 1<<63) {
		s.pos = start
		return s.fail("integer does not fit in 64 bits")
	}
	s.pos += end + 1
	return nil
}

// str reads a byte string and returns it (aliasing data).
func (s *scanner) str() ([]byte, error) {
	start := s.pos
	var n int
	i := s.pos
	for ; i < len(s.data) && s.data[i] != ':'; i++ {
		d := s.data[i]
		if d < '0' || d > '9' {
			return nil, s.fail("invalid string length")
		}
		if i-start >= 10 {
			return nil, s.fail("string length too long")
		}
		n = n*10 + int(d-'0')
	}
	if i >= len(s.data) {
		return nil, s.fail("unterminated string length")
	}
	if i-start > 1 && s.data[start] == '0' {
		return nil, s.fail("non-canonical string length (leading zero)")
	}
	i++ // ':'
	if n > len(s.data)-i {
		return nil, s.fail("string of %d bytes runs past the end of the data", n)
	}
	s.pos = i + n
	return s.data[i : i+n], nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
