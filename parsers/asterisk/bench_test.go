package asterisk_test

import (
	"bytes"
	"testing"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/asterisk"
)

// BenchmarkParse parses the generated Asterisk mixes (the 1M-line mix of
// bench/compare.sh, scaled down) and reports lines/s.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		name string
		mix  logmix.Mix
	}{{"default", logmix.Default}, {"failures", logmix.Failures}, {"noise", logmix.Noise}} {
		b.Run(tc.name, func(b *testing.B) {
			var buf bytes.Buffer
			if _, err := logmix.Generate(&buf, logmix.Options{Lines: 100_000, Seed: 1, Mix: tc.mix}); err != nil {
				b.Fatal(err)
			}
			lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
			p, err := asterisk.New(parsers.Options{})
			if err != nil {
				b.Fatal(err)
			}
			var ev parsers.Event
			b.SetBytes(int64(buf.Len()))
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
