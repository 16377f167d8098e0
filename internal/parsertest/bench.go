package parsertest

import (
	"path/filepath"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

// A Corpus is a named set of lines to benchmark a parser on, made only
// when its benchmark runs.
type Corpus struct {
	Name  string
	Lines func(testing.TB) [][]byte
}

// File is the Corpus of the lines of a testdata file.
func File(name, path string) Corpus {
	return Corpus{Name: name, Lines: func(t testing.TB) [][]byte {
		_, lines := Lines(t, path)
		return lines
	}}
}

// Files is a Corpus per testdata/*.log file, named by its file.
func Files() []Corpus {
	files, _ := filepath.Glob("testdata/*.log")
	var cs []Corpus
	for _, file := range files {
		cs = append(cs, File(filepath.Base(file), file))
	}
	return cs
}

// Bench is the body of a parser package's BenchmarkParse: a sub-benchmark
// per corpus, each pass parsing every line of it with a new parser (so
// that every pass starts from the same state), reporting allocations and
// the throughput in bytes and lines/s, and the time per line.
func Bench(b *testing.B, newParser func(testing.TB) parsers.Parser, corpora ...Corpus) {
	for _, c := range corpora {
		b.Run(c.Name, func(b *testing.B) {
			lines := c.Lines(b)
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
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(len(lines))*float64(b.N)), "ns/line")
		})
	}
}
