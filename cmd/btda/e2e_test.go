package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/btda/btda/internal/swarmtest"
)

// TestEndToEndSwarm runs btda against the test swarm (tracker, DHT, GeoIP, peers that dial
// in) with scripted curves whose crossings all fall well inside the run, and requires the
// confirmed downloads by torrent and country to equal the swarm's ground truth exactly.
// The scenario (startE2E) is shared with the restart and fault tests.
func TestEndToEndSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run takes ~15 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eDeadline+2*time.Minute)
	defer cancel()
	r := startE2E(ctx, t, e2eScenario{
		RunFor: 11 * time.Second,
		// Leechers of the three common clients start at half and cross 3 s to 7 s after
		// btda first reaches them, so btda sees each one below and, after a revisit,
		// above the threshold, however slow the machine.
		CrossAt: func(p *swarmtest.Peer) time.Duration {
			return 3*time.Second + time.Duration(p.Index%5)*time.Second
		},
		Anchored: true,
	})
	d := startDaemonOn(t, r.cfgPath)
	exposition, truth, want := r.waitConfirmed(t, d, nil)
	d.stop(t, syscall.SIGTERM, 5*time.Second)
	checkConfirmed(t, confirmedDownloads(exposition), want, truth)
}
