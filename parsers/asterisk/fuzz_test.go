package asterisk_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

// FuzzParse checks, for any input, that the parser does not panic and that
// an event it produces is complete and its address is written in the line.
// Seeds: every testdata line. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/asterisk
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, file := range files {
		_, lines := testLines(f, file)
		for _, l := range lines {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p := newParser(t)
		var ev parsers.Event
		// Twice: the parser keeps state between lines (quarantine, caches).
		for range 2 {
			o := p.Parse(line, &ev)
			if o != parsers.Matched {
				continue
			}
			checkEvent(t, line, &ev)
		}
	})
}

// checkEvent asserts what every produced event must satisfy.
func checkEvent(t *testing.T, line []byte, ev *parsers.Event) {
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
	if !addrInLine(line, ev.Addr) {
		t.Fatalf("address %v is not written in %q", ev.Addr, line)
	}
}

// addrInLine reports whether some part of a run of address characters in
// line (such as the address in "D:198.51.100.7:5060") parses to a.
func addrInLine(line []byte, a netip.Addr) bool {
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
