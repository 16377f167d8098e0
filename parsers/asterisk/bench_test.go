package asterisk_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/internal/parsertest"
)

// BenchmarkParse parses the generated Asterisk mixes (the 1M-line mix of
// bench/compare.sh, scaled down) and reports lines/s.
func BenchmarkParse(b *testing.B) {
	parsertest.Bench(b, newParser, mix("default", logmix.Default), mix("failures", logmix.Failures), mix("noise", logmix.Noise))
}

// BenchmarkKind parses 20,000 lines of each kind the default mix holds,
// apart: the mix's cost per line is theirs weighted by their shares
// (~71% VERBOSE, 10% each chan_sip and pjsip failures, 1.6% each
// SECURITY and WARNING), and a change to one kind hides in the mix.
// Compare with
//
//	taskset -c 1 go test -run '^$' -bench Kind -count 8 ./parsers/asterisk | benchstat -
func BenchmarkKind(b *testing.B) {
	var cs []parsertest.Corpus
	for _, k := range kinds {
		cs = append(cs, parsertest.Corpus{Name: k.name, Lines: func(t testing.TB) [][]byte { return kindLines()(t)[k.name] }})
	}
	parsertest.Bench(b, newParser, cs...)
}

// kinds tell the mix's lines apart by a piece of text each holds.
var kinds = []struct{ name, text string }{
	{"chan_sip", "chan_sip.c: Registration from '"},
	{"pjsip", "pjsip_distributor.c: Request '"},
	{"security", "SECURITY["},
	{"warning", "WARNING["},
	{"verbose", "VERBOSE["},
}

// kindLines returns up to 20,000 lines of each kind, from the default
// mix, made once.
var kindLines = sync.OnceValue(func() func(testing.TB) map[string][][]byte {
	var buf bytes.Buffer
	_, err := logmix.Generate(&buf, logmix.Options{Lines: 300_000, Seed: 1, Mix: logmix.Default})
	// Each kind's lines are copied together, as a log holds them: lines
	// scattered through the mix would cost their cache misses.
	text, n := map[string][]byte{}, map[string]int{}
	for l := range bytes.Lines(buf.Bytes()) {
		for _, k := range kinds {
			if bytes.Contains(l, []byte(k.text)) && n[k.name] < 20_000 {
				text[k.name] = append(text[k.name], l...)
				n[k.name]++
				break
			}
		}
	}
	byKind := map[string][][]byte{}
	for name, t := range text {
		byKind[name] = bytes.Split(bytes.TrimSuffix(t, []byte("\n")), []byte("\n"))
	}
	return func(t testing.TB) map[string][][]byte {
		if err != nil {
			t.Fatal(err)
		}
		return byKind
	}
})

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
