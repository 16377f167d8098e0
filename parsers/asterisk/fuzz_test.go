package asterisk_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// FuzzParse checks, for any input, that the parser does not panic and that
// an event it produces is complete and its address is written in the line
// (FuzzHostile checks that it is the packet's). Seeds: every testdata line. Run longer with
//
//	go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 10m ./parsers/asterisk
func FuzzParse(f *testing.F) { parsertest.Fuzz(f, newParser, parsertest.AddrWritten) }

// hostile writes Asterisk's failure messages, from its format strings,
// with hostile fields, knowing the packet's address. Raw newlines in the
// fields Asterisk writes with them, and lines past its 8 KiB limit, are
// left to asterisk_pending_test.go (issue 13 items 1 and 4).
var hostile = parsertest.Generator{
	New:  newParser,
	Case: func(g *parsertest.Gen) parsertest.Case { return g.AsteriskCase(parsertest.AsteriskOptions{}) },
}

// TestHostile: every event from a generated line has the packet's address,
// or the line is counted as dropped.
func TestHostile(t *testing.T) { hostile.Test(t, 20000) }

// FuzzHostile is TestHostile with the fuzzer making the generator's
// choices. Run it with
//
//	go test -run '^$' -fuzz '^FuzzHostile$' -fuzztime 3m ./parsers/asterisk
func FuzzHostile(f *testing.F) { hostile.Fuzz(f) }
