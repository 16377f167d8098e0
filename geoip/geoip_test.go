package geoip_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/internal/geoiptest"
)

var countries = map[string]string{
	"1.2.3.0/24":     "DE",
	"1.2.4.0/22":     "FR",
	"81.0.0.0/8":     "GB",
	"2001:db8::/32":  "NL",
	"2a00:1450::/32": "US",
}

// write writes data to a file and returns its path.
func write(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "country.mmdb")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t *testing.T, data []byte) *geoip.DB {
	t.Helper()
	db, err := geoip.Open(write(t, data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCountry looks addresses up in databases of both free layouts, in
// each record size, IPv4 inside the IPv6 tree and in an IPv4-only tree.
func TestCountry(t *testing.T) {
	cases := []struct{ addr, want string }{
		{"1.2.3.4", "DE"},
		{"1.2.3.255", "DE"},
		{"1.2.7.1", "FR"},
		{"1.2.2.1", ""},
		{"81.200.1.1", "GB"},
		{"::ffff:1.2.3.4", "DE"}, // IPv4-mapped: looked up as IPv4
		{"::ffff:81.1.1.1", "GB"},
		{"2001:db8::1", "NL"},
		{"2001:db8:ffff::1", "NL"},
		{"2a00:1450:4001::5", "US"},
		{"2a00:1451::1", ""},
		{"fe80::1%eth0", ""},
		{"9.9.9.9", ""},
	}
	for _, l := range []geoiptest.Layout{geoiptest.GeoLite2, geoiptest.DBIP} {
		for _, size := range []int{24, 28, 32} {
			l.RecordSize = size
			t.Run(l.Type+"/"+string(rune('0'+size/10))+string(rune('0'+size%10)), func(t *testing.T) {
				db := open(t, geoiptest.Bytes(t, l, countries))
				if db.Type != l.Type || time.Since(db.Built) > time.Hour {
					t.Errorf("type %q, built %v; want %q, now", db.Type, db.Built, l.Type)
				}
				for _, c := range cases {
					if got := db.Country(netip.MustParseAddr(c.addr)); got != c.want {
						t.Errorf("Country(%s) = %q; want %q", c.addr, got, c.want)
					}
				}
			})
		}
	}
	t.Run("IPv4 only", func(t *testing.T) {
		l := geoiptest.GeoLite2
		l.IPVersion = 4
		db := open(t, geoiptest.Bytes(t, l, map[string]string{"1.2.3.0/24": "DE"}))
		for addr, want := range map[string]string{"1.2.3.4": "DE", "::ffff:1.2.3.4": "DE", "1.2.4.1": "", "2001:db8::1": ""} {
			if got := db.Country(netip.MustParseAddr(addr)); got != want {
				t.Errorf("Country(%s) = %q; want %q", addr, got, want)
			}
		}
	})
	t.Run("nil and invalid", func(t *testing.T) {
		var db *geoip.DB
		if got := db.Country(netip.MustParseAddr("1.2.3.4")); got != "" {
			t.Errorf("nil DB: %q", got)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
		if got := open(t, geoiptest.Bytes(t, geoiptest.GeoLite2, countries)).Country(netip.Addr{}); got != "" {
			t.Errorf("invalid address: %q", got)
		}
	})
	t.Run("after Close", func(t *testing.T) {
		db, err := geoip.Open(write(t, geoiptest.Bytes(t, geoiptest.GeoLite2, countries)))
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if got := db.Country(netip.MustParseAddr("1.2.3.4")); got != "" {
			t.Errorf("after Close: %q", got)
		}
	})
}

// TestCountry_Records checks what Country makes of the records a database
// may hold: the registered country when no country is set, and nothing
// but two capital letters out of hostile or odd values.
func TestCountry_Records(t *testing.T) {
	iso := func(s string) mmdbtype.Map { return mmdbtype.Map{"iso_code": mmdbtype.String(s)} }
	recs := map[string]mmdbtype.Map{
		"10.0.1.0/24": {"registered_country": iso("SE")},                          // GeoLite2: anycast, no country
		"10.0.2.0/24": {"country": iso("de")},                                     // lower case
		"10.0.3.0/24": {"country": iso("<script>")},                               // written into HTML and logs
		"10.0.4.0/24": {"country": iso("D\nE")},                                   // a forged log line
		"10.0.5.0/24": {"country": mmdbtype.Map{"iso_code": mmdbtype.Uint32(49)}}, // wrong type
		"10.0.6.0/24": {"country": mmdbtype.String("DE")},                         // IPinfo-like flat layout
		"10.0.7.0/24": {"country": iso("XK"), "registered_country": iso("RS")},    // country wins
		"10.0.8.0/24": {"country": iso(""), "registered_country": iso("NO")},
		"10.0.9.0/24": {},
	}
	db := open(t, geoiptest.Records(t, geoiptest.GeoLite2, recs))
	want := map[string]string{
		"10.0.1.1": "SE", "10.0.2.1": "", "10.0.3.1": "", "10.0.4.1": "", "10.0.5.1": "",
		"10.0.6.1": "", "10.0.7.1": "XK", "10.0.8.1": "NO", "10.0.9.1": "",
	}
	for addr, w := range want {
		if got := db.Country(netip.MustParseAddr(addr)); got != w {
			t.Errorf("Country(%s) = %q; want %q", addr, got, w)
		}
	}
}

// TestOpen_Errors: whatever the file is, Open says what is wrong with it,
// naming the file.
func TestOpen_Errors(t *testing.T) {
	good := geoiptest.Bytes(t, geoiptest.GeoLite2, countries)
	asn := geoiptest.Layout{Type: "GeoLite2-ASN", IPVersion: 6, RecordSize: 24}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"text", []byte("DE,1.2.3.0/24\n"), "not a MaxMind DB file"},
		{"csv gzipped", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), "not a MaxMind DB file"},
		{"half", good[:len(good)/2], "not a MaxMind DB file"},
		{"metadata cut", good[:len(good)-20], ""},
		{"tree overwritten", append(bytesOf(0xff, 64), good[64:]...), "corrupt"},
		{"ASN database", geoiptest.Bytes(t, asn, countries), `"GeoLite2-ASN" database`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, c.data)
			db, err := geoip.Open(path)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q; want the path and %q", err, c.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := geoip.Open(filepath.Join(t.TempDir(), "none.mmdb"))
		if !os.IsNotExist(unwrapAll(err)) {
			t.Errorf("error %v; want not exist", err)
		}
	})
	t.Run("FIFO", func(t *testing.T) {
		// Opening it must not wait for a writer.
		fifo := filepath.Join(t.TempDir(), "country.mmdb")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := geoip.Open(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "huge.mmdb")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(geoip.MaxSize + 1) // sparse: no disk used
		f.Close()
		if _, err := geoip.Open(path); err == nil || !strings.Contains(err.Error(), "more than a country database's") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := geoip.Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("error %v", err)
		}
	})
}

