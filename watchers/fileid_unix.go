//go:build unix

package watchers

import (
	"io/fs"
	"os"
	"syscall"
)

// statPath returns the identity and size of the file at path, following
// symbolic links. It allocates nothing: it runs at every wakeup.
func statPath(path string) (fileStat, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
		}
		return fileStat{id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, size: st.Size}, nil
	}
}

// statFile is statPath for an open file.
func statFile(f *os.File) (fileStat, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Fstat(int(f.Fd()), &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fileStat{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
		}
		return fileStat{id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, size: st.Size}, nil
	}
}

// idOf returns the identity of a file from its FileInfo.
func idOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}
