package threecx_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// FuzzParse checks, for any input, that the parser does not panic and never
// produces an event: no 3CX line is trusted for its addresses. Run longer
// with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/threecx
func FuzzParse(f *testing.F) {
	parsertest.Seed(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		p := newParser(t)
		var ev parsers.Event
		if o := p.Parse(line, &ev); o == parsers.Matched || ev.Addr.IsValid() {
			t.Fatalf("%q: %v %v; 3CX lines never give an event", line, o, ev.Addr)
		}
	})
}
