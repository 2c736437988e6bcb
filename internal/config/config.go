// Package config holds btda's configuration file: its schema, defaults (the 2015 tool's,
// unless the README says why not), strict decoding and validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/discovery/dht"
	"github.com/btda/btda/discovery/tracker"
	"github.com/btda/btda/internal/srcaddr"
	"github.com/btda/btda/probe"
	"github.com/btda/btda/probe/scheduler"
)

// Duration is a time.Duration written as a Prometheus ("5m", "1h", "2d") or Go ("1.5s",
// "300ms") duration string.
type Duration time.Duration

// UnmarshalYAML accepts both duration syntaxes so operators can copy values from either world.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"6s\" or \"5m\"", n.Line)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Prometheus form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String returns the Prometheus form ("5m", "6s", "1m30s").
func (d Duration) String() string {
	if time.Duration(d)%time.Millisecond != 0 {
		return time.Duration(d).String()
	}
	return model.Duration(d).String()
}

// ParseDuration parses a Prometheus or Go duration string.
func ParseDuration(s string) (time.Duration, error) {
	if v, err := model.ParseDuration(s); err == nil {
		return time.Duration(v), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. \"6s\", \"5m\", \"1h\")", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return v, nil
}

// Config is the whole configuration file.
type Config struct {
	Torrents Torrents `yaml:"torrents"`
	Peer     Peer     `yaml:"peer"`
	Probe    Probe    `yaml:"probe"`
	Trackers Trackers `yaml:"trackers"`
	DHT      DHT      `yaml:"dht"`
	Storage  Storage  `yaml:"storage"`
	GeoIP    GeoIP    `yaml:"geoip"`
	Metrics  Metrics  `yaml:"metrics"`
}

// Torrents says which torrents to watch and when a peer's download counts as complete.
type Torrents struct {
	Directory           string  `yaml:"directory"`            // 2015: input_path (walked recursively for *.torrent)
	MagnetFile          string  `yaml:"magnet_file"`          // 2015: magnet_file
	CompletionThreshold float64 `yaml:"completion_threshold"` // 2015: torrent_complete_threshold

	// Whether the file sets directory and magnet_file (CheckInputs: only an explicit path
	// that is missing is an error).
	explicitDir, explicitMagnet bool
}

// Peer is btda's own BitTorrent identity on the network.
type Peer struct {
	ListenAddress string `yaml:"listen_address"` // 2015: bittorrent_listen_port (TCP, incoming peers)
	// AnnouncePort is the port told to trackers, the DHT and peers (`p`); 0 means the
	// listen port. Set it when btda sits behind a port forward.
	AnnouncePort  int `yaml:"announce_port"`
	IncomingPerIP int `yaml:"incoming_per_ip"` // open incoming connections allowed per IP
	IncomingTotal int `yaml:"incoming_total"`  // open incoming connections allowed in total
	// SourceAddresses binds every outgoing connection (peers, trackers, DHT) to one IPv4
	// and/or one IPv6 address, or to an interface's first of each (see srcaddr). Empty:
	// the kernel chooses.
	SourceAddresses []string `yaml:"source_addresses"`
	// Encryption is the outgoing MSE policy: prefer_plaintext, prefer_encrypted, require
	// or disable (probe.EncryptionPolicy). Incoming peers may use either.
	Encryption string `yaml:"encryption"`
	// UTP listens for uTP on the listen port (UDP) and dials uTP when TCP fails.
	UTP bool `yaml:"utp"`
}

// Probe tunes probe sessions and the scheduler.
type Probe struct {
	Concurrency      int      `yaml:"concurrency"`       // 2015: peer_evaluation_threads
	ConnectTimeout   Duration `yaml:"connect_timeout"`   // 2015: network_timeout
	HandshakeTimeout Duration `yaml:"handshake_timeout"` // 2015: network_timeout
	QuietWindow      Duration `yaml:"quiet_window"`      // 2015: network_timeout (idle recv ends a session)
	MessageCap       int      `yaml:"message_cap"`       // 2015: receive_message_max
	SessionCap       Duration `yaml:"session_cap"`       // new: hard cap on one session
	RevisitDelay     Duration `yaml:"revisit_delay"`     // 2015: peer_revisit_delay
	RetryAttempts    int      `yaml:"retry_attempts"`    // new: 2015 dropped a peer after one failure
	RetryBackoff     Duration `yaml:"retry_backoff"`     // new: first retry delay, doubled each time
	DialRate         float64  `yaml:"dial_rate"`         // new: global dials per second, 0 = unlimited
	ForgetAfter      Duration `yaml:"forget_after"`      // new: evict peers unseen this long
	SendInterested   bool     `yaml:"send_interested"`   // new: keeps libtorrent/aria2 peers from idling us out
	IdleGrace        Duration `yaml:"idle_grace"`        // new: end sessions without movement early; 0 = off
	RevisitMin       Duration `yaml:"revisit_min"`       // new: floor of an ETA-timed revisit
	WatchBudget      int      `yaml:"watch_budget"`      // new: connections held to watch downloading peers; 0 = off
	WatchMax         Duration `yaml:"watch_max"`         // new: longest hold of one connection
	WatchSilence     Duration `yaml:"watch_silence"`     // new: a held connection silent this long ends
	WatchKeepAlive   Duration `yaml:"watch_keepalive"`   // new: keep-alive interval of held connections
}

// Trackers configures HTTP and UDP tracker announces and scrapes.
type Trackers struct {
	Enabled         bool     `yaml:"enabled"`
	RequestInterval Duration `yaml:"request_interval"` // 2015: tracker_request_interval
	Timeout         Duration `yaml:"timeout"`          // 2015: network_timeout
	NumWant         int      `yaml:"numwant"`
}

// DHT configures the embedded Mainline DHT node.
type DHT struct {
	Enabled         bool     `yaml:"enabled"`
	ListenAddress   string   `yaml:"listen_address"`    // 2015: dht_node_port
	ListenAddress6  string   `yaml:"listen_address_v6"` // the IPv6 node's, with ipv6: true
	BootstrapNodes  []string `yaml:"bootstrap_nodes"`   // 2015: pymdht's built-in routers
	RequestInterval Duration `yaml:"request_interval"`  // 2015: dht_request_interval
	LookupTimeout   Duration `yaml:"lookup_timeout"`    // new: 2015 lookups had no deadline
	IPv6            bool     `yaml:"ipv6"`
}

// Storage is the bbolt store of per-peer state.
type Storage struct {
	Path           string   `yaml:"path"`            // 2015: output_path (a new SQLite file per run)
	CommitInterval Duration `yaml:"commit_interval"` // 2015: hard-coded 10 s
	CommitBatch    int      `yaml:"commit_batch"`
	StoreRawIPs    bool     `yaml:"store_raw_ips"` // off: only anonymized networks are kept
	// PersistSchedule keeps the raw addresses of the peers still watched, so a restart goes
	// on with them (off: restarts wait for the sources).
	PersistSchedule bool `yaml:"persist_schedule"`
}

// GeoIP configures enrichment.
type GeoIP struct {
	CityDatabase string `yaml:"city_database"` // GeoIP2/GeoLite2/DB-IP City or Country .mmdb
	ASNDatabase  string `yaml:"asn_database"`  // GeoLite2/DB-IP ASN .mmdb
	ReverseDNS   bool   `yaml:"reverse_dns"`
	AnonymizeIPs bool   `yaml:"anonymize_ips"` // /24 and /48 networks instead of addresses
}

// Metrics tunes what /metrics exposes.
type Metrics struct {
	TopNetworks int `yaml:"top_networks"` // networks listed by name; the rest fold into "other"
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Torrents: Torrents{Directory: "input", MagnetFile: "input/magnet.txt", CompletionThreshold: collector.DefaultThreshold},
		Peer: Peer{ListenAddress: probe.DefaultListenAddress, IncomingPerIP: probe.DefaultMaxPerIP, IncomingTotal: probe.DefaultMaxTotal,
			Encryption: string(probe.DefaultEncryption), UTP: probe.DefaultUTP},
		Probe: Probe{
			Concurrency:      scheduler.DefaultMaxInFlight,
			ConnectTimeout:   Duration(probe.DefaultDialTimeout),
			HandshakeTimeout: Duration(probe.DefaultHandshakeTimeout),
			QuietWindow:      Duration(probe.DefaultQuietWindow),
			MessageCap:       probe.DefaultMaxMessages,
			SessionCap:       Duration(probe.DefaultSessionCap),
			RevisitDelay:     Duration(scheduler.DefaultRevisitDelay),
			RetryAttempts:    scheduler.DefaultMaxRetries,
			RetryBackoff:     Duration(scheduler.DefaultRetryBase),
			ForgetAfter:      Duration(scheduler.DefaultForgetAfter),
			SendInterested:   true, // off in the library, whose callers may not want it
			IdleGrace:        Duration(probe.DefaultIdleGrace),
			RevisitMin:       Duration(scheduler.DefaultMinRevisit),
			WatchBudget:      probe.DefaultWatchBudget,
			WatchMax:         Duration(probe.DefaultWatchMax),
			WatchSilence:     Duration(probe.DefaultWatchSilence),
			WatchKeepAlive:   Duration(probe.DefaultWatchKeepAlive),
		},
		Trackers: Trackers{Enabled: true, RequestInterval: Duration(tracker.DefaultInterval),
			Timeout: Duration(tracker.DefaultTimeout), NumWant: tracker.DefaultNumWant},
		DHT: DHT{
			Enabled:         true,
			ListenAddress:   ":" + strconv.Itoa(dht.DefaultPort),
			ListenAddress6:  net.JoinHostPort("::", strconv.Itoa(dht.DefaultPort)),
			BootstrapNodes:  slices.Clone(dht.DefaultBootstrap),
			RequestInterval: Duration(dht.DefaultInterval),
			LookupTimeout:   Duration(dht.DefaultLookupTimeout),
		},
		Storage: Storage{Path: "btda.db", CommitInterval: Duration(collector.DefaultBatchWait), CommitBatch: collector.DefaultBatchSize},
		GeoIP:   GeoIP{AnonymizeIPs: true},
		Metrics: Metrics{TopNetworks: collector.DefaultTopNetworks},
	}
}

