//go:build !unix

package store

import (
	"errors"
	"os"
	"time"
)

const nonBlock = 0

var errLockTimeout = errors.New("lock timeout")

// lockShared is a no-op where flock is not available: bbolt's own lock still keeps two
// writers apart, but a check may then read a file another process is writing.
func lockShared(*os.File, time.Duration) error { return nil }
