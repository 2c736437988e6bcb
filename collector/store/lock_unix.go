//go:build unix

package store

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// nonBlock keeps opening a FIFO named as the store from blocking; it changes nothing for a
// regular file.
const nonBlock = syscall.O_NONBLOCK

var errLockTimeout = errors.New("lock timeout")

// lockShared takes a shared flock on f (compatible with other readers, excluded by bbolt's
// exclusive writer lock), polling until timeout.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return errLockTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}
