package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/btda/btda/discovery/dht"
)

// TestREADMEDefaults checks that the README's configuration table lists every key with the
// default Default() really has: the defaults are defined once, in the packages that use
// them, and the documentation must follow.
func TestREADMEDefaults(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)` \\| ([^|]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		if strings.Contains(m[1], ".") {
			documented[m[1]] = strings.TrimSpace(m[2])
		}
	}
	d := Default()
	var keys []string
	walkDefaults(reflect.ValueOf(d), "", func(key string, v reflect.Value) {
		keys = append(keys, key)
		want := defaultText(v)
		got, ok := documented[key]
		switch {
		case !ok:
			t.Errorf("README: configuration key %s is not documented (default %s)", key, want)
		case strings.Trim(got, "`") != want:
			t.Errorf("README: %s default is %s, the code's is %s", key, got, want)
		}
	})
	for k := range documented {
		if !slices.Contains(keys, k) {
			t.Errorf("README documents %s, which is not a configuration key", k)
		}
	}
}

func walkDefaults(v reflect.Value, prefix string, f func(string, reflect.Value)) {
	for i := range v.NumField() {
		key := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue // not a key of the file
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		if fv := v.Field(i); fv.Kind() == reflect.Struct {
			walkDefaults(fv, key, f)
		} else {
			f(key, fv)
		}
	}
}

// defaultText is how the README writes a default value.
func defaultText(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		return x.String()
	case string:
		if x == "" {
			return "none"
		}
		return x
	case []string:
		if slices.Equal(x, dht.DefaultBootstrap) {
			return "public routers"
		}
		return strings.Join(x, ", ")
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}
