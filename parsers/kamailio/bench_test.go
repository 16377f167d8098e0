package kamailio_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/kamailio"
)

// BenchmarkParse parses the lines a real Kamailio wrote (both log engines)
// and a line of noise, and reports lines/s.
func BenchmarkParse(b *testing.B) {
	noise := []byte(" 3(19149) INFO: <core> [core/udp_server.c:154]: probe_max_receive_buffer(): SO_RCVBUF is initially 212992 for fd 4")
	for _, tc := range []struct{ name, file string }{
		{"stderr", "testdata/real_stderr.log"},
		{"json", "testdata/real_json.log"},
		{"noise", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lines := [][]byte{noise}
			if tc.file != "" {
				_, lines = parsertest.Lines(b, tc.file)
			}
			size := 0
			for _, l := range lines {
				size += len(l) + 1
			}
			p, err := kamailio.New(parsers.Options{})
			if err != nil {
				b.Fatal(err)
			}
			var ev parsers.Event
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range lines {
					p.Parse(l, &ev)
				}
			}
			b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
