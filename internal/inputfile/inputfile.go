// Package inputfile reads the files an operator points btda at (configuration, .torrent
// files, the magnet list) so that a wrong kind of file can never hang or exhaust btda: it
// opens without blocking, refuses anything but a regular file, and reads at most a limit.
package inputfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// NotRegularError says the path is not a regular file (a FIFO, a device, a directory…).
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is not a regular file (it is %s)", e.Path, Kind(e.Mode))
}

// TooLargeError says the file holds more than the limit.
type TooLargeError struct {
	Path  string
	Size  int64 // -1 when it grew past the limit while being read
	Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("%s grew past the %d byte limit while being read", e.Path, e.Limit)
	}
	return fmt.Sprintf("%s is %d bytes, larger than the %d byte limit", e.Path, e.Size, e.Limit)
}

// Read reads the regular file at path, at most limit bytes. O_NONBLOCK makes opening a
// FIFO (even one swapped in for a regular file after a stat) return at once instead of
// waiting for a writer; the stat of the open file then refuses it.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: st.Mode()}
	}
	// Refuse an oversized file before reading it; the limited read still guards one that grows.
	if st.Size() > limit {
		return nil, &TooLargeError{Path: path, Size: st.Size(), Limit: limit}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Path: path, Size: -1, Limit: limit}
	}
	return data, nil
}

// Kind names a file's kind for error messages ("a named pipe (FIFO)", "a directory"…).
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}
