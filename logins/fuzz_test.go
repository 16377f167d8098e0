package logins_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipguard/sipguard/logins"
)

// FuzzLoad reads any bytes as a logins file: never a panic, the bounds
// always hold, and what loads saves and loads again the same.
func FuzzLoad(f *testing.F) {
	h := logins.New(0)
	h.Login("1001", netip.MustParseAddr("198.51.100.1"), "DE", t0)
	h.Login("1001", netip.MustParseAddr("2001:db8::1"), "FR", t0)
	h.Login("1002", netip.MustParseAddr("203.0.113.9"), "", t0)
	seed := filepath.Join(f.TempDir(), "seed.json")
	if err := h.Save(seed); err != nil {
		f.Fatal(err)
	}
	data, _ := os.ReadFile(seed)
	f.Add(data)
	f.Add([]byte(`{"version":1,"accounts":[{"account":"x","addrs":[{"addr":"::ffff:1.2.3.4"}],"countries":{"ZZ":"2026-01-01T00:00:00Z"},"last":"1.2.3.4","last_country":"ZZ"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "logins.json")
		os.WriteFile(path, data, 0o600)
		h, _, err := logins.Load(path, 3)
		if err != nil {
			return
		}
		if h.Len() > 3 {
			t.Fatalf("%d accounts", h.Len())
		}
		again := filepath.Join(dir, "again.json")
		if err := h.Save(again); err != nil {
			t.Fatal(err)
		}
		h2, skipped, err := logins.Load(again, 3)
		if err != nil || skipped != 0 || h2.Len() != h.Len() {
			t.Fatalf("saved and loaded again: %d accounts of %d, %d skipped, %v", h2.Len(), h.Len(), skipped, err)
		}
	})
}