// TestOpen_EveryTruncation cuts a database at every length: each is an
// error or, when the cut leaves a whole database, a working one; never a
// panic.
func TestOpen_EveryTruncation(t *testing.T) {
	good := geoiptest.Bytes(t, geoiptest.DBIP, countries)
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.mmdb")
	opened := 0
	for n := 0; n < len(good); n++ {
		if err := os.WriteFile(path, good[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := geoip.Open(path)
		if err != nil {
			continue
		}
		opened++
		db.Country(netip.MustParseAddr("1.2.3.4"))
		db.Country(netip.MustParseAddr("2001:db8::1"))
		db.Close()
	}
	if opened > 0 {
		t.Errorf("%d truncated databases of %d opened", opened, len(good))
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// TestNetworks lists the networks of some countries: every network of
// theirs and none of another's, IPv4 ones as IPv4 (once, not at the
// IPv4 subtree's aliases), in both layouts and an IPv4-only tree.
func TestNetworks(t *testing.T) {
	covered := func(ps []netip.Prefix, addr string) bool {
		a := netip.MustParseAddr(addr)
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, l := range []geoiptest.Layout{geoiptest.GeoLite2, geoiptest.DBIP} {
		t.Run(l.Type, func(t *testing.T) {
			db := open(t, geoiptest.Bytes(t, l, countries))
			ps, err := db.Networks([]string{"DE", "NL"})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if p.Addr().Is4In6() {
					t.Errorf("IPv4-mapped network %s: want IPv4 networks as IPv4", p)
				}
				if c := db.Country(p.Addr()); c != "DE" && c != "NL" {
					t.Errorf("network %s is in %q", p, c)
				}
			}
			for addr, want := range map[string]bool{
				"1.2.3.0": true, "1.2.3.255": true, "2001:db8::": true, "2001:db8:ffff:ffff::1": true,
				"1.2.4.1": false, "81.1.1.1": false, "2a00:1450::1": false, "9.9.9.9": false,
			} {
				if got := covered(ps, addr); got != want {
					t.Errorf("%s covered: %v; want %v (networks %v)", addr, got, want, ps)
				}
			}
			if ps, err := db.Networks([]string{"SE"}); err != nil || len(ps) != 0 {
				t.Errorf("a country without networks: %v, %v", ps, err)
			}
		})
	}
	l := geoiptest.GeoLite2
	l.IPVersion = 4
	db := open(t, geoiptest.Bytes(t, l, map[string]string{"1.2.3.0/24": "DE", "1.2.4.0/24": "FR"}))
	if ps, err := db.Networks([]string{"DE"}); err != nil || len(ps) != 1 || ps[0] != netip.MustParsePrefix("1.2.3.0/24") {
		t.Errorf("IPv4-only database: %v, %v; want [1.2.3.0/24]", ps, err)
	}
	var none *geoip.DB
	if ps, err := none.Networks([]string{"DE"}); ps != nil || err != nil {
		t.Errorf("nil DB: %v, %v", ps, err)
	}
}
