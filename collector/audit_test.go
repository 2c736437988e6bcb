package collector

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
	"github.com/btda/btda/probe"
)

// TestAuditTrail: a counted crossing writes one info line and a download log entry with
// the same fields; a crossing merged into another identity's writes neither.
func TestAuditTrail(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(Config{StorePath: t.TempDir() + "/s.db", RetryBackoff: time.Millisecond}, prometheus.NewPedanticRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.AddTorrent(torrent, pieceLength)
	c.flush([]probe.Observation{
		step{port: 6881, src: discovery.SourceDHT, first: 40, last: 40, at: 10}.obs(),
		step{port: 6881, src: discovery.SourceDHT, first: 97, last: 99, at: 70, dur: 5}.obs(),
		// The same client's unknown-port identity crossing later: merged, not logged.
		step{dir: probe.Incoming, first: 40, last: 40, at: 20}.obs(),
		step{dir: probe.Incoming, first: 99, last: 99, at: 90}.obs(),
	})
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Contains(l, `msg="confirmed download"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"torrent=" + torrent.String(), "country=", "pieces_below=97", "pieces_above=99",
		"pieces=100", "crossed_at=2026-11-24T00:01:15", "window_start=2026-11-24T00:01:10", "window=5s",
		"found_by=dht", "direction=outgoing", "peer="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("audit line lacks %q: %s", want, lines[0])
		}
	}
	var logged []store.Download
	_ = c.store.View(func(tx *store.Tx) error {
		return tx.Downloads(t0, t0.Add(time.Hour), func(d store.Download) error { logged = append(logged, d); return nil })
	})
	if len(logged) != 1 {
		t.Fatalf("%d download log entries, want 1", len(logged))
	}
	d := logged[0]
	if d.Below != 97 || d.Above != 99 || d.NumPieces != 100 || discovery.Source(d.Source) != discovery.SourceDHT ||
		probe.Direction(d.Direction) != probe.Outgoing || !d.At.Equal(t0.Add(75*time.Second)) || !d.WindowStart.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("download log entry %+v", d)
	}
}

// A held session's interim report stores its point below the threshold but is not a
// contact; the final observation of the same session then counts the crossing once.
func TestInterimReport(t *testing.T) {
	c, _ := newCollector(t, t.TempDir()+"/s.db", Config{})
	defer c.Close()
	in := step{port: 6881, first: 40, last: 50, at: 10, dur: 5}.obs()
	in.Interim, in.Held = true, true
	final := step{port: 6881, first: 40, last: 99, at: 10, dur: 60}.obs()
	final.Held = true
	c.flush([]probe.Observation{in})
	if p := peerRecord(t, c, in); p.Contacts != 0 || !p.Has(store.FlagBelowSeen) {
		t.Fatalf("after the interim report: contacts %d flags %b", p.Contacts, p.Flags)
	}
	c.flush([]probe.Observation{final})
	p := peerRecord(t, c, final)
	if p.Contacts != 1 || !p.Has(store.FlagCounted) || !p.WindowStart.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("after the final observation: contacts %d flags %b window from %v", p.Contacts, p.Flags, p.WindowStart)
	}
}
