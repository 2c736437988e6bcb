package dht

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testNodes() []SavedNode {
	return []SavedNode{
		{ID: [20]byte{1}, Addr: netip.MustParseAddrPort("127.0.0.1:6881")},
		{ID: [20]byte{2}, Addr: netip.MustParseAddrPort("[::1]:17000")},
		{ID: [20]byte{3, 4}, Addr: netip.MustParseAddrPort("127.1.2.3:65535")},
	}
}

func TestNodesRoundTrip(t *testing.T) {
	in := testNodes()
	// Unusable nodes are dropped on write.
	withBad := append(append([]SavedNode{}, in...),
		SavedNode{Addr: netip.MustParseAddrPort("127.0.0.1:1")},                  // zero id
		SavedNode{ID: [20]byte{9}, Addr: netip.MustParseAddrPort("127.0.0.1:0")}, // zero port
		SavedNode{ID: [20]byte{9}, Addr: netip.MustParseAddrPort("0.0.0.0:1")},   // unspecified
		SavedNode{ID: [20]byte{9}}, // no address
	)
	got, err := ParseNodes(MarshalNodes(withBad))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d nodes, want %d: %v", len(got), len(in), got)
	}
	for i := range in {
		if got[i] != in[i] {
			t.Errorf("node %d: got %v, want %v", i, got[i], in[i])
		}
	}
}

func TestMarshalNodesCaps(t *testing.T) {
	var many []SavedNode
	for i := range MaxSavedNodes + 10 {
		many = append(many, SavedNode{ID: [20]byte{byte(i), byte(i >> 8), 1},
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 1)})
	}
	got, err := ParseNodes(MarshalNodes(many))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxSavedNodes {
		t.Fatalf("got %d nodes, want %d", len(got), MaxSavedNodes)
	}
}

func TestParseNodesErrors(t *testing.T) {
	good := MarshalNodes(testNodes())
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"foreign", []byte("d1:ai1ee"), "bad magic"},
		{"truncated", good[:len(good)-1], "not a multiple of 38"},
		{"too many", append([]byte(nodesFileMagic), make([]byte, (MaxSavedNodes+1)*nodeRecordSize)...), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNodes(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	// Just the magic is a valid, empty file.
	if ns, err := ParseNodes([]byte(nodesFileMagic)); err != nil || len(ns) != 0 {
		t.Fatalf("magic only: %v, %v", ns, err)
	}
}

func TestSaveLoadNodes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, NodesFileName)
	if ns, err := LoadNodes(path); err != nil || ns != nil {
		t.Fatalf("missing file: %v, %v; want nothing and no error", ns, err)
	}
	if err := SaveNodes(path, testNodes()); err != nil {
		t.Fatal(err)
	}
	ns, err := LoadNodes(path)
	if err != nil || len(ns) != len(testNodes()) {
		t.Fatalf("load: %v, %v", ns, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNodes(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt file: err = %v, want an error naming the file", err)
	}
	// An oversized file is refused without being read whole.
	big := append([]byte(nodesFileMagic), bytes.Repeat([]byte{1}, 1<<20)...)
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNodes(path); err == nil {
		t.Fatal("oversized file accepted")
	}
	if err := SaveNodes(filepath.Join(dir, "missing", "x"), testNodes()); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
}

func FuzzParseNodes(f *testing.F) {
	f.Add(MarshalNodes(testNodes()))
	f.Add([]byte(nodesFileMagic))
	f.Add([]byte{})
	f.Add([]byte("btdadht1" + strings.Repeat("\x00", nodeRecordSize)))
	f.Add([]byte("btdadht1" + strings.Repeat("\xff", nodeRecordSize+3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := ParseNodes(b)
		if err != nil {
			return
		}
		for _, n := range ns {
			if !n.usable() {
				t.Fatalf("unusable node returned: %v", n)
			}
		}
		// What parses must survive a round trip unchanged.
		again, err := ParseNodes(MarshalNodes(ns))
		if err != nil || len(again) != len(ns) {
			t.Fatalf("round trip: %v, %d vs %d nodes", err, len(again), len(ns))
		}
		for i := range ns {
			if again[i] != ns[i] {
				t.Fatalf("round trip node %d: %v vs %v", i, again[i], ns[i])
			}
		}
	})
}

func BenchmarkParseNodes(b *testing.B) {
	var nodes []SavedNode
	for i := range MaxSavedNodes {
		nodes = append(nodes, SavedNode{ID: [20]byte{byte(i), byte(i >> 8), 1},
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 1)})
	}
	data := MarshalNodes(nodes)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNodes(data); err != nil {
			b.Fatal(err)
		}
	}
}
