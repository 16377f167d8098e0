package watchers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// followable tells whether the Follower follows a file of this mode (its
// type bits): only a regular file. A directory opens but cannot be read;
// reading a device such as /dev/zero never ends; a FIFO or a socket is
// not a log that can be resumed at an offset.
func followable(path string, mode fs.FileMode) error {
	switch {
	case mode.IsDir():
		return &fs.PathError{Op: "open", Path: path, Err: syscall.EISDIR}
	case !mode.IsRegular():
		return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(mode))}
	}
	return nil
}

// ErrNotRegular is why a path that names a FIFO, a device or a socket is
// neither followed nor passed by Probe: not a log file.
var ErrNotRegular = errors.New("not a regular file")

// Probe tells whether this process can follow path now: nil when it names
// a regular file that it can open to read. Otherwise errors.Is(err,
// fs.ErrNotExist) when the path or a directory on it does not exist, or
// the error says why (Reason tells it shortly). It opens the path as the
// Follower does (openFile): a path that is not a regular file is refused.
func Probe(path string) error {
	fh, _, err := openFile(path)
	if err != nil {
		return err
	}
	return fh.Close()
}

// openFile opens the regular file at path to read, as every open of the
// Follower does, and returns it with its identity and size. Anything else
// is refused (followable) without being opened: opening a FIFO waits for
// a writer, and opening a device may act on it. The open does not block
// either (O_NONBLOCK) should the path be swapped for a FIFO between the
// look and the open: the type is checked again on the open file. Reads of
// a regular file ignore O_NONBLOCK. A file of size 0 that holds data all
// the same (pseudo) is refused too.
func openFile(path string) (*os.File, fileStat, error) {
	st, err := statPath(path)
	if err == nil {
		err = followable(path, st.mode)
	}
	if err != nil {
		return nil, fileStat{}, err
	}
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fileStat{}, err
	}
	if st, err = statFile(fh); err == nil {
		err = followable(path, st.mode)
	}
	if err == nil && st.size == 0 && pseudo(fh) {
		err = &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (size 0 with data: a /proc or /sys file)", ErrNotRegular)}
	}
	if err != nil {
		fh.Close()
		return nil, fileStat{}, err
	}
	return fh, st, nil
}

// pseudo tells whether a file whose size was 0 holds data all the same: a
// file of /proc, whose content is made as it is read. Followed, it would
// seem truncated at every read.
func pseudo(fh *os.File) bool {
	var b [1]byte
	if n, _ := fh.ReadAt(b[:], 0); n == 0 {
		return false
	}
	st, err := statFile(fh)
	return err == nil && st.size == 0 // else written meanwhile
}

// kind names a file type for people.
func kind(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + mode.Type().String()
}

// Reason says shortly why err keeps a file from being followed, as
// `sipguard status` shows it: "missing" when the path or a directory on it
// does not exist, else the system's reason without the path ("permission
// denied", "is a directory", "not a regular file (a FIFO)", "too many
// levels of symbolic links").
func Reason(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "missing"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
