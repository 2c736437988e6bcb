package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The 2015 defaults, where REFERENCE.md §1 gives them.
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"completion_threshold", c.Torrents.CompletionThreshold, 0.98},
		{"quiet_window", time.Duration(c.Probe.QuietWindow), 6 * time.Second},
		{"message_cap", c.Probe.MessageCap, 256},
		{"revisit_delay", time.Duration(c.Probe.RevisitDelay), 300 * time.Second},
		{"tracker interval", time.Duration(c.Trackers.RequestInterval), 300 * time.Second},
		{"dht interval", time.Duration(c.DHT.RequestInterval), 300 * time.Second},
		{"listen", c.Peer.ListenAddress, ":6884"},
		{"dht listen", c.DHT.ListenAddress, ":17000"},
		{"announce port", c.AnnouncePort(), 6884},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseValues(t *testing.T) {
	c, err := Parse([]byte(`
torrents:
  completion_threshold: 0.9
probe:
  quiet_window: 1500ms
  revisit_delay: 10m
dht:
  enabled: true
  bootstrap_nodes: ["127.0.0.1:7000"]
peer:
  listen_address: "127.0.0.1:7001"
  announce_port: 9999
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Torrents.CompletionThreshold != 0.9 || time.Duration(c.Probe.QuietWindow) != 1500*time.Millisecond ||
		time.Duration(c.Probe.RevisitDelay) != 10*time.Minute || len(c.DHT.BootstrapNodes) != 1 || c.AnnouncePort() != 9999 {
		t.Fatalf("unexpected config: %+v", c)
	}
	// Untouched keys keep their defaults.
	if c.Probe.MessageCap != 256 {
		t.Fatalf("message_cap = %d", c.Probe.MessageCap)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings the error must contain
	}{
		{"unknown key", "probe:\n  quiet_windw: 6s\n", []string{"line 2", "quiet_windw"}},
		{"unknown section", "\nprobes: {}\n", []string{"line 2", "probes"}},
		{"bad duration", "probe:\n  quiet_window: six\n", []string{"line 2", "six"}},
		{"number duration", "probe:\n  quiet_window: [1]\n", []string{"line 2", "duration"}},
		{"threshold", "torrents:\n  completion_threshold: 1.5\n", []string{"torrents.completion_threshold", "1.5"}},
		{"zero threshold", "torrents:\n  completion_threshold: 0\n", []string{"torrents.completion_threshold"}},
		{"concurrency", "probe:\n  concurrency: 0\n", []string{"probe.concurrency"}},
		{"listen", "peer:\n  listen_address: nope\n", []string{"peer.listen_address", "nope"}},
		{"bootstrap", "dht:\n  bootstrap_nodes: [\"a:b:c\"]\n", []string{"dht.bootstrap_nodes[0]"}},
		{"session cap", "probe:\n  quiet_window: 10s\n  session_cap: 5s\n", []string{"probe.session_cap"}},
		{"zero duration", "trackers:\n  timeout: 0s\n", []string{"trackers.timeout"}},
		{"two documents", "probe: {}\n---\nprobe: {}\n", []string{"more than one"}},
		{"wrong type", "probe:\n  concurrency: lots\n", []string{"line 2"}},
		{"empty", "", []string{"configuration file is empty"}},
		{"whitespace", " \n\t\n", []string{"configuration file is empty"}},
		{"comments only", "# probe:\n#   concurrency: 5\n", []string{"configuration file is empty"}},
		{"quoted yes", "trackers:\n  enabled: \"yes\"\n", []string{"line 2", "trackers.enabled", "true or false", `"yes"`}},
		{"quoted true", "dht:\n  enabled: 'true'\n", []string{"line 2", "dht.enabled", "'true'"}},
		{"bare yes", "probe:\n  send_interested: yes\n", []string{"line 2", "probe.send_interested"}},
		{"number bool", "geoip:\n  anonymize_ips: 1\n", []string{"line 2", "geoip.anonymize_ips"}},
		{"list bool", "dht:\n  ipv6: [true]\n", []string{"line 2", "dht.ipv6", "a list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "btda.yml")
	if err := os.WriteFile(path, []byte("torrents:\n  directory: t\nstorage:\n  path: /abs/x.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Torrents.Directory != filepath.Join(dir, "t") || c.Storage.Path != "/abs/x.db" || c.Torrents.MagnetFile != filepath.Join(dir, "input/magnet.txt") {
		t.Fatalf("paths not resolved: %+v", c.Torrents)
	}
	if _, err := Load(filepath.Join(dir, "missing.yml")); err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Fatalf("missing file error = %v", err)
	}
}

func TestDurationString(t *testing.T) {
	for in, want := range map[string]string{"300s": "5m", "6s": "6s", "1500ms": "1s500ms", "1.5s": "1s500ms", "250us": "250µs", "1d": "1d"} {
		d, err := ParseDuration(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Duration(d).String(); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("probe:\n  quiet_window: 6s\n"))
	f.Add([]byte("torrents: {completion_threshold: 2}"))
	f.Add([]byte("dht: {bootstrap_nodes: [x]}"))
	f.Add([]byte("- a\n- b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil && c.Validate() != nil {
			t.Fatal("Parse accepted a config that does not validate")
		}
	})
}
