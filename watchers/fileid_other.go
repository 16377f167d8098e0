//go:build !unix

package watchers

import (
	"io/fs"
	"os"
)

// Without device and inode numbers a file's identity is unknown: a rotation
// is seen only when the path disappears, and a resume trusts the offset and
// fingerprint alone. The follower is meant for Linux; this keeps the
// package building elsewhere.

func statPath(path string) (fileStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, err
	}
	return fileStat{size: fi.Size(), mode: fi.Mode().Type()}, nil
}

func statFile(f *os.File) (fileStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	return fileStat{size: fi.Size(), mode: fi.Mode().Type()}, nil
}

func idOf(fs.FileInfo) fileID { return fileID{} }
