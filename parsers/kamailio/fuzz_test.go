package kamailio_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// FuzzParse checks, for any input, that the parser does not panic and that
// an event it produces is complete and its address is written in the line.
// Seeds: every testdata line. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/kamailio
func FuzzParse(f *testing.F) {
	parsertest.Seed(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		p := newParser(t)
		var ev parsers.Event
		// Twice: the parser keeps state between lines (carriage returns,
		// the timestamp cache).
		for range 2 {
			if p.Parse(line, &ev) != parsers.Matched {
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
	if ev.Kind.String() == "" || !parsers.AllKinds.Has(ev.Kind) {
		t.Fatalf("bad kind %v from %q", ev.Kind, line)
	}
	if ev.Service != parsers.SIP {
		t.Fatalf("bad service %v from %q", ev.Service, line)
	}
	if ev.Time.IsZero() {
		t.Fatalf("no time from %q", line)
	}
	if ev.Port == 0 {
		t.Fatalf("no port from %q", line)
	}
	if !parsertest.AddrInLine(line, ev.Addr) {
		t.Fatalf("address %v is not written in %q", ev.Addr, line)
	}
}
