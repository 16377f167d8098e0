package kamailio_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// FuzzParse checks, for any input, that the parser does not panic and that
// an event it produces is complete (a SIP failure with its time and port)
// and its address is written in the line (FuzzHostile checks that it is
// the packet's). Seeds: every testdata line. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/kamailio
func FuzzParse(f *testing.F) { parsertest.Fuzz(f, newParser, parsertest.AddrWritten, checkEvent) }

// checkEvent asserts what every Kamailio event must satisfy besides
// parsertest.CheckEvent.
func checkEvent(t testing.TB, line []byte, ev *parsers.Event) {
	t.Helper()
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
}
