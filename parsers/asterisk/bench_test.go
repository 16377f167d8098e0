package asterisk_test

import (
	"bytes"
	"testing"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/internal/parsertest"
)

// BenchmarkParse parses the generated Asterisk mixes (the 1M-line mix of
// bench/compare.sh, scaled down) and reports lines/s.
func BenchmarkParse(b *testing.B) {
	parsertest.Bench(b, newParser, mix("default", logmix.Default), mix("failures", logmix.Failures), mix("noise", logmix.Noise))
}

// mix is the Corpus of 100,000 lines of m.
func mix(name string, m logmix.Mix) parsertest.Corpus {
	return parsertest.Corpus{Name: name, Lines: func(t testing.TB) [][]byte {
		var buf bytes.Buffer
		if _, err := logmix.Generate(&buf, logmix.Options{Lines: 100_000, Seed: 1, Mix: m}); err != nil {
			t.Fatal(err)
		}
		return bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	}}
}