// Load reads, decodes and validates the file at path. Relative paths inside the file are
// resolved against the file's directory, so a config works from any working directory.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.resolve(filepath.Dir(path))
	return c, nil
}

// Parse decodes YAML over the defaults, strictly: an unknown key, or a boolean that is not
// an unquoted true or false, is an error that names the key and its line. Input without a
// YAML document is refused (ErrEmpty). It validates the result.
func Parse(data []byte) (*Config, error) {
	c := Default()
	if err := scanDocument(data, &c); err != nil {
		return nil, cleanYAMLError(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, cleanYAMLError(err)
	}
	// A second document would be silently ignored; refuse it instead.
	var extra any
	if err := dec.Decode(&extra); err == nil {
		return nil, errors.New("more than one YAML document; btda reads exactly one")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// yaml.v3 says "field foo not found in type config.Probe"; say it in the file's words.
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			m = strings.Replace(m, "not found in type", "is not a known key of", 1)
			msgs[i] = strings.Replace(m, "config.", "", 1)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

func (c *Config) resolve(dir string) {
	for _, p := range []*string{&c.Torrents.Directory, &c.Torrents.MagnetFile, &c.Storage.Path, &c.GeoIP.CityDatabase, &c.GeoIP.ASNDatabase} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if t := c.Torrents.CompletionThreshold; !(t > 0 && t <= 1) {
		bad("torrents.completion_threshold", "must be in (0, 1], got %v", t)
	}
	if err := checkHostPort(c.Peer.ListenAddress); err != nil {
		bad("peer.listen_address", "%v", err)
	}
	if err := srcaddr.Check(c.Peer.SourceAddresses); err != nil {
		bad("peer.source_addresses", "%v", err)
	}
	if e := probe.EncryptionPolicy(c.Peer.Encryption); !e.Valid() {
		bad("peer.encryption", "must be %s, %s, %s or %s, got %q", probe.PreferPlaintext, probe.PreferEncrypted,
			probe.RequireEncrypted, probe.DisableEncrypted, c.Peer.Encryption)
	}
	if p := c.Peer.AnnouncePort; p < 0 || p > 65535 {
		bad("peer.announce_port", "must be 0..65535, got %d", p)
	}
	positive := map[string]int{
		"peer.incoming_per_ip": c.Peer.IncomingPerIP,
		"peer.incoming_total":  c.Peer.IncomingTotal,
		"probe.concurrency":    c.Probe.Concurrency,
		"probe.message_cap":    c.Probe.MessageCap,
		"trackers.numwant":     c.Trackers.NumWant,
		"storage.commit_batch": c.Storage.CommitBatch,
		"metrics.top_networks": c.Metrics.TopNetworks,
	}
	for k, v := range positive {
		if v < 1 {
			bad(k, "must be at least 1, got %d", v)
		}
	}
	if c.Probe.RetryAttempts < 0 {
		bad("probe.retry_attempts", "must not be negative, got %d", c.Probe.RetryAttempts)
	}
	if c.Probe.WatchBudget < 0 {
		bad("probe.watch_budget", "must not be negative, got %d", c.Probe.WatchBudget)
	}
	if c.Probe.DialRate < 0 {
		bad("probe.dial_rate", "must not be negative, got %v", c.Probe.DialRate)
	}
	durations := map[string]Duration{
		"probe.connect_timeout":     c.Probe.ConnectTimeout,
		"probe.handshake_timeout":   c.Probe.HandshakeTimeout,
		"probe.quiet_window":        c.Probe.QuietWindow,
		"probe.session_cap":         c.Probe.SessionCap,
		"probe.revisit_delay":       c.Probe.RevisitDelay,
		"probe.retry_backoff":       c.Probe.RetryBackoff,
		"probe.forget_after":        c.Probe.ForgetAfter,
		"probe.revisit_min":         c.Probe.RevisitMin,
		"probe.watch_max":           c.Probe.WatchMax,
		"probe.watch_silence":       c.Probe.WatchSilence,
		"probe.watch_keepalive":     c.Probe.WatchKeepAlive,
		"trackers.request_interval": c.Trackers.RequestInterval,
		"trackers.timeout":          c.Trackers.Timeout,
		"dht.request_interval":      c.DHT.RequestInterval,
		"dht.lookup_timeout":        c.DHT.LookupTimeout,
		"storage.commit_interval":   c.Storage.CommitInterval,
	}
	for k, v := range durations {
		if v <= 0 {
			bad(k, "must be a positive duration")
		}
	}
	if c.Probe.SessionCap > 0 && c.Probe.SessionCap < c.Probe.QuietWindow {
		bad("probe.session_cap", "(%s) must not be shorter than probe.quiet_window (%s)", c.Probe.SessionCap, c.Probe.QuietWindow)
	}
	if c.DHT.Enabled {
		if err := checkHostPort(c.DHT.ListenAddress); err != nil {
			bad("dht.listen_address", "%v", err)
		}
		if c.DHT.IPv6 {
			if err := checkHostPort(c.DHT.ListenAddress6); err != nil {
				bad("dht.listen_address_v6", "%v", err)
			} else if h, _, _ := net.SplitHostPort(c.DHT.ListenAddress6); h != "" {
				if ip, err := netip.ParseAddr(h); err == nil && !ip.Is6() {
					bad("dht.listen_address_v6", "%q is not an IPv6 address", h)
				}
			}
		}
		for i, n := range c.DHT.BootstrapNodes {
			if err := checkHostPort(n); err != nil {
				bad(fmt.Sprintf("dht.bootstrap_nodes[%d]", i), "%v", err)
			}
		}
	}
	if c.Storage.Path == "" {
		bad("storage.path", "must not be empty")
	}
	sortErrors(errs)
	return errors.Join(errs...)
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 0..65535", s)
	}
	return nil
}

// sortErrors orders errors by text so messages from map iteration are stable.
func sortErrors(errs []error) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Error() < errs[j-1].Error(); j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// AnnouncePort is the port btda tells trackers, the DHT and peers.
func (c *Config) AnnouncePort() int {
	if c.Peer.AnnouncePort != 0 {
		return c.Peer.AnnouncePort
	}
	_, p, _ := net.SplitHostPort(c.Peer.ListenAddress)
	n, _ := strconv.Atoi(p)
	return n
}
