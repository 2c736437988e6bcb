package config

import (
	"reflect"
	"strings"
)

// Changed lists the keys (e.g. "probe.concurrency") whose values differ between a and b, in
// file order.
func Changed(a, b *Config) []string {
	var out []string
	changed(reflect.ValueOf(*a), reflect.ValueOf(*b), "", &out)
	return out
}

func changed(a, b reflect.Value, prefix string, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		av, bv := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Struct {
			changed(av, bv, key, out)
			continue
		}
		if !reflect.DeepEqual(av.Interface(), bv.Interface()) {
			*out = append(*out, key)
		}
	}
}
