package watchers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// followable tells whether the Follower follows the file it opened at
// path, from the type bits of its mode. A directory opens but cannot be
// read. This is the place to refuse every file that is not regular (a
// FIFO, a device): Probe already does.
func followable(path string, mode fs.FileMode) error {
	if mode.IsDir() {
		return &fs.PathError{Op: "open", Path: path, Err: syscall.EISDIR}
	}
	return nil
}

// ErrNotRegular is why Probe refuses a path that names a FIFO, a device or
// a socket: not a log file.
var ErrNotRegular = errors.New("not a regular file")

// Probe tells whether this process can follow path now: nil when it names
// a regular file that it can open to read. Otherwise errors.Is(err,
// fs.ErrNotExist) when the path or a directory on it does not exist, or
// the error says why (Reason tells it shortly). A path that is not a
// regular file is refused without being opened: opening a FIFO waits for a
// writer, and opening a device may act on it.
func Probe(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := regular(path, fi.Mode()); err != nil {
		return err
	}
	// O_NONBLOCK: should the path be swapped for a FIFO meanwhile, the
	// open does not wait for a writer.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	if fi, err = fh.Stat(); err != nil {
		return err
	}
	return regular(path, fi.Mode())
}

func regular(path string, mode fs.FileMode) error {
	if err := followable(path, mode); err != nil {
		return err
	}
	if !mode.IsRegular() {
		return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(mode))}
	}
	return nil
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
// denied", "is a directory", "too many levels of symbolic links").
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
