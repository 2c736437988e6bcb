package daemon

import (
	"context"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/discovery"
)

// ScheduleSaveInterval is how often the watched peers' addresses are kept in the store
// with storage.persist_schedule: what a crash can lose.
const ScheduleSaveInterval = 30 * time.Second

// restoreSchedule runs once, after the first watch list is in: with PersistSchedule the
// kept peers are routed again (so a restart, even after SIGKILL, goes on with the peers it
// was watching instead of waiting for the sources); without it the kept list is deleted,
// so no raw address stays in the store.
func (d *Daemon) restoreSchedule() {
	st := d.recorder.Store()
	if !d.cfg.PersistSchedule {
		if err := st.DropSchedule(); err != nil {
			d.log.Error("kept schedule not deleted", "err", err)
		}
		return
	}
	peers, bad, err := st.LoadSchedule()
	if err != nil {
		d.log.Error("kept schedule not read; the sources will find the peers again", "err", err)
		return
	}
	for _, p := range peers {
		d.route(discovery.Sighting{Torrent: p.Torrent, Addr: p.Addr, Source: discovery.Source(p.Source)})
	}
	d.log.Info("kept schedule restored", "peers", len(peers), "unreadable", bad)
}

// saveSchedule keeps the addresses of the peers the scheduler still watches.
func (d *Daemon) saveSchedule() {
	var peers []store.SchedulePeer
	d.sched.Watching(func(sg discovery.Sighting) {
		peers = append(peers, store.SchedulePeer{Torrent: sg.Torrent, Addr: sg.Addr, Source: uint8(sg.Source)})
	})
	if err := d.recorder.Store().SaveSchedule(peers); err != nil {
		d.log.Error("schedule not kept", "peers", len(peers), "err", err)
	}
}

// keepSchedule saves the schedule every ScheduleSaveInterval until ctx is done.
func (d *Daemon) keepSchedule(ctx context.Context) error {
	t := time.NewTicker(ScheduleSaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.saveSchedule()
		}
	}
}
