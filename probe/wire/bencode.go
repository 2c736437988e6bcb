package wire

import (
	"strconv"

	"github.com/zeebo/bencode"
)

// maxBencodeDepth bounds list/dict nesting. zeebo/bencode recurses once per level, so an
// unbounded "llll…" would grow the stack with the message size.
const maxBencodeDepth = 32

// scanValue returns the length of the one bencoded value at the start of b. It checks the
// syntax, the nesting depth, and that every string length fits in b, so that handing
// b[:n] to zeebo/bencode can never make it allocate more than len(b) for a string.
// It is also how the end of the ut_metadata dict before its raw piece data is found.
func scanValue(b []byte) (int, error) {
	return scan(b, 0, 0)
}

func scan(b []byte, off, depth int) (int, error) {
	if off >= len(b) {
		return 0, violation(KindBencode, "truncated at byte %d", off)
	}
	switch c := b[off]; {
	case c == 'i':
		i := off + 1
		if i < len(b) && b[i] == '-' {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start || i-start > 19 || i >= len(b) || b[i] != 'e' {
			return 0, violation(KindBencode, "bad integer at byte %d", off)
		}
		return i + 1, nil
	case c >= '0' && c <= '9':
		i := off
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-off >= 9 { // more than 999,999,999 cannot fit a capped message anyway
				return 0, violation(KindBencode, "string length too long at byte %d", off)
			}
			n = n*10 + int(b[i]-'0')
			i++
		}
		if i >= len(b) || b[i] != ':' {
			return 0, violation(KindBencode, "bad string length at byte %d", off)
		}
		i++
		if n > len(b)-i {
			return 0, violation(KindBencode, "string of %d bytes at byte %d overruns the %d-byte input", n, off, len(b))
		}
		return i + n, nil
	case c == 'l' || c == 'd':
		if depth >= maxBencodeDepth {
			return 0, violation(KindBencode, "nesting deeper than %d at byte %d", maxBencodeDepth, off)
		}
		i := off + 1
		for {
			if i >= len(b) {
				return 0, violation(KindBencode, "unterminated %c at byte %d", c, off)
			}
			if b[i] == 'e' {
				return i + 1, nil
			}
			if c == 'd' && (b[i] < '0' || b[i] > '9') {
				return 0, violation(KindBencode, "dict key is not a string at byte %d", i)
			}
			end, err := scan(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = end
			if c == 'd' {
				if end, err = scan(b, i, depth+1); err != nil {
					return 0, err
				}
				i = end
			}
		}
	default:
		return 0, violation(KindBencode, "unexpected byte %q at byte %d", c, off)
	}
}

// decodeDict checks that b starts with one well-formed dict and decodes it into a map of
// raw values, so one field of an unexpected type does not lose the others. It returns the
// number of bytes the dict used.
func decodeDict(b []byte) (map[string]bencode.RawMessage, int, error) {
	n, err := scanValue(b)
	if err != nil {
		return nil, 0, err
	}
	if b[0] != 'd' {
		return nil, 0, violation(KindBencode, "not a dict (starts with %q)", b[0])
	}
	var m map[string]bencode.RawMessage
	if err := bencode.DecodeBytes(b[:n], &m); err != nil {
		return nil, 0, violation(KindBencode, "%v", err)
	}
	return m, n, nil
}

// rawInt reads a bencoded integer; ok is false for any other type.
func rawInt(r bencode.RawMessage) (int64, bool) {
	if len(r) < 3 || r[0] != 'i' || r[len(r)-1] != 'e' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(r[1:len(r)-1]), 10, 64)
	return v, err == nil
}

// rawBytes reads a bencoded string without copying; ok is false for any other type.
func rawBytes(r bencode.RawMessage) ([]byte, bool) {
	for i, c := range r {
		if c == ':' {
			n, err := strconv.Atoi(string(r[:i]))
			if err != nil || n != len(r)-i-1 {
				return nil, false
			}
			return r[i+1:], true
		}
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	return nil, false
}
