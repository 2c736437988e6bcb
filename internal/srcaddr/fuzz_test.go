package srcaddr

import (
	"strings"
	"testing"
)

// FuzzCheck: any entries (comma-separated here) are accepted or refused with an error,
// never a panic, and an accepted literal list resolves to what Check read.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "192.0.2.7,2001:db8::7", "wg0", "::", "fe80::1%eth0", "", "a,b", "::ffff:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries := strings.Split(s, ",")
		p, err := parse(entries)
		if err != nil {
			return
		}
		if p.iface != "" {
			return // resolving touches the system's interfaces
		}
		a, err := Resolve(entries)
		if err != nil || a != p.addrs {
			t.Fatalf("%q: Check accepted %+v, Resolve gave %+v %v", s, p.addrs, a, err)
		}
		if a.V4.IsValid() && !a.V4.Is4() || a.V6.IsValid() && !a.V6.Is6() {
			t.Fatalf("%q: families mixed up: %+v", s, a)
		}
	})
}
