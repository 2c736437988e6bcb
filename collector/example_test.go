package collector_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/collector"
	"github.com/btda/btda/collector/geo"
	"github.com/btda/btda/discovery/metainfo"
	"github.com/btda/btda/probe"
)

// Example shows the wiring: open, declare torrents, run the writer, record, stop, close.
func Example() {
	dir, _ := os.MkdirTemp("", "btda")
	defer os.RemoveAll(dir)
	log := slog.New(slog.DiscardHandler)

	g := geo.New()
	if err := g.LoadCity(filepath.Join(dir, "GeoLite2-City.mmdb")); err != nil {
		log.Warn("continuing without GeoIP", "err", err) // countries become ZZ
	}
	c, err := collector.New(collector.Config{StorePath: filepath.Join(dir, "btda.db"), Geo: g},
		prometheus.NewRegistry(), log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close() // last, after Run has returned

	h := metainfo.Hash{1}
	c.AddTorrent(h, 262144)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	at := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	_ = c.Record(ctx, probe.Observation{Torrent: h, Addr: netip.MustParseAddrPort("127.0.0.2:6881"),
		Direction: probe.Outgoing, Outcome: probe.OutcomeOK, Start: at, Known: true, NumPieces: 100,
		First: probe.Point{Pieces: 40, At: at}, Last: probe.Point{Pieces: 100, At: at.Add(time.Minute)}})

	cancel() // Run commits what is queued, then returns
	<-done
	fmt.Println("confirmed downloads:", c.Aggregates().Torrents[h].Confirmed)
	// Output: confirmed downloads: 1
}
