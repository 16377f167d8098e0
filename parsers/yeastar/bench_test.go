package yeastar_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// BenchmarkParse parses each testdata file and reports lines/s.
func BenchmarkParse(b *testing.B) { parsertest.Bench(b, newParser, parsertest.Files()...) }
