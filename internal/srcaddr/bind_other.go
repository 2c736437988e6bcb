//go:build !linux

package srcaddr

import "syscall"

// bindNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not exist: the bind port
// search then runs per socket, as it must.
func bindNoPort(syscall.RawConn) error { return nil }
