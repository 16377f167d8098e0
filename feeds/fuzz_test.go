package feeds_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/feeds"
)

// FuzzParse checks, for any input, that Parse does not panic, that a list
// it returns keeps the safety rules (every prefix valid, masked, unmapped,
// not too wide, not special-purpose, sorted and contained in no other; at
// most max entries; at most half of the lines rejected) and that the
// list, written out, reads back as itself. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 5m ./feeds
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.in) <= 1<<12 {
			f.Add([]byte(tc.in), uint16(tc.max))
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0))
	}
	f.Add([]byte("::ffff:192.0.2.1/127\n::ffff:0:0/95\n1.2.3.4/8\n"), uint16(3))
	f.Add([]byte("fe80::1\n::/64\n0.0.0.0/8\n::ffff:127.0.0.1\n192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.4\n"), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		l, err := feeds.Parse(bytes.NewReader(in), int(max))
		if err != nil {
			if l.Prefixes != nil || l.Entries != 0 {
				t.Fatalf("got a list %v with error %v", l.Prefixes, err)
			}
			return
		}
		if err := checkAggregated(l.Prefixes); err != nil {
			t.Fatalf("%v, from %q", err, in)
		}
		limit := int(max)
		if limit == 0 {
			limit = feeds.DefaultMaxEntries
		}
		if l.Entries > limit || len(l.Prefixes) > l.Entries-l.TooWide-l.Special {
			t.Fatalf("got %d prefixes from %d entries (%d too wide, %d special), max %d", len(l.Prefixes), l.Entries, l.TooWide, l.Special, limit)
		}
		for _, p := range l.Prefixes {
			if why, bad := bans.Special(p); bad {
				t.Fatalf("got %s: %s", p, why)
			}
		}
		if bad := l.Invalid + l.TooWide + l.Special; bad*2 > l.Invalid+l.Entries {
			t.Fatalf("got a list with %d of %d lines rejected", bad, l.Invalid+l.Entries)
		}
		if len(l.Prefixes) == 0 {
			return
		}
		var b strings.Builder
		for _, p := range l.Prefixes {
			fmt.Fprintf(&b, "%s\n", p)
		}
		again, err := feeds.Parse(strings.NewReader(b.String()), int(max))
		if err != nil || !slices.Equal(again.Prefixes, l.Prefixes) || again.Invalid != 0 || again.Masked != 0 {
			t.Fatalf("list %v read back as %v (%d invalid, %d masked), %v", l.Prefixes, again.Prefixes, again.Invalid, again.Masked, err)
		}
	})
}

// checkAggregated checks the invariants of List.Prefixes.
func checkAggregated(ps []netip.Prefix) error {
	for i, p := range ps {
		switch {
		case !p.IsValid():
			return fmt.Errorf("prefix %d: %v is invalid", i, p)
		case p != p.Masked():
			return fmt.Errorf("prefix %d: %v is not masked", i, p)
		case p.Addr().Is4In6():
			return fmt.Errorf("prefix %d: %v is IPv4-mapped", i, p)
		case p.Addr().Zone() != "":
			return fmt.Errorf("prefix %d: %v has a zone", i, p)
		case p.Addr().Is4() && p.Bits() < feeds.MinBits4, p.Addr().Is6() && p.Bits() < feeds.MinBits6:
			return fmt.Errorf("prefix %d: %v is too wide", i, p)
		}
		if i == 0 {
			continue
		}
		// Sorted, so if two prefixes overlap, two neighbours do.
		q := ps[i-1]
		if q.Compare(p) >= 0 {
			return fmt.Errorf("prefixes %d, %d: %v, %v are not sorted", i-1, i, q, p)
		}
		if q.Overlaps(p) {
			return fmt.Errorf("prefixes %d, %d: %v and %v overlap", i-1, i, q, p)
		}
	}
	return nil
}
