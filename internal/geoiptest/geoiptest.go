// Package geoiptest writes small country databases in MaxMind's format
// (github.com/maxmind/mmdbwriter), laid out as GeoLite2-Country and DB-IP
// Lite country write theirs, for the tests of the packages that read them.
package geoiptest

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Layout is the database a test database imitates.
type Layout struct {
	Type       string // the metadata's database_type
	IPVersion  int    // 6: IPv4 and IPv6 (IPv4 inside the IPv6 tree); 4: IPv4 only
	RecordSize int    // 24, 28 or 32
	// DBIP writes DB-IP's record (country with is_in_european_union, no
	// registered_country) instead of GeoLite2's.
	DBIP bool
	// Built is the build time written in the metadata (zero: now).
	Built time.Time
}

// The layouts of the two free databases.
var (
	GeoLite2 = Layout{Type: "GeoLite2-Country", IPVersion: 6, RecordSize: 24}
	DBIP     = Layout{Type: "DBIP-Country-Lite", IPVersion: 6, RecordSize: 24, DBIP: true}
)

// Record is the record of a country as the layout writes it.
func (l Layout) Record(iso string) mmdbtype.Map {
	country := mmdbtype.Map{
		"geoname_id": mmdbtype.Uint32(1),
		"iso_code":   mmdbtype.String(iso),
		"names":      mmdbtype.Map{"en": mmdbtype.String("Country " + iso)},
	}
	rec := mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(6255148),
			"names": mmdbtype.Map{"en": mmdbtype.String("Europe")}},
		"country": country,
	}
	if l.DBIP {
		country["is_in_european_union"] = mmdbtype.Bool(false)
	} else {
		rec["registered_country"] = country.Copy()
	}
	return rec
}

// Bytes builds a database of networks (CIDR) and their ISO codes.
func Bytes(tb testing.TB, l Layout, countries map[string]string) []byte {
	tb.Helper()
	recs := map[string]mmdbtype.Map{}
	for n, iso := range countries {
		recs[n] = l.Record(iso)
	}
	return Records(tb, l, recs)
}

// Records builds a database of networks (CIDR) and the records given.
func Records(tb testing.TB, l Layout, records map[string]mmdbtype.Map) []byte {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: l.Type, IPVersion: l.IPVersion, RecordSize: l.RecordSize, BuildEpoch: epoch(l.Built),
		Description: map[string]string{"en": "sipguard test database (" + l.Type + ")"}, Languages: []string{"en"},
		// Tests use documentation and private ranges too.
		IncludeReservedNetworks: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	for s, rec := range records {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			tb.Fatalf("insert %s: %v", s, err)
		}
	}
	var b bytes.Buffer
	if _, err := tree.WriteTo(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func epoch(t time.Time) int64 {
	if t.IsZero() {
		return 0 // mmdbwriter: now
	}
	return t.Unix()
}

// Write writes a GeoLite2-Country database of networks and their ISO
// codes into dir and returns its path.
func Write(tb testing.TB, dir string, countries map[string]string) string {
	tb.Helper()
	path := filepath.Join(dir, "country.mmdb")
	if err := os.WriteFile(path, Bytes(tb, GeoLite2, countries), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
