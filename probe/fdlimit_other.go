//go:build !unix

package probe

// fdLimit is the process's soft limit on open descriptors (0: unknown).
func fdLimit() int { return 0 }
