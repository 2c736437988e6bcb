package tracker

import (
	"fmt"
	"strconv"
)

// maxBencodeDepth bounds list/dict nesting. Tracker replies nest three levels at most
// (dict → peers list → peer dict); a deeper body is garbage, not worth a deep stack.
const maxBencodeDepth = 16

// decodeBencode decodes one bencoded value from b into int64, string, []any or
// map[string]any. It is a small strict decoder of its own because zeebo/bencode v1.0.0
// allocates a string's declared length before reading it (a 12-byte body can ask for
// 2 GiB) and recurses without a depth limit; here every length is checked against the
// bytes that remain. Trailing whitespace is tolerated (some trackers end with a newline).
func decodeBencode(b []byte) (any, error) {
	d := bdecoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	for ; d.pos < len(b); d.pos++ {
		switch b[d.pos] {
		case ' ', '\t', '\r', '\n':
		default:
			return nil, fmt.Errorf("bencode: %d unexpected bytes after the value at offset %d", len(b)-d.pos, d.pos)
		}
	}
	return v, nil
}

type bdecoder struct {
	b   []byte
	pos int
}

func (d *bdecoder) value(depth int) (any, error) {
	if d.pos >= len(d.b) {
		return nil, fmt.Errorf("bencode: unexpected end of input at offset %d", d.pos)
	}
	switch c := d.b[d.pos]; {
	case c == 'i':
		return d.integer()
	case c >= '0' && c <= '9':
		return d.str()
	case c == 'l', c == 'd':
		if depth >= maxBencodeDepth {
			return nil, fmt.Errorf("bencode: nesting deeper than %d at offset %d", maxBencodeDepth, d.pos)
		}
		if c == 'l' {
			return d.list(depth)
		}
		return d.dict(depth)
	default:
		return nil, fmt.Errorf("bencode: unexpected byte %q at offset %d", c, d.pos)
	}
}

func (d *bdecoder) integer() (int64, error) {
	start := d.pos
	d.pos++ // 'i'
	end := d.pos
	for end < len(d.b) && d.b[end] != 'e' {
		end++
		if end-d.pos > 20 {
			return 0, fmt.Errorf("bencode: integer at offset %d is too long", start)
		}
	}
	if end >= len(d.b) {
		return 0, fmt.Errorf("bencode: unterminated integer at offset %d", start)
	}
	n, err := strconv.ParseInt(string(d.b[d.pos:end]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bencode: bad integer %q at offset %d", d.b[d.pos:end], start)
	}
	d.pos = end + 1
	return n, nil
}

func (d *bdecoder) str() (string, error) {
	start := d.pos
	n := 0
	for d.pos < len(d.b) && d.b[d.pos] >= '0' && d.b[d.pos] <= '9' {
		n = n*10 + int(d.b[d.pos]-'0')
		d.pos++
		if n > len(d.b) {
			return "", fmt.Errorf("bencode: string at offset %d claims more bytes than the %d-byte input", start, len(d.b))
		}
	}
	if d.pos >= len(d.b) || d.b[d.pos] != ':' {
		return "", fmt.Errorf("bencode: string length at offset %d not followed by ':'", start)
	}
	d.pos++
	if n > len(d.b)-d.pos {
		return "", fmt.Errorf("bencode: string at offset %d is %d bytes but only %d remain", start, n, len(d.b)-d.pos)
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n
	return s, nil
}

func (d *bdecoder) list(depth int) ([]any, error) {
	start := d.pos
	d.pos++ // 'l'
	var l []any
	for {
		if d.pos >= len(d.b) {
			return nil, fmt.Errorf("bencode: unterminated list at offset %d", start)
		}
		if d.b[d.pos] == 'e' {
			d.pos++
			return l, nil
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
	}
}

func (d *bdecoder) dict(depth int) (map[string]any, error) {
	start := d.pos
	d.pos++ // 'd'
	m := map[string]any{}
	for {
		if d.pos >= len(d.b) {
			return nil, fmt.Errorf("bencode: unterminated dictionary at offset %d", start)
		}
		if d.b[d.pos] == 'e' {
			d.pos++
			return m, nil
		}
		if c := d.b[d.pos]; c < '0' || c > '9' {
			return nil, fmt.Errorf("bencode: dictionary key at offset %d is not a string", d.pos)
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
}
