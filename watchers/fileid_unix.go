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
		return fileStatOf(&st), nil
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
		return fileStatOf(&st), nil
	}
}

func fileStatOf(st *syscall.Stat_t) fileStat {
	return fileStat{id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, size: st.Size, mode: typeOf(st.Mode)}
}

// typeOf returns the type bits of a file's mode, as fs.FileMode has them.
func typeOf(mode uint32) fs.FileMode {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	}
	return 0
}

// idOf returns the identity of a file from its FileInfo.
func idOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}
