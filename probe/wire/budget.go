package wire

import (
	"errors"
	"sync/atomic"
)

// ErrBudget is returned by Decoder.Next when a message body needs a larger buffer than its
// Budget has left. It is our limit, not the peer's fault: callers report it as a local error.
var ErrBudget = errors.New("message buffer budget exhausted")

// Budget caps the bytes of large message bodies (those above 17 KiB) that all decoders
// sharing it hold at once. Per-decoder caps bound one peer; a Budget bounds all of them
// together, so thousands of peers that each announce a 1 MiB message cannot together hold
// gigabytes. A decoder takes budget only as the body's bytes arrive (its buffer doubles up
// to the declared length) and gives it back at its next Next or Reset. When the budget is
// spent, Next fails at once with ErrBudget rather than wait: a wait would hold the
// connection and the bytes already buffered, and honest peers rarely send large bodies
// (a bitfield above 139,000 pieces, an outsized extension handshake).
//
// A nil *Budget is unlimited. Budget is safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit returns the budget's size in bytes (0 for a nil, unlimited budget).
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// acquire takes n bytes if they fit.
func (b *Budget) acquire(n int) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		u := b.used.Load()
		if u+int64(n) > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			return true
		}
	}
}

func (b *Budget) release(n int) {
	if b != nil && n > 0 {
		b.used.Add(-int64(n))
	}
}
