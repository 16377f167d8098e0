package store_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/store"
)

type state struct {
	N     int      `json:"n"`
	Items []string `json:"items"`
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	var got state
	if ok, err := store.Load(path, &got); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
	if err := store.Save(path, state{N: 1, Items: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := store.Load(path, &got); !ok || err != nil || got.N != 1 || got.Items[0] != "a" {
		t.Fatalf("load: %v %v %+v", ok, err, got)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", fi.Mode().Perm())
	}
}

// TestSaveConcurrentReaders: readers never see a partial file while
// writers replace it.
func TestSaveConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	big := make([]string, 5000)
	for i := range big {
		big[i] = "198.51.100.7/32 some padding to make the file large"
	}
	store.Save(path, state{N: 0, Items: big})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var s state
				if _, err := store.Load(path, &s); err != nil {
					t.Error(err)
					return
				}
				if len(s.Items) != 5000 {
					t.Errorf("torn read: %d items", len(s.Items))
					return
				}
			}
		}()
	}
	for i := range 50 {
		if err := store.Save(path, state{N: i, Items: big}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	os.WriteFile(path+".123.tmp", []byte("{half"), 0o600) // a crash mid-write
	if err := store.Save(path, state{N: 2}); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(m) != 0 {
		t.Errorf("leftovers %v", m)
	}
}

func TestSaveErrors(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere: use a path under a file instead.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if err := store.Save(filepath.Join(f, "state.json"), state{}); err == nil {
			t.Error("saved under a regular file")
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if err := store.Save(filepath.Join(dir, "state.json"), state{}); err == nil {
		t.Error("saved in a read-only directory")
	}
}

func TestLoadCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	var s state
	if _, err := store.Load(path, &s); err == nil {
		t.Error("corrupt file loaded")
	}
}

// TestReadFileRefuses: a state file's path naming anything but a regular
// file of at most MaxSize bytes is refused at once, before a byte is read:
// a FIFO hung the start, a link to /dev/zero exhausted memory. A link to a
// regular file is read; writing over it replaces the link, not its target.
func TestReadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	os.Symlink("/dev/zero", zero)
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, store.MaxSize+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte(`{"n":7}`), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink("good", link)
	for _, tc := range []struct {
		path string
		want error
		why  string
	}{
		{fifo, store.ErrNotRegular, "(a FIFO)"},
		{zero, store.ErrNotRegular, "(a device)"},
		{dir, store.ErrNotRegular, "(a directory)"},
		{big, store.ErrTooLarge, "(256 MiB)"},
		{filepath.Join(dir, "absent"), fs.ErrNotExist, ""},
		{link, nil, ""},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := store.ReadFile(tc.path)
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFile(%s) blocks", tc.path)
		}
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("ReadFile(%s) = %v; want nil", tc.path, err)
		case tc.want != nil && (!errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), tc.path)):
			t.Errorf("ReadFile(%s) = %v; want %v %s, naming the path", tc.path, err, tc.want, tc.why)
		}
		// Load: the same, a missing file being no error.
		var s state
		ok, err := store.Load(tc.path, &s)
		switch {
		case tc.want == nil && (!ok || err != nil || s.N != 7):
			t.Errorf("Load(%s) = %v %v %+v; want the file", tc.path, ok, err, s)
		case tc.want == fs.ErrNotExist && (ok || err != nil):
			t.Errorf("Load(%s) = %v %v; want false, nil", tc.path, ok, err)
		case tc.want != nil && tc.want != fs.ErrNotExist && !errors.Is(err, tc.want):
			t.Errorf("Load(%s) = %v; want %v", tc.path, err, tc.want)
		}
	}
	if err := store.Save(link, state{N: 8}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("Save over a link: %v %v; want a regular file", fi.Mode(), err)
	}
}
