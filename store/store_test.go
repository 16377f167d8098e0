package store_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

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
