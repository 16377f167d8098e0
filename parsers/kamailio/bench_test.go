package kamailio_test

import (
	"slices"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// BenchmarkParse parses the lines a real Kamailio wrote (both log engines)
// and lines of noise, and reports lines/s.
func BenchmarkParse(b *testing.B) {
	noise := []byte(" 3(19149) INFO: <core> [core/udp_server.c:154]: probe_max_receive_buffer(): SO_RCVBUF is initially 212992 for fd 4")
	parsertest.Bench(b, newParser,
		parsertest.File("stderr", "testdata/real_stderr.log"),
		parsertest.File("json", "testdata/real_json.log"),
		// Many lines, so that making the parser each pass costs nothing.
		parsertest.Corpus{Name: "noise", Lines: func(testing.TB) [][]byte { return slices.Repeat([][]byte{noise}, 1000) }},
	)
}
