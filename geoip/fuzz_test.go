package geoip_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/internal/geoiptest"
)

// FuzzOpen opens corrupted databases from a file, as the daemon does, and
// looks addresses up in those that open: never a panic, and only ISO codes
// come out.
func FuzzOpen(f *testing.F) {
	for _, l := range []geoiptest.Layout{geoiptest.GeoLite2, geoiptest.DBIP, {Type: "x-City", IPVersion: 4, RecordSize: 32}} {
		good := geoiptest.Bytes(f, l, countries)
		f.Add(good, uint16(0), byte(0))
		f.Add(good, uint16(len(good)/3), byte(0xff))
		f.Add(good, uint16(len(good)-30), byte(0x01))
		f.Add(good[:len(good)-1], uint16(7), byte(0x80))
	}
	f.Add([]byte("\xab\xcd\xefMaxMind.com"), uint16(0), byte(0))
	addrs := []netip.Addr{netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("81.1.1.1"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("::ffff:1.2.3.4"), netip.MustParseAddr("::"), netip.MustParseAddr("255.255.255.255")}
	f.Fuzz(func(t *testing.T, data []byte, at uint16, flip byte) {
		if len(data) > 0 {
			data[int(at)%len(data)] ^= flip
		}
		path := filepath.Join(t.TempDir(), "f.mmdb")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := geoip.Open(path)
		if err != nil {
			return
		}
		defer db.Close()
		for _, a := range addrs {
			if c := db.Country(a); c != "" && (len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z') {
				t.Fatalf("Country(%s) = %q", a, c)
			}
		}
	})
}
