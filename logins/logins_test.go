package logins_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/logins"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}) }

// TestLogin: first and last login of each address, the last login, and
// which countries are new.
func TestLogin(t *testing.T) {
	h := logins.New(0)
	if h.Login("1001", addr(1), "DE", t0) {
		t.Error("an account's first country is new")
	}
	if h.Login("1001", netip.MustParseAddr("::ffff:198.51.0.2"), "DE", t0.Add(time.Hour)) {
		t.Error("DE again is new")
	}
	if h.Login("1001", addr(3), "", t0.Add(2*time.Hour)) {
		t.Error("an unknown country is new")
	}
	if !h.Login("1001", addr(4), "FR", t0.Add(3*time.Hour)) {
		t.Error("FR is not new")
	}
	if h.Login("1001", addr(1), "FR", t0.Add(4*time.Hour)) {
		t.Error("FR again is new")
	}
	a := h.Account("1001")
	if a.Last != addr(1) || a.LastCountry != "FR" || len(a.Addrs) != 4 || len(a.Countries) != 2 {
		t.Fatalf("account %+v", a)
	}
	if s := a.Addrs[addr(1)]; !s.First.Equal(t0) || !s.Last.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("198.51.0.1 seen %+v", s)
	}
	if _, ok := a.Addrs[addr(2)]; !ok {
		t.Error("an IPv4-mapped address is not kept as IPv4")
	}
	if !a.Countries["DE"].Equal(t0) {
		t.Errorf("DE first %v", a.Countries["DE"])
	}
	if h.Account("1002") != nil || !h.Changed() {
		t.Error("unknown account known, or no change")
	}
}

// TestBounds: addresses and countries per account, and accounts, are
// bounded. A full account forgets the address (country) first seen most
// recently, keeping the long-known ones and the newest; accounts go least
// recently used first.
func TestBounds(t *testing.T) {
	h := logins.New(3)
	for i := range logins.MaxAddrs + 10 {
		h.Login("1001", addr(i), fmt.Sprintf("%c%c", 'A'+i/26%26, 'A'+i%26), t0.Add(time.Duration(i)*time.Minute))
	}
	a := h.Account("1001")
	if len(a.Addrs) != logins.MaxAddrs || len(a.Countries) != logins.MaxCountries {
		t.Errorf("%d addresses, %d countries", len(a.Addrs), len(a.Countries))
	}
	if _, ok := a.Addrs[addr(0)]; !ok {
		t.Error("the oldest address forgotten")
	}
	if _, ok := a.Addrs[addr(logins.MaxAddrs+9)]; !ok {
		t.Error("the newest address dropped")
	}
	if _, ok := a.Addrs[addr(logins.MaxAddrs+8)]; ok {
		t.Error("the address before the newest kept beyond the bound")
	}
	if _, ok := a.Countries["AA"]; !ok {
		t.Error("the oldest country forgotten")
	}
	for _, acct := range []string{"1002", "1003", "1001", "1004"} {
		h.Login(acct, addr(1), "DE", t0)
	}
	if h.Len() != 3 || h.Account("1002") != nil || h.Account("1001") == nil {
		t.Errorf("%d accounts; 1002 (least recently used) should be gone, 1001 kept", h.Len())
	}
}

// TestSaveLoad: what Load reads back is what was saved, the most recently
// used accounts kept first when the bound is smaller.
func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logins.json")
	h := logins.New(0)
	h.Login("1001", addr(1), "DE", t0)
	h.Login("1001", netip.MustParseAddr("2001:db8::1"), "FR", t0.Add(time.Hour))
	h.Login("1002", addr(2), "", t0.Add(2*time.Hour))
	h.Login("1003", addr(3), "NL", t0.Add(3*time.Hour))
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	if h.Changed() {
		t.Error("changed after Save")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	got, skipped, err := logins.Load(path, 0)
	if err != nil || skipped != 0 || got.Len() != 3 {
		t.Fatalf("load: %d accounts, %d skipped, %v", got.Len(), skipped, err)
	}
	a := got.Account("1001")
	if a.Last != netip.MustParseAddr("2001:db8::1") || a.LastCountry != "FR" || len(a.Addrs) != 2 ||
		!a.Addrs[addr(1)].First.Equal(t0) || !a.Countries["DE"].Equal(t0) || !a.Countries["FR"].Equal(t0.Add(time.Hour)) {
		t.Errorf("1001 loaded as %+v", a)
	}
	// A login from a country known before the restart is not new; one
	// from another is.
	if got.Login("1001", addr(9), "DE", t0.Add(5*time.Hour)) || !got.Login("1001", addr(9), "SE", t0.Add(6*time.Hour)) {
		t.Error("countries not restored")
	}
	// A smaller bound keeps the most recently used.
	small, skipped, err := logins.Load(path, 2)
	if err != nil || small.Len() != 2 || skipped != 1 || small.Account("1001") != nil || small.Account("1003") == nil {
		t.Errorf("bounded load: %d accounts, %d skipped, %v", small.Len(), skipped, err)
	}
	// Missing: empty, no error.
	if h, _, err := logins.Load(filepath.Join(t.TempDir(), "none.json"), 0); err != nil || h.Len() != 0 {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadHostile: whatever is at the path, Load keeps its bounds and
// says what is wrong; it never hangs on a FIFO.
func TestLoadHostile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	long := strings.Repeat("x", 300)
	var addrs []string
	for i := range logins.MaxAddrs + 5 {
		addrs = append(addrs, fmt.Sprintf(`{"addr":"198.51.0.%d","first":"2026-12-01T09:00:00Z","last":"2026-12-01T09:00:00Z"}`, i))
	}
	p := write("odd.json", `{"version":1,"accounts":[
{"account":"1001","addrs":[`+strings.Join(addrs, ",")+`],"countries":{"DE":"2026-12-01T09:00:00Z","de":"2026-12-01T09:00:00Z","<b>":"2026-12-01T09:00:00Z"},"last":"203.0.113.1","last_country":"FR"},
{"account":"","addrs":[]},
{"account":"`+long+`","addrs":[]},
{"account":"1001","addrs":[]}]}`)
	h, skipped, err := logins.Load(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := h.Account("1001")
	if h.Len() != 1 || len(a.Addrs) != logins.MaxAddrs || len(a.Countries) != 1 || a.Last.IsValid() || a.LastCountry != "" {
		t.Errorf("loaded %d accounts, 1001 = %d addrs, countries %v, last %v %q", h.Len(), len(a.Addrs), a.Countries, a.Last, a.LastCountry)
	}
	if want := 5 + 2 + 3; skipped != want {
		t.Errorf("skipped %d; want %d", skipped, want)
	}
	for name, content := range map[string]string{
		"garbage.json":  "not json",
		"version.json":  `{"version":7,"accounts":[]}`,
		"bad_addr.json": `{"version":1,"accounts":[{"account":"1","addrs":[{"addr":"999.1.1.1"}]}]}`,
	} {
		if _, _, err := logins.Load(write(name, content), 0); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := logins.Load(fifo, 0); err == nil || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("FIFO: %v", err)
	}
}
