//go:build unix

package probe

import (
	"math"
	"syscall"
)

// fdLimit is the process's soft limit on open descriptors (0: unknown).
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur, math.MaxInt32))
}
