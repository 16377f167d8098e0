package report_test

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/replay"
	"github.com/sipguard/sipguard/report"
)

// The 1M-line mix of bench/compare.sh (go run ./internal/loggen -n 1000000
// -seed 1), generated once in memory.
var (
	mixOnce sync.Once
	mix     []byte
)

func mixLog(b *testing.B) []byte {
	mixOnce.Do(func() {
		var buf bytes.Buffer
		if _, err := logmix.Generate(&buf, logmix.Options{Lines: 1_000_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		mix = buf.Bytes()
	})
	return mix
}

// replayMix replays the mix through the default rules and hands each event
// to add; it returns the replay's stats.
func replayMix(b *testing.B, add func(*engine.Engine) func(*parsers.Event)) ([]replay.Stats, *engine.Engine) {
	cfg := config.DefaultConfig()
	eo, err := cfg.EngineOptions(func() ([]netip.Prefix, error) { return nil, nil })
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(eo)
	if err != nil {
		b.Fatal(err)
	}
	r, err := replay.Start(context.Background(), []replay.Source{{
		Name: "mix.log", Parser: "asterisk", Factory: cfg.ParserFactory("asterisk"), Location: time.UTC,
		Reader: bytes.NewReader(mixLog(b)),
	}}, replay.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	f := add(eng)
	for ev := r.Next(); ev != nil; ev = r.Next() {
		f(ev)
	}
	if err := r.Err(); err != nil {
		b.Fatal(err)
	}
	return r.Stats(), eng
}

// BenchmarkScanMix is what `sipguard scan` does with the 1M-line mix: the
// replay and the engine, no output. BenchmarkReportMix must stay within
// twice its time (issue 18).
func BenchmarkScanMix(b *testing.B) {
	mixLog(b)
	var bans int
	for b.Loop() {
		replayMix(b, func(eng *engine.Engine) func(*parsers.Event) {
			return func(ev *parsers.Event) {
				if ev.Kind == parsers.AuthSucceeded {
					eng.Success(ev)
					return
				}
				if _, banned := eng.Observe(ev); banned {
					bans++
				}
			}
		})
	}
	b.ReportMetric(1e6*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkReportMix is `sipguard report` on the 1M-line mix: the same
// replay and engine, the Collector, and the HTML page.
func BenchmarkReportMix(b *testing.B) {
	mixLog(b)
	for b.Loop() {
		var c *report.Collector
		streams, _ := replayMix(b, func(eng *engine.Engine) func(*parsers.Event) {
			c = report.NewCollector(eng, report.Options{})
			return c.Add
		})
		if err := c.Report(streams).WriteHTML(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1e6*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
