package bencode

import (
	"bytes"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

// fuzzOptions are the option sets the callers use, and one with tight limits.
var fuzzOptions = []Options{
	{},                                    // plain
	{Canonical: true, NoDuplicates: true}, // BEP 9 metadata
	{Canonical: true, Key: "info", Trailing: TrailingAny},                          // .torrent files
	{Limits: Limits{MaxDepth: 32}, Trailing: TrailingAny},                          // extension messages
	{Limits: Limits{MaxDepth: 16}, Trailing: TrailingSpace},                        // tracker replies
	{Limits: Limits{MaxDepth: 3, MaxItems: 20}, Key: "a", Trailing: TrailingSpace}, // tight
}

// FuzzDecode: no input panics; Scan, Decode and DecodeDict accept and refuse the same
// inputs with the same error; what they report is consistent (spans inside the value, raw
// values decode to the decoded ones, re-encoding round-trips and is never longer); and
// decoding allocates in proportion to the input, never to a declared length.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, o := range fuzzOptions {
			checkAgreement(t, in, o)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = Decode(in, Options{Trailing: TrailingAny})
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(128*len(in)+64<<10); got > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(in), got)
		}
	})
}

func checkAgreement(t *testing.T, in []byte, o Options) {
	doc, serr := Scan(in, o)
	v, derr := Decode(in, o)
	if errString(serr) != errString(derr) {
		t.Fatalf("%+v: Scan error %v, Decode error %v", o, serr, derr)
	}
	if len(in) > 0 && in[0] == 'd' {
		m, ddoc, err := DecodeDict(in, o)
		if errString(err) != errString(serr) {
			t.Fatalf("%+v: Scan error %v, DecodeDict error %v", o, serr, err)
		}
		if err == nil {
			if ddoc != doc {
				t.Fatalf("%+v: Scan %+v, DecodeDict %+v", o, doc, ddoc)
			}
			vm := v.(map[string]any)
			if len(m) != len(vm) {
				t.Fatalf("%+v: %d raw values, %d decoded", o, len(m), len(vm))
			}
			for k, raw := range m {
				rv, err := Decode(raw, Options{})
				if err != nil || !reflect.DeepEqual(rv, vm[k]) {
					t.Fatalf("%+v: raw %q decodes to %#v (%v), want %#v", o, raw, rv, err, vm[k])
				}
			}
		}
	}
	if serr != nil {
		if _, ok := serr.(*Error); !ok {
			t.Fatalf("error of type %T", serr)
		}
		return
	}
	if doc.Len <= 0 || doc.Len > len(in) || (o.Trailing == TrailingNone && doc.Len != len(in)) {
		t.Fatalf("%+v: Len %d of %d bytes", o, doc.Len, len(in))
	}
	if (doc.KeyStart < 0) != (doc.KeyEnd < 0) || doc.KeyStart > doc.KeyEnd || doc.KeyEnd > doc.Len {
		t.Fatalf("%+v: key span %d-%d of %d", o, doc.KeyStart, doc.KeyEnd, doc.Len)
	}
	if doc.KeyStart >= 0 {
		if _, err := Scan(in[doc.KeyStart:doc.KeyEnd], Options{Canonical: o.Canonical, NoDuplicates: true}); err != nil {
			t.Fatalf("%+v: key span %q: %v", o, in[doc.KeyStart:doc.KeyEnd], err)
		}
	}
	enc := encode(nil, v)
	if len(enc) > doc.Len {
		t.Fatalf("%+v: re-encoding %q is longer than %q", o, enc, in[:doc.Len])
	}
	v2, err := Decode(enc, Options{Canonical: true, NoDuplicates: true})
	if err != nil || !reflect.DeepEqual(v, v2) {
		t.Fatalf("%+v: round trip of %q: %#v (%v), want %#v", o, enc, v2, err, v)
	}
	if o.Canonical && o.NoDuplicates && doc.Duplicates != 0 {
		t.Fatalf("%+v: %d duplicates", o, doc.Duplicates)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// encode is the canonical encoding of a decoded value (keys sorted).
func encode(dst []byte, v any) []byte {
	switch v := v.(type) {
	case int64:
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, v, 10)
		return append(dst, 'e')
	case string:
		dst = strconv.AppendInt(dst, int64(len(v)), 10)
		dst = append(dst, ':')
		return append(dst, v...)
	case []any:
		dst = append(dst, 'l')
		for _, e := range v {
			dst = encode(dst, e)
		}
		return append(dst, 'e')
	case map[string]any:
		dst = append(dst, 'd')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = encode(dst, k)
			dst = encode(dst, v[k])
		}
		return append(dst, 'e')
	}
	panic("encode: unexpected type " + reflect.TypeOf(v).String())
}

func TestEncodeHelper(t *testing.T) {
	in := []byte("d1:ai-1e1:bl0:dee1:c3:xyze")
	v, err := Decode(in, Options{})
	if err != nil || !bytes.Equal(encode(nil, v), in) {
		t.Fatalf("%q %v", encode(nil, v), err)
	}
}
