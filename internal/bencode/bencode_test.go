package bencode

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var canonical = Options{Canonical: true}

func TestScan(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("l", n) + strings.Repeat("e", n) }
	cases := []struct {
		name string
		in   string
		o    Options
		want Doc    // when err is ""
		err  string // substring of the error
		off  int    // the error's offset
	}{
		{"int", "i42e", Options{}, Doc{Len: 4}, "", 0},
		{"negative int", "i-42e", Options{}, Doc{Len: 5}, "", 0},
		{"zero", "i0e", canonical, Doc{Len: 3}, "", 0},
		{"max int", "i9223372036854775807e", Options{}, Doc{Len: 21}, "", 0},
		{"min int", "i-9223372036854775808e", Options{}, Doc{Len: 22}, "", 0},
		{"string", "4:spam", Options{}, Doc{Len: 6}, "", 0},
		{"empty string", "0:", canonical, Doc{Len: 2}, "", 0},
		{"list", "l4:spami1ee", Options{}, Doc{Len: 11}, "", 0},
		{"dict", "d1:ai1e1:bli2eee", Options{}, Doc{Len: 16}, "", 0},
		{"empty input", "", Options{}, Doc{}, "empty input", 0},
		{"leading zero lenient", "i01e", Options{}, Doc{Len: 4}, "", 0},
		{"minus zero lenient", "i-0e", Options{}, Doc{Len: 4}, "", 0},
		{"length leading zero lenient", "01:a", Options{}, Doc{Len: 4}, "", 0},
		{"leading zero", "li01ee", canonical, Doc{}, "non-canonical integer", 1},
		{"minus zero", "i-0e", canonical, Doc{}, "non-canonical integer", 0},
		{"length leading zero", "01:a", canonical, Doc{}, "non-canonical string length", 0},
		{"plus sign", "i+1e", Options{}, Doc{}, "invalid integer", 0},
		{"bad digit", "i1x2e", Options{}, Doc{}, "invalid integer", 0},
		{"empty int", "ie", Options{}, Doc{}, "empty integer", 0},
		{"only minus", "i-e", Options{}, Doc{}, "empty integer", 0},
		{"unterminated int", "li12", Options{}, Doc{}, "unterminated integer", 1},
		{"int overflow", "i9223372036854775808e", Options{}, Doc{}, "does not fit", 0},
		{"int underflow", "i-9223372036854775809e", Options{}, Doc{}, "does not fit", 0},
		{"twenty digits", "i12345678901234567890e", Options{}, Doc{}, "does not fit", 0},
		{"endless digits", "i" + strings.Repeat("1", 1000), Options{}, Doc{}, "does not fit", 0},
		{"string past end", "l99:xe", Options{}, Doc{}, "runs past the end", 1},
		{"huge declared length", "2000000000:x", Options{}, Doc{}, "runs past the end", 0},
		{"length too long", "12345678901:x", Options{}, Doc{}, "string length too long", 0},
		{"no colon", "4xspam", Options{}, Doc{}, "invalid string length", 0},
		{"unterminated length", "123", Options{}, Doc{}, "unterminated string length", 0},
		{"unterminated list", "l1:a", Options{}, Doc{}, "unterminated list", 0},
		{"unterminated dict", "d1:ai1e", Options{}, Doc{}, "unterminated dictionary", 0},
		{"missing value", "d1:a", Options{}, Doc{}, "unexpected end of data", 4},
		{"int key", "di1ei2ee", Options{}, Doc{}, "key is not a string", 1},
		{"bad byte", "x", Options{}, Doc{}, "unexpected byte 'x'", 0},
		{"trailing", "i1ex", Options{}, Doc{}, "1 bytes of trailing data", 3},
		{"trailing any", "d1:ai1eehello", Options{Trailing: TrailingAny}, Doc{Len: 8}, "", 0},
		{"trailing space", "de\r\n \t", Options{Trailing: TrailingSpace}, Doc{Len: 2}, "", 0},
		{"trailing junk after space", "de\nx", Options{Trailing: TrailingSpace}, Doc{}, "trailing data", 3},
		{"depth ok", deep(10), Options{Limits: Limits{MaxDepth: 10}}, Doc{Len: 20}, "", 0},
		{"depth exceeded", deep(11), Options{Limits: Limits{MaxDepth: 10}}, Doc{}, "nesting deeper than 10", 10},
		{"default depth", deep(DefaultMaxDepth + 1), Options{}, Doc{}, "nesting deeper than 100", DefaultMaxDepth},
		{"deep dict", strings.Repeat("d1:a", 5) + "i1e" + strings.Repeat("e", 5), Options{Limits: Limits{MaxDepth: 4}}, Doc{}, "nesting deeper than 4", 16},
		{"items ok", "l" + strings.Repeat("i1e", 9) + "e", Options{Limits: Limits{MaxItems: 10}}, Doc{Len: 29}, "", 0},
		{"items exceeded", "l" + strings.Repeat("i1e", 10) + "e", Options{Limits: Limits{MaxItems: 10}}, Doc{}, "more than 10 values", 28},
		{"keys are not items", "d1:ai1e1:bi1ee", Options{Limits: Limits{MaxItems: 3}}, Doc{Len: 14}, "", 0},
		{"duplicate counted", "d1:ai1e1:ai2ee", Options{}, Doc{Len: 14, Duplicates: 1}, "", 0},
		{"duplicate after unsorted", "d1:bi1e1:ai1e1:bi2ee", Options{}, Doc{Len: 20, Duplicates: 1}, "", 0},
		{"duplicate refused", "d1:bi1e1:ai1e1:bi2ee", Options{NoDuplicates: true}, Doc{}, `duplicate dictionary key "b"`, 13},
		{"duplicate deep refused", "ld1:ai1e1:ai1eee", Options{NoDuplicates: true}, Doc{}, `duplicate dictionary key "a"`, 8},
		{"unsorted without repeat", "d1:bi1e1:ai1e1:ci1ee", Options{NoDuplicates: true}, Doc{Len: 20}, "", 0},
		{"many sorted keys", "d1:a0:1:b0:1:c0:1:d0:1:e0:1:f0:1:g0:1:h0:1:i0:1:j0:1:a0:e", Options{NoDuplicates: true}, Doc{}, `duplicate dictionary key "a"`, 51},
		{"key span", "d1:a0:4:infod1:xi1ee1:z0:e", Options{Key: "info"}, Doc{Len: 26, KeyStart: 12, KeyEnd: 20}, "", 0},
		{"key absent", "d1:a0:e", Options{Key: "info"}, Doc{Len: 7, KeyStart: -1, KeyEnd: -1}, "", 0},
		{"key only at top level", "d1:ad4:infoi1eee", Options{Key: "info"}, Doc{Len: 16, KeyStart: -1, KeyEnd: -1}, "", 0},
		{"key repeated", "d4:infoi1e4:infoi2ee", Options{Key: "info"}, Doc{}, `duplicate dictionary key "info"`, 10},
		{"repeat inside key", "d4:infod1:bi1e1:ai1e1:bi2eee", Options{Key: "info"}, Doc{}, `duplicate dictionary key "b"`, 20},
		{"repeat outside key", "d1:ai1e1:ai2e4:infod1:xi1eee", Options{Key: "info"}, Doc{Len: 28, Duplicates: 1, KeyStart: 19, KeyEnd: 27}, "", 0},
		{"long duplicate key truncated", "d50:" + strings.Repeat("k", 50) + "i1e50:" + strings.Repeat("k", 50) + "i1ee", Options{NoDuplicates: true}, Doc{}, strings.Repeat("k", 40) + "…", 57},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := Scan([]byte(c.in), c.o)
			if c.err != "" {
				var e *Error
				if !errors.As(err, &e) || !strings.Contains(e.Msg, c.err) || e.Offset != c.off {
					t.Fatalf("err = %v, want %q at offset %d", err, c.err, c.off)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.o.Key == "" {
				c.want.KeyStart, c.want.KeyEnd = -1, -1
			}
			if doc != c.want {
				t.Errorf("doc %+v, want %+v", doc, c.want)
			}
			// Decode accepts exactly what Scan accepts.
			if _, err := Decode([]byte(c.in), c.o); err != nil {
				t.Errorf("Decode: %v", err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		want any
	}{
		{"i-7e", int64(-7)},
		{"3:abc", "abc"},
		{"le", []any{}},
		{"li1e1:xlee", []any{int64(1), "x", []any{}}},
		{"de", map[string]any{}},
		{"d1:ad1:bi2ee1:cl0:ee", map[string]any{"a": map[string]any{"b": int64(2)}, "c": []any{""}}},
		{"d1:ai1e1:ai2ee", map[string]any{"a": int64(2)}}, // the last repeat wins
	}
	for _, c := range cases {
		v, err := Decode([]byte(c.in), Options{})
		if err != nil || !reflect.DeepEqual(v, c.want) {
			t.Errorf("Decode(%q) = %#v, %v; want %#v", c.in, v, err, c.want)
		}
	}
	// Strings are copies: the decoded value does not change with the input.
	in := []byte("4:spam")
	v, _ := Decode(in, Options{})
	in[2] = 'x'
	if v != "spam" {
		t.Errorf("decoded string aliases the input: %q", v)
	}
	if _, err := Decode([]byte("d1:ai1e1:ai2ee"), Options{NoDuplicates: true}); err == nil {
		t.Error("repeat accepted with NoDuplicates")
	}
	if _, err := Decode([]byte("d4:infod1:ai1e1:ai2eee"), Options{Key: "info"}); err == nil {
		t.Error("repeat inside Key accepted")
	}
}

func TestDecodeDict(t *testing.T) {
	in := []byte("d1:md6:ut_pexi1ee1:pi6881e1:v3:abc4:xtrali1eeeRAW")
	m, doc, err := DecodeDict(in, Options{Trailing: TrailingAny})
	if err != nil {
		t.Fatal(err)
	}
	if doc.Len != len(in)-3 {
		t.Errorf("len %d", doc.Len)
	}
	want := map[string]Raw{"m": Raw("d6:ut_pexi1ee"), "p": Raw("i6881e"), "v": Raw("3:abc"), "xtra": Raw("li1ee")}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %q", m)
	}
	for _, c := range []struct {
		in, err string
		o       Options
	}{
		{"li1ee", "not a dictionary (starts with 'l')", Options{}},
		{"", "empty input", Options{}},
		{"d1:ai1e", "unterminated dictionary", Options{}},
		{"d1:ali01eee", "non-canonical integer", canonical},
		{"d1:ai1e1:ai2ee", "duplicate dictionary key", Options{NoDuplicates: true}},
		{"d4:infoi1e4:infoi2ee", "duplicate dictionary key", Options{Key: "info"}},
		{"d1:ai1eex", "trailing data", Options{}},
		{"d1:al" + strings.Repeat("i1e", 5) + "ee", "more than 5 values", Options{Limits: Limits{MaxItems: 5}}},
		{"d1:alee", "nesting deeper than 1", Options{Limits: Limits{MaxDepth: 1}}},
	} {
		if _, _, err := DecodeDict([]byte(c.in), c.o); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("DecodeDict(%q): err %v, want %q", c.in, err, c.err)
		}
	}
	m, doc, err = DecodeDict([]byte("d1:ai1e1:ai2e4:info0:e"), Options{Key: "info"})
	if err != nil || string(m["a"]) != "i2e" || doc.Duplicates != 1 || doc.KeyStart != 19 || doc.KeyEnd != 21 {
		t.Errorf("repeat outside Key: %q %+v %v", m, doc, err)
	}
}

func TestRaw(t *testing.T) {
	ints := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"i5e", 5, true},
		{"i-5e", -5, true},
		{"i01e", 1, true}, // lenient, as the scanner without Canonical
		{"i5", 0, false},
		{"i5ee", 0, false},
		{"ie", 0, false},
		{"5:abcde", 0, false},
		{"", 0, false},
		{"i99999999999999999999e", 0, false},
	}
	for _, c := range ints {
		if n, ok := Raw(c.in).Int(); n != c.want || ok != c.ok {
			t.Errorf("Raw(%q).Int() = %d, %v", c.in, n, ok)
		}
	}
	strs := []struct {
		in, want string
		ok       bool
	}{
		{"3:abc", "abc", true},
		{"0:", "", true},
		{"3:ab", "", false},
		{"3:abcd", "", false},
		{"i3e", "", false},
		{"", "", false},
		{"3abc", "", false},
	}
	for _, c := range strs {
		if b, ok := Raw(c.in).Bytes(); string(b) != c.want || ok != c.ok {
			t.Errorf("Raw(%q).Bytes() = %q, %v", c.in, b, ok)
		}
	}
}

// TestNoAllocationFromDeclaredLength: a length prefix asking for far more than the input
// holds is refused before anything of its size is allocated.
func TestNoAllocationFromDeclaredLength(t *testing.T) {
	for _, in := range []string{"2000000000:x", "d5:peers9999999999:e", "l4294967295:e"} {
		allocs := testing.AllocsPerRun(10, func() {
			if _, err := Decode([]byte(in), Options{}); err == nil {
				t.Fatalf("%q accepted", in)
			}
		})
		if allocs > 8 { // the error and, for the dict, its map
			t.Errorf("%q: %v allocations", in, allocs)
		}
	}
}

// TestScanAllocations: checking a typical sorted dictionary allocates nothing.
func TestScanAllocations(t *testing.T) {
	in := []byte("d12:complete_agoi-1e1:md11:lt_donthavei7e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e1:v4:teste")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Scan(in, Options{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}
