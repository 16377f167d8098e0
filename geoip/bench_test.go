package geoip_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/internal/geoiptest"
)

// big builds a database of n IPv4 /24s and n IPv6 /48s over 200
// countries: the order of a real country database (DB-IP Lite country has
// some 500,000 networks).
func big(b *testing.B, n int) []byte {
	b.Helper()
	m := make(map[string]string, 2*n)
	for i := range n {
		iso := string(rune('A'+i%20)) + string(rune('A'+i/20%10))
		m[fmt.Sprintf("%d.%d.%d.0/24", 1+i>>16%200, i>>8&0xff, i&0xff)] = iso
		m[fmt.Sprintf("2a%02x:%x:%x::/48", i>>16&0xff, i>>8&0xff, i&0xff)] = iso
	}
	return geoiptest.Bytes(b, geoiptest.GeoLite2, m)
}

// BenchmarkOpen measures reading and verifying a database of 200,000
// networks (what start and reload cost).
func BenchmarkOpen(b *testing.B) {
	data := big(b, 100000)
	path := write(b, data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		db, err := geoip.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

// BenchmarkCountry measures one lookup.
func BenchmarkCountry(b *testing.B) {
	db, err := geoip.Open(write(b, big(b, 100000)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	addrs := []netip.Addr{netip.MustParseAddr("1.1.2.3"), netip.MustParseAddr("2a00:1:2::1"), netip.MustParseAddr("250.1.1.1")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		db.Country(addrs[i%len(addrs)])
		i++
	}
}

// BenchmarkNetworks measures listing two countries' networks in a
// database of 200,000 (what start and reload cost with allow_countries).
func BenchmarkNetworks(b *testing.B) {
	db, err := geoip.Open(write(b, big(b, 100000)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		ps, err := db.Networks([]string{"AA", "BB"})
		if err != nil || len(ps) == 0 {
			b.Fatal(len(ps), err)
		}
	}
}
