package asterisk_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/asterisk"
)

// plain is the parser without its Ignores: a Stream of it calls Parse for
// every line.
type plain struct{ p *asterisk.Parser }

func (p plain) Parse(line []byte, ev *parsers.Event) parsers.Outcome { return p.p.Parse(line, ev) }
func (p plain) Idle() bool                                           { return p.p.Idle() }

// TestIgnores: a Stream that skips the lines Ignores names gives exactly what one
// that parses every line gives, line by line (events, outcomes, the
// parser's idleness) and in its counts, over the testdata (forged and
// hostile lines, windows of messages broken into several lines), the mix
// of bench/compare.sh and the hostile generator's messages.
func TestIgnores(t *testing.T) {
	var lines [][]byte
	files, _ := filepath.Glob("testdata/*.log")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(b, []byte("\n"))...)
	}
	var mix bytes.Buffer
	if _, err := logmix.Generate(&mix, logmix.Options{Lines: 50_000, Seed: 3, Mix: logmix.Default}); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, bytes.Split(mix.Bytes(), []byte("\n"))...)
	g := parsertest.Seeded(7)
	for range 20_000 {
		c := g.AsteriskCase(parsertest.AsteriskOptions{})
		for l := range strings.SplitSeq(c.Text, "\n") {
			lines = append(lines, []byte(l))
		}
		if g.OneIn(4) { // VERBOSE lines inside a message's window
			lines = append(lines, []byte("[2026-11-26 05:09:12] VERBOSE[3116] pbx.c:     -- a line of its own"))
		}
	}

	opts := parsers.Options{Location: time.UTC, Now: func() time.Time { return parsertest.Now }}
	none := func() time.Time { return time.Time{} }
	skipping, err := parsers.NewStreamFrom("s", "asterisk", asterisk.New, opts, none)
	if err != nil {
		t.Fatal(err)
	}
	parsing, _ := parsers.NewStreamFrom("s", "asterisk", func(o parsers.Options) (parsers.Parser, error) {
		p, err := asterisk.New(o)
		return plain{p.(*asterisk.Parser)}, err
	}, opts, none)
	p, _ := asterisk.New(opts)
	if _, ok := p.(parsers.Ignorer); !ok {
		t.Fatal("the Asterisk parser is no Ignorer")
	}
	skipped := 0
	for i, l := range lines {
		var a, b parsers.Event
		okA, okB := skipping.Uncounted(l, int64(i), &a), parsing.Uncounted(l, int64(i), &b)
		if okA != okB || a != b || skipping.Idle() != parsing.Idle() {
			t.Fatalf("line %d %q: skipping %v %+v, parsing %v %+v", i, l, okA, a, okB, b)
		}
		if p.(parsers.Ignorer).Ignores(l) {
			skipped++
		}
	}
	skipping.AddLines(int64(len(lines)))
	parsing.AddLines(int64(len(lines)))
	if a, b := skipping.Counts(), parsing.Counts(); !reflect.DeepEqual(a, b) {
		t.Errorf("counts: skipping %+v, parsing %+v", a, b)
	}
	if skipped < len(lines)/2 {
		t.Errorf("%d of %d lines skipped: Ignores does not recognise VERBOSE lines", skipped, len(lines))
	}
}

// BenchmarkIgnores reads the mix of bench/compare.sh with Streams that call
// Parse for every line (parse) and that skip what Ignores names (skip).
func BenchmarkIgnores(b *testing.B) {
	var mix bytes.Buffer
	if _, err := logmix.Generate(&mix, logmix.Options{Lines: 100_000, Seed: 1, Mix: logmix.Default}); err != nil {
		b.Fatal(err)
	}
	lines := bytes.Split(mix.Bytes(), []byte("\n"))
	opts := parsers.Options{Location: time.UTC, Now: time.Now}
	none := func() time.Time { return time.Time{} }
	for _, skip := range []bool{false, true} {
		name := "parse"
		f := func(o parsers.Options) (parsers.Parser, error) {
			p, err := asterisk.New(o)
			return plain{p.(*asterisk.Parser)}, err
		}
		if skip {
			name, f = "skip", asterisk.New
		}
		b.Run(name, func(b *testing.B) {
			var ev parsers.Event
			for b.Loop() {
				st, _ := parsers.NewStreamFrom("s", "asterisk", f, opts, none)
				for i, l := range lines {
					st.Uncounted(l, int64(i), &ev)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
		})
	}
}
