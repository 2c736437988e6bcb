package collector

import "github.com/btda/btda/collector/store"

// Store returns the recorder's store, for readers (the HTTP API, exports): they use its
// paged walks, which never hold a read transaction long. Only the recorder writes to it.
func (c *Recorder) Store() *store.Store { return c.store }

// KeepsRawIP reports whether peer records hold raw addresses (storage.store_raw_ips).
func (c *Recorder) KeepsRawIP() bool { return c.cfg.KeepRawIP }
