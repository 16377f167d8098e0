// Package geoip reads a country database in MaxMind's format: DB-IP Lite
// country or GeoLite2-Country (or their City editions), which the user
// downloads (README.md says where). sipguard shows the country of an
// address in reports, ban logs, notifications and `list`, and the toll
// fraud and compromise rules notice an account logging in from a country
// it never used.
//
// The file is read whole into memory and checked (the search tree and
// every record, by maxminddb's Verify) before any lookup: a corrupt,
// truncated or foreign file is an error at Open, never a panic or a wrong
// country later. Reading it rather than mapping it also means a database
// replaced in place (a download over the old file) cannot pull the pages
// from under a running daemon; it takes the new one when it re-opens it
// (reload).
package geoip

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// MaxSize is the largest database Open reads. A country database is a few
// MiB, a city one under 150 MiB.
const MaxSize = 256 << 20

// DB is an open country database. Its lookups are safe for concurrent use.
type DB struct {
	r     *maxminddb.Reader
	Type  string    // the metadata's database_type, e.g. "GeoLite2-Country"
	Built time.Time // when it was built (its metadata's build_epoch)
}

// Open reads and checks the database at path.
func Open(path string) (*DB, error) {
	// The type is looked at before the open (opening a FIFO would wait for
	// a writer, a device may act on it) and again on the open file, which
	// is opened without waiting.
	fi, err := os.Stat(path)
	if err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("geoip database %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("geoip database %s: more than %d bytes", path, MaxSize)
	}
	db, err := open(data)
	if err != nil {
		return nil, fmt.Errorf("geoip database %s: %w", path, err)
	}
	return db, nil
}

// regular refuses what Open does not read: anything but a regular file of
// at most MaxSize bytes.
func regular(path string, fi os.FileInfo) error {
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file", path)
	case fi.Size() > MaxSize:
		return fmt.Errorf("%s: %d bytes, more than a country database's %d", path, fi.Size(), MaxSize)
	}
	return nil
}

// open checks data and opens it.
func open(data []byte) (*DB, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("not a MaxMind DB file (mmdb): %w", err)
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("corrupt MaxMind DB file: %w", err)
	}
	t := r.Metadata.DatabaseType
	if lt := strings.ToLower(t); !strings.Contains(lt, "country") && !strings.Contains(lt, "city") {
		return nil, fmt.Errorf("a %q database: want a country database (DB-IP Lite country, GeoLite2-Country)", t)
	}
	return &DB{r: r, Type: t, Built: r.Metadata.BuildTime().UTC()}, nil
}

// record is what Country reads of a record: GeoLite2's and DB-IP's
// country, and GeoLite2's registered country for networks without one
// (some anycast and satellite ranges).
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// Country returns the ISO 3166-1 alpha-2 code of addr's country, or ""
// when the database does not know it (or db is nil). Whatever the file
// holds, only two capital letters come out: the code goes into logs,
// HTML and notify commands.
func (db *DB) Country(addr netip.Addr) string {
	if db == nil || !addr.IsValid() {
		return ""
	}
	var rec record
	// An IPv4-mapped address is looked up as IPv4: the IPv4 subtree of an
	// IPv6 database need not be aliased at ::ffff:0:0/96.
	if err := db.r.Lookup(addr.Unmap().WithZone("")).Decode(&rec); err != nil {
		return ""
	}
	if iso := rec.Country.ISOCode; isISO(iso) {
		return iso
	}
	if iso := rec.Registered.ISOCode; isISO(iso) {
		return iso
	}
	return ""
}

// isISO reports whether s is two capital letters.
func isISO(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// Close lets the database go. Lookups after it find nothing.
func (db *DB) Close() error {
	if db == nil {
		return nil
	}
	return db.r.Close()
}

// Networks returns the networks of the database whose country (as Country
// reads it: the country, else the registered country) is one of codes,
// IPv4 ones as IPv4 prefixes. The IPv4 subtree of an IPv6 database is
// walked once, not at each of its aliases (::ffff:0:0/96, 2002::/16).
// Adjacent networks are not merged here: the firewall merges them into
// ranges. Records are decoded once each, however many networks share
// them.
func (db *DB) Networks(codes []string) ([]netip.Prefix, error) {
	if db == nil || len(codes) == 0 {
		return nil, nil
	}
	want := map[string]bool{}
	for _, c := range codes {
		want[c] = true
	}
	byRecord := map[uintptr]bool{}
	var out []netip.Prefix
	for res := range db.r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("walk the networks: %w", err)
		}
		in, seen := byRecord[res.Offset()]
		if !seen {
			var rec record
			if err := res.Decode(&rec); err != nil {
				return nil, fmt.Errorf("network %s: %w", res.Prefix(), err)
			}
			iso := rec.Country.ISOCode
			if !isISO(iso) {
				iso = rec.Registered.ISOCode
			}
			in = isISO(iso) && want[iso]
			byRecord[res.Offset()] = in
		}
		if p := res.Prefix(); in && p.IsValid() {
			out = append(out, p)
		}
	}
	return out, nil
}
