// Package store keeps the daemon's state in files that a crash cannot
// corrupt: each file is replaced whole by writing a temporary file in the
// same directory, syncing it, renaming it over the old one and syncing the
// directory. Killed at any moment, the daemon finds either the old content
// or the new one, never a mix.
//
// It reads back only regular files of at most MaxSize bytes: whatever is
// found at a state file's path (a FIFO, a link to /dev/zero, a file grown
// huge) must neither hang the daemon's start nor exhaust its memory.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxSize is the largest state file read, in bytes: a million bans take
// about 120 MiB in the bans file.
const MaxSize = 256 << 20

// Why ReadFile refuses a file.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = fmt.Errorf("larger than %d MiB", MaxSize>>20)
)

// tmpSuffix marks the temporary files of Save; leftovers of a crash are
// removed by the next Save of the same file.
const tmpSuffix = ".tmp"

// Save writes v as JSON to path, atomically and durably.
func Save(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return WriteFile(path, append(data, '\n'))
}

// WriteFile replaces path with data, atomically and durably.
func WriteFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save %s: sync directory: %w", path, err)
	}
	removeLeftovers(path)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeLeftovers deletes temporary files a crash left behind for path.
func removeLeftovers(path string) {
	matches, _ := filepath.Glob(path + ".*" + tmpSuffix)
	for _, m := range matches {
		if strings.HasSuffix(m, tmpSuffix) {
			os.Remove(m)
		}
	}
}

// Load reads the JSON file at path into v (see ReadFile). It reports
// false, and no error, when the file does not exist.
func Load(path string, v any) (bool, error) {
	data, err := ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("load %s: %w", path, err)
	}
	return true, nil
}

// ReadFile returns the content of the state file at path. It refuses,
// with ErrNotRegular or ErrTooLarge, anything but a regular file of at
// most MaxSize bytes, before reading a byte: the type is looked at before
// the open (opening a device may act on it) and again on the open file,
// which is opened without waiting (should it be a FIFO by then). A
// missing file is fs.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err == nil {
		err = readable(fi)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err == nil {
		err = readable(fi)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	// Read one byte more than allowed: a file growing meanwhile is caught.
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxSize+1)); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if buf.Len() > MaxSize {
		return nil, fmt.Errorf("load %s: %w", path, ErrTooLarge)
	}
	return buf.Bytes(), nil
}

// readable refuses what ReadFile does not read.
func readable(fi fs.FileInfo) error {
	if t := fi.Mode().Type(); t != 0 {
		name := "type " + t.String()
		for _, k := range kinds {
			if t&k.bit != 0 {
				name = k.name
				break
			}
		}
		return fmt.Errorf("%w (%s)", ErrNotRegular, name)
	}
	if fi.Size() > MaxSize {
		return fmt.Errorf("%w (%d MiB)", ErrTooLarge, fi.Size()>>20)
	}
	return nil
}

// kinds names file types for people.
var kinds = []struct {
	bit  fs.FileMode
	name string
}{
	{fs.ModeDir, "a directory"},
	{fs.ModeNamedPipe, "a FIFO"},
	{fs.ModeDevice, "a device"},
	{fs.ModeSocket, "a socket"},
}
