// Command btswarm runs the synthetic BitTorrent test swarm on loopback:
// generated torrents, wire-protocol peers with scripted progress, an optional
// tracker and DHT cluster, GeoIP databases for the swarm's addresses, and a
// ground-truth file that btda's numbers can be checked against. It runs for
// --duration and then stops by itself.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/btda/btda/internal/swarmtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	config, out, dialout, listenMode, logLevel string
	metrics, dialout6                          string
	seed                                       uint64
	torrents, peers, dhtNodes, maxConns        int
	duration                                   time.Duration
	threshold, dialoutFraction                 float64
	requireMSE, utpOnly, ipv6                  float64
	tracker                                    bool
	set                                        map[string]*bool
}

// run is main without the process: it parses args, runs the swarm until the
// duration ends or ctx is cancelled, and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("btswarm", "Run a synthetic BitTorrent swarm on loopback and write its ground truth.")
	app.UsageWriter(stderr).ErrorWriter(stderr)
	exit := -1
	app.Terminate(func(code int) {
		if exit < 0 {
			exit = code
		}
	})
	o := options{set: map[string]*bool{}}
	flag := func(name, help string) *kingpin.FlagClause {
		b := new(bool)
		o.set[name] = b
		return app.Flag(name, help).IsSetByUser(b)
	}
	app.Flag("config", "YAML swarm description (fields of swarmtest.Config); flags given explicitly override it.").StringVar(&o.config)
	flag("seed", "Seed for every random choice.").Default("1").Uint64Var(&o.seed)
	flag("torrents", "Number of torrents.").Default("10").IntVar(&o.torrents)
	flag("peers", "Number of peers.").Default("200").IntVar(&o.peers)
	flag("duration", "Run time; the swarm stops by itself after it.").Default("10m").DurationVar(&o.duration)
	flag("threshold", "Completion threshold fraction for the truth.").Default("0.98").Float64Var(&o.threshold)
	app.Flag("out", "Output directory for torrents/, magnets.txt, GeoIP databases and truth.json.").Default("btswarm-out").StringVar(&o.out)
	flag("dialout", "btda's loopback listen address (IP:port); some peers connect to it.").StringVar(&o.dialout)
	flag("dialout-fraction", "Fraction of talking peers that dial out.").Default("0.1").Float64Var(&o.dialoutFraction)
	flag("dialout6", "btda's [::1] listen address ([::1]:port); the IPv6 peers among the dialling ones connect to it.").StringVar(&o.dialout6)
	flag("require-mse", "Share of the talking peers that accept only MSE-encrypted (RC4) connections.").Default("0").Float64Var(&o.requireMSE)
	flag("utp-only", "Share of the peers that listen and dial over uTP only.").Default("0").Float64Var(&o.utpOnly)
	flag("ipv6", "Share of the peers that live on [::1] (each on its own port).").Default("0").Float64Var(&o.ipv6)
	flag("tracker", "Run a loopback HTTP+UDP tracker and put it in the torrents.").BoolVar(&o.tracker)
	flag("dht-nodes", "Run a loopback DHT cluster of this many nodes (0: none).").Default("0").IntVar(&o.dhtNodes)
	flag("listen-mode", "auto, per-address or shared (shared needs a loopback-only namespace: unshare -n).").Default("auto").StringVar(&o.listenMode)
	flag("max-conns", "Maximum open peer connections.").Default("10000").IntVar(&o.maxConns)
	app.Flag("metrics", "Serve the truth so far and the swarm's counters on http://ADDR/metrics (loopback only).").StringVar(&o.metrics)
	app.Flag("log-level", "debug, info, warn or error.").Default("info").EnumVar(&o.logLevel, "debug", "info", "warn", "error")
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "btswarm: %v\n", err)
		return 2
	}
	if exit >= 0 { // --help
		return exit
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(o.logLevel))
	// The swarm adds its own component attribute.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := o.config2()
	if err != nil {
		fmt.Fprintf(stderr, "btswarm: %v\n", err)
		return 2
	}
	if cfg.Duration <= 0 {
		fmt.Fprintln(stderr, "btswarm: --duration must be positive: btswarm always stops by itself")
		return 2
	}
	var metricsAddr netip.AddrPort
	if o.metrics != "" {
		a, err := netip.ParseAddrPort(o.metrics)
		if err != nil || !a.Addr().IsLoopback() {
			fmt.Fprintf(stderr, "btswarm: --metrics %q must be a loopback IP:port\n", o.metrics)
			return 2
		}
		metricsAddr = a
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintf(stderr, "btswarm: %v\n", err)
		return 1
	}
	cfg.Dir = o.out
	// The whole run, start-up and shutdown included, fits in --duration:
	// the peers stop closeBudget early so that closing cannot overrun.
	began := time.Now()
	closeBudget := min(time.Second, cfg.Duration/10)
	stopAt := began.Add(cfg.Duration - closeBudget)
	ctx, cancel := context.WithDeadline(ctx, stopAt)
	defer cancel()
	s, err := swarmtest.Start(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "btswarm: %v\n", err)
		return 1
	}
	truth := filepath.Join(o.out, "truth.json")
	window := swarmtest.Window{From: 0, To: stopAt.Sub(s.StartTime())}
	if err := s.WriteTruth(truth, window); err != nil {
		s.Close()
		fmt.Fprintf(stderr, "btswarm: %v\n", err)
		return 1
	}
	if metricsAddr.IsValid() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(s.Collector())
		l, err := net.Listen("tcp", metricsAddr.String())
		if err != nil {
			s.Close()
			fmt.Fprintf(stderr, "btswarm: metrics listener: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		fmt.Fprintf(stdout, "  metrics:   http://%s/metrics\n", l.Addr())
	}
	city, asn := s.GeoIPPaths()
	fmt.Fprintf(stdout, "btswarm: %d peers over %d torrents, listen mode %s, started in %s\n",
		len(s.Peers()), len(s.Torrents()), s.ListenMode(), time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(stdout, "  torrents:  %s\n  magnets:   %s\n  geoip:     %s %s\n  truth:     %s\n",
		filepath.Join(o.out, "torrents"), filepath.Join(o.out, "magnets.txt"), city, asn, truth)
	for _, u := range s.AnnounceURLs() {
		fmt.Fprintf(stdout, "  tracker:   %s\n", u)
	}
	for _, a := range s.DHTNodes() {
		fmt.Fprintf(stdout, "  dht node:  %s\n", a)
	}
	fmt.Fprintf(stdout, "  running until %s (swarm time %s)\n", stopAt.UTC().Format(time.RFC3339), window.To.Round(time.Millisecond))
	<-ctx.Done()
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeBudget):
		// Exiting ends whatever is left; the duration is a promise.
		fmt.Fprintf(stderr, "btswarm: shutdown took longer than %s; exiting anyway\n", closeBudget)
		return 1
	}
	st := s.Stats()
	fmt.Fprintf(stdout, "btswarm: stopped after %s: %d connections accepted (%d over the limit), %d handshakes, "+
		"%d bad handshakes, %d progress updates sent, %d dial-outs (%d failed)\n",
		time.Since(began).Round(time.Millisecond), st.Accepted, st.Rejected, st.Handshakes, st.BadHandshakes,
		st.Updates, st.DialOuts, st.DialFailures)
	return 0
}

