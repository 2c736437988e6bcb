package metainfo

import (
	"fmt"
	"sort"
)

// dict is a decoded bencode dictionary as internal/bencode.Decode produces it: int64,
// string, []any, map[string]any.
type dict map[string]any

// typeName names a decoded bencode value's type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "an integer"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a dictionary"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

// fieldError says which field of the metainfo is wrong: "info.piece length: must be > 0".
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

func errField(field, format string, args ...any) error {
	return &fieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// intField returns d[key] as an integer. ok is false when the key is absent.
func (d dict) intField(parent, key string) (n int64, ok bool, err error) {
	v, present := d[key]
	if !present {
		return 0, false, nil
	}
	n, isInt := v.(int64)
	if !isInt {
		return 0, true, errField(join(parent, key), "want an integer, got %s", typeName(v))
	}
	return n, true, nil
}

// strField returns d[key] as a string. ok is false when the key is absent.
func (d dict) strField(parent, key string) (s string, ok bool, err error) {
	v, present := d[key]
	if !present {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, errField(join(parent, key), "want a string, got %s", typeName(v))
	}
	return s, true, nil
}

// dictField returns d[key] as a dictionary. ok is false when the key is absent.
func (d dict) dictField(parent, key string) (m dict, ok bool, err error) {
	v, present := d[key]
	if !present {
		return nil, false, nil
	}
	mm, isDict := v.(map[string]any)
	if !isDict {
		return nil, true, errField(join(parent, key), "want a dictionary, got %s", typeName(v))
	}
	return dict(mm), true, nil
}

// listField returns d[key] as a list. ok is false when the key is absent.
func (d dict) listField(parent, key string) (l []any, ok bool, err error) {
	v, present := d[key]
	if !present {
		return nil, false, nil
	}
	l, isList := v.([]any)
	if !isList {
		return nil, true, errField(join(parent, key), "want a list, got %s", typeName(v))
	}
	return l, true, nil
}

// sortedKeys returns the keys of m in byte order, which is the canonical bencode order: the
// v2 file tree's file order is defined by it.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
