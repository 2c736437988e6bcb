// Command btda watches BitTorrent swarms and exports confirmed downloads to Prometheus.
//
// Subcommands: run (the default), inspect, probe, metadata, announce. This package holds the
// flags, the construction of the parts from the configuration and the subcommands; a
// running btda's orchestration is package daemon. See the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	_ "github.com/btda/btda/internal/buildinfo" // fills version.* when not built by scripts/build
	"github.com/btda/btda/internal/config"
)

// defaultWebAddress is where /metrics is served unless --web.listen-address says otherwise.
const defaultWebAddress = ":9881"

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Main parses args and runs one subcommand; it returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("btda", "BitTorrent download analyzer: counts confirmed downloads in watched swarms and exports them to Prometheus.")
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	app.Version(version.Print("btda"))
	app.HelpFlag.Short('h')

	var configSet bool
	configFile := app.Flag("config.file", "btda configuration file (YAML); the default one may be absent, then the defaults apply.").
		Default(defaultConfigFile).IsSetByUser(&configSet).String()
	configCheck := app.Flag("config.check", "Validate the configuration file and exit.").Bool()
	promslogConfig := &promslog.Config{}
	promslogflag.AddFlags(app, promslogConfig)

	runCmd := app.Command("run", "Watch the configured torrents (and those given here) and serve /metrics.").Default()
	runArgs := runCmd.Arg("torrent", ".torrent files or magnet URIs to watch in addition to the configured ones.").Strings()
	webFlags := kingpinflag.AddFlags(runCmd, defaultWebAddress)
	shard := runCmd.Flag("shard", "Watch only shard k of n of the torrents, by info hash (k/n, 0 ≤ k < n).").Default("0/1").String()

	inspectCmd := app.Command("inspect", "Print a JSON summary of each .torrent file or magnet URI.")
	inspectArgs := inspectCmd.Arg("torrent", ".torrent files or magnet URIs.").Required().Strings()

	announceCmd := app.Command("announce", "Run one announce round against every tracker of a torrent (and optionally a DHT lookup) and print what each source returned.")
	announceTorrent := announceCmd.Flag("torrent", "A .torrent file.").String()
	announceMagnet := announceCmd.Flag("magnet", "A magnet URI.").String()
	announceScrape := announceCmd.Flag("scrape", "Also scrape every tracker that supports it.").Bool()
	announceDHT := announceCmd.Flag("dht", "Also run a DHT get_peers lookup from a temporary node.").Bool()
	announceTimeout := announceCmd.Flag("timeout", "Give up after this long.").Default("2m").Duration()

	probeCommand := app.Command("probe", "Probe the given peers once and print one JSON observation per peer.")
	probeTorrent := probeCommand.Flag("torrent", "A .torrent file.").String()
	probeMagnet := probeCommand.Flag("magnet", "A magnet URI (its metadata is fetched from the peers first).").String()
	probePeers := probeCommand.Arg("peer", "Peers as IP:PORT or [IPv6]:PORT.").Required().Strings()

	metadataCommand := app.Command("metadata", "Fetch a magnet's metadata (BEP 9) from the given peers and print its summary.")
	metadataMagnet := metadataCommand.Arg("magnet", "The magnet URI.").Required().String()
	metadataPeers := metadataCommand.Arg("peer", "Peers as IP:PORT or [IPv6]:PORT.").Required().Strings()

	storeCmds := addStoreCommands(app)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "btda: %v (try --help)\n", err)
		return 2
	}
	promslogConfig.Writer = stderr
	logger := promslog.New(promslogConfig)
	cf := configSource{path: *configFile, explicit: configSet}

	if *configCheck {
		return checkConfig(cf, stdout, stderr)
	}
	if code, ok := storeCmds.run(ctx, cmd, *configFile, stdout, stderr); ok {
		return code
	}
	switch cmd {
	case inspectCmd.FullCommand():
		return inspect(*inspectArgs, stdout, logger)
	case probeCommand.FullCommand():
		return probeCmd(ctx, probeOptions{config: cf, torrent: *probeTorrent, magnet: *probeMagnet, peers: *probePeers}, stdout, logger)
	case metadataCommand.FullCommand():
		return metadataCmd(ctx, cf, *metadataMagnet, *metadataPeers, stdout, logger)
	case announceCmd.FullCommand():
		return announce(ctx, announceOptions{
			config:  cf,
			torrent: *announceTorrent,
			magnet:  *announceMagnet,
			scrape:  *announceScrape,
			dht:     *announceDHT,
			timeout: *announceTimeout,
		}, stdout, logger)
	case runCmd.FullCommand():
		return run(ctx, runOptions{
			config:   cf,
			torrents: *runArgs,
			web:      webFlags,
			shard:    *shard,
		}, logger)
	}
	fmt.Fprintf(stderr, "btda: unknown command %q\n", cmd)
	return 2
}

func checkConfig(cf configSource, stdout, stderr io.Writer) int {
	cfg, err := cf.load(nil)
	if err != nil {
		fmt.Fprintf(stderr, "btda: %v\n", err)
		return 1
	}
	code := 0
	for _, n := range cfg.CheckInputs() {
		if n.Err {
			fmt.Fprintf(stderr, "btda: %s: %s\n", cf.path, n)
			code = 1
		} else {
			fmt.Fprintf(stdout, "%s: note: %s\n", cf.path, n)
		}
	}
	if code != 0 {
		return code
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", cf.path)
	return 0
}

// defaultConfigFile is read when --config.file is not given; it may be absent.
const defaultConfigFile = "btda.yml"

// configSource is where the configuration comes from: the default file, which may be
// absent (the defaults then apply), or a file named with --config.file, which must exist.
type configSource struct {
	path     string
	explicit bool
}

// load reads the configuration; logger (nil: none) says when the defaults apply.
func (c configSource) load(logger *slog.Logger) (*config.Config, error) {
	cfg, err := config.Load(c.path)
	if errors.Is(err, fs.ErrNotExist) && !c.explicit {
		if logger != nil {
			logger.Info("no configuration file; using the defaults", "config_file", c.path)
		}
		d := config.Default()
		return &d, nil
	}
	return cfg, err
}

// component returns the logger of one subsystem.
func component(l *slog.Logger, name string) *slog.Logger { return l.With("component", name) }