// config2 merges the YAML file (if any) with the flags the user gave.
func (o options) config2() (swarmtest.Config, error) {
	var cfg swarmtest.Config
	fromFile := o.config != ""
	if fromFile {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return cfg, err
		}
		if cfg, err = swarmtest.ParseConfig(b); err != nil {
			return cfg, fmt.Errorf("%s: %w", o.config, err)
		}
	}
	use := func(name string) bool { return !fromFile || *o.set[name] }
	if use("seed") {
		cfg.Seed = o.seed
	}
	if use("torrents") {
		cfg.Torrents = o.torrents
	}
	if use("peers") {
		cfg.Peers = o.peers
	}
	if use("duration") {
		cfg.Duration = o.duration
	}
	if use("threshold") {
		cfg.Threshold = o.threshold
	}
	if use("dialout") && o.dialout != "" {
		cfg.DialOut = o.dialout
	}
	if use("dialout-fraction") && cfg.DialOut != "" {
		cfg.DialOutFraction = o.dialoutFraction
	}
	if use("dialout6") && o.dialout6 != "" {
		cfg.DialOut6 = o.dialout6
	}
	if use("require-mse") {
		cfg.Reach.RequireMSE = o.requireMSE
	}
	if use("utp-only") {
		cfg.Reach.UTPOnly = o.utpOnly
	}
	if use("ipv6") {
		cfg.Reach.IPv6 = o.ipv6
	}
	if use("tracker") && o.tracker {
		cfg.Tracker.Enabled = true
	}
	if use("dht-nodes") {
		cfg.DHT.Nodes = o.dhtNodes
	}
	if use("listen-mode") {
		cfg.ListenMode = o.listenMode
	}
	if use("max-conns") {
		cfg.MaxConns = o.maxConns
	}
	return cfg, nil
}
