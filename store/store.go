// Package store keeps the daemon's state in files that a crash cannot
// corrupt: each file is replaced whole by writing a temporary file in the
// same directory, syncing it, renaming it over the old one and syncing the
// directory. Killed at any moment, the daemon finds either the old content
// or the new one, never a mix.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// Load reads the JSON file at path into v. It reports false, and no error,
// when the file does not exist.
func Load(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("load %s: %w", path, err)
	}
	return true, nil
}
