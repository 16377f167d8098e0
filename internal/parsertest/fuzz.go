package parsertest

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

// Seed adds every testdata/*.log line to the fuzz corpus.
func Seed(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, file := range files {
		_, lines := Lines(f, file)
		for _, l := range lines {
			f.Add(l)
		}
	}
}

// A Check asserts what an event a parser made of line must satisfy.
type Check func(t testing.TB, line []byte, ev *parsers.Event)

// Fuzz is the body of a parser package's FuzzParse. Seeded with every
// testdata line, it checks for any input that the parser does not panic
// and that every event it makes passes CheckEvent and then checks. Each
// input is parsed twice by a new parser: parsers keep state between lines
// (quarantines, timestamp caches).
func Fuzz(f *testing.F, newParser func(testing.TB) parsers.Parser, checks ...Check) {
	Seed(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		p := newParser(t)
		var ev parsers.Event
		for range 2 {
			if p.Parse(line, &ev) != parsers.Matched {
				continue
			}
			CheckEvent(t, line, &ev)
			for _, check := range checks {
				check(t, line, &ev)
			}
		}
	})
}

// CheckEvent asserts what every event must satisfy: an address that can
// be banned (valid, unmapped, without a zone, not unspecified), a failure
// kind or AuthSucceeded, and a known service.
func CheckEvent(t testing.TB, line []byte, ev *parsers.Event) {
	t.Helper()
	if !ev.Addr.IsValid() || ev.Addr.Is4In6() || ev.Addr.Zone() != "" || ev.Addr.IsUnspecified() {
		t.Fatalf("bad address %v from %q", ev.Addr, line)
	}
	if !ev.Kind.Failure() && ev.Kind != parsers.AuthSucceeded {
		t.Fatalf("bad kind %v from %q", ev.Kind, line)
	}
	if ev.Service < parsers.SIP || ev.Service > parsers.GUI {
		t.Fatalf("bad service %v from %q", ev.Service, line)
	}
}

// AddrWritten is the Check that the event's address is written in the
// line (see AddrInLine).
func AddrWritten(t testing.TB, line []byte, ev *parsers.Event) {
	t.Helper()
	if !AddrInLine(line, ev.Addr) {
		t.Fatalf("address %v is not written in %q", ev.Addr, line)
	}
}

// AddrInLine reports whether some part of a run of address characters in
// line (such as the address in "D:198.51.100.7:5060") parses to a.
func AddrInLine(line []byte, a netip.Addr) bool {
	isAddrChar := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.' || c == '%'
	}
	for i := 0; i < len(line); {
		if !isAddrChar(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isAddrChar(line[j]) {
			j++
		}
		tok := line[i:j]
		for s := range tok {
			// An address is at most 45 characters ("ffff:...:255.255.255.255").
			for e := min(len(tok), s+45); e > s; e-- {
				if b, err := netip.ParseAddr(string(tok[s:e])); err == nil && b.Unmap().WithZone("") == a {
					return true
				}
			}
		}
		i = j
	}
	return false
}
