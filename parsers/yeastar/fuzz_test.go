package yeastar_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// FuzzParse checks, for any input, that the parser does not panic and that
// an event it produces is complete, its address is written in the line
// (FuzzHostile checks that it is the packet's), and it comes from a line
// with a syslog header of the program asterisk.
// Seeds: every testdata line. Run longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10m ./parsers/yeastar
func FuzzParse(f *testing.F) {
	parsertest.Fuzz(f, newParser, parsertest.AddrWritten, func(t testing.TB, line []byte, _ *parsers.Event) {
		if !hasAsteriskHeader(line) {
			t.Fatalf("event from %q, which has no syslog header of asterisk", line)
		}
	})
}

// hasAsteriskHeader reports whether line has "asterisk" in a syslog
// header's program position, roughly: within its first 100 bytes, followed
// by "[", ":" or " " (RFC 5424).
func hasAsteriskHeader(line []byte) bool {
	head := line[:min(len(line), 100)]
	for i := 0; i+len("asterisk") < len(head); i++ {
		if string(head[i:i+len("asterisk")]) == "asterisk" && i > 0 && head[i-1] == ' ' {
			switch head[i+len("asterisk")] {
			case '[', ':', ' ':
				return true
			}
		}
	}
	return false
}
