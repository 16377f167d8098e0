package asterisk_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// FuzzParse checks, for any input, that the parser does not panic and that
// an event it produces is complete and its address is written in the line.
// Seeds: every testdata line. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/asterisk
func FuzzParse(f *testing.F) { parsertest.Fuzz(f, newParser, parsertest.AddrWritten) }
