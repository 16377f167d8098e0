package freepbx_test

import (
	"bytes"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// FuzzParse checks, for any input, that the parser does not panic, that an
// event it produces is complete, and that its address is the field after
// the line's last " from ": never text written before it. Seeds: every
// testdata line. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/freepbx
func FuzzParse(f *testing.F) { parsertest.Fuzz(f, newParser, checkEvent) }

// checkEvent asserts what every FreePBX event must satisfy besides
// parsertest.CheckEvent.
func checkEvent(t testing.TB, line []byte, ev *parsers.Event) {
	t.Helper()
	if ev.Kind != parsers.AdminAuthFailed && ev.Kind != parsers.AuthSucceeded || ev.Service != parsers.GUI {
		t.Fatalf("bad kind or service %v %v from %q", ev.Kind, ev.Service, line)
	}
	if ev.Time.IsZero() {
		t.Fatalf("no time from %q", line)
	}
	if len(ev.User) > 128 {
		t.Fatalf("user of %d bytes from %q", len(ev.User), line)
	}
	// The address is the last field: what follows the last " from ",
	// up to Monolog's " [] []" end if there is one (a CR ending the line
	// is not part of it).
	line = bytes.TrimSuffix(line, []byte("\r"))
	k := bytes.LastIndex(line, []byte(" from "))
	if k < 0 {
		t.Fatalf("event from %q, which has no \" from \"", line)
	}
	last := bytes.TrimSuffix(line[k+len(" from "):], []byte(" [] []"))
	a, ok := parsers.ParseAddr(last)
	if !ok || a != ev.Addr {
		t.Fatalf("address %v is not the last field %q of %q", ev.Addr, last, line)
	}
}
