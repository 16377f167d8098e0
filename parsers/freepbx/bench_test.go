package freepbx_test

import (
	"path/filepath"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// BenchmarkParse parses each testdata file and reports lines/s.
func BenchmarkParse(b *testing.B) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, file := range files {
		b.Run(filepath.Base(file), func(b *testing.B) {
			_, lines := parsertest.Lines(b, file)
			size := 0
			for _, l := range lines {
				size += len(l) + 1
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var ev parsers.Event
			for b.Loop() {
				p := newParser(b)
				for _, l := range lines {
					p.Parse(l, &ev)
				}
			}
			b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
