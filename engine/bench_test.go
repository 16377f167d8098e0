package engine_test

import (
	"bytes"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/asterisk"
)

// BenchmarkObserve feeds the events of the generated failure mix (Zipf
// attackers, 2% IPv6) through the default burst and slow rules.
func BenchmarkObserve(b *testing.B) {
	events := mixEvents(b, logmix.Options{Lines: 200_000, Seed: 1, Mix: logmix.Failures})
	b.ReportAllocs()
	for b.Loop() {
		e, err := engine.New(engine.Options{Rules: defaultRules()})
		if err != nil {
			b.Fatal(err)
		}
		for i := range events {
			e.Observe(&events[i])
		}
	}
	b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func defaultRules() []engine.Rule {
	return []engine.Rule{
		{Name: "burst", Kinds: parsers.AllKinds, MaxRetry: 5, FindTime: time.Minute, BanTime: time.Hour, Factor: 2, MaxBanTime: 7 * 24 * time.Hour},
		{Name: "slow", Kinds: parsers.AllKinds, MaxRetry: 30, FindTime: 24 * time.Hour, BanTime: 24 * time.Hour, Factor: 2, MaxBanTime: 30 * 24 * time.Hour},
	}
}

// BenchmarkObserveMix feeds the events of the 1M-line default mix (what
// bench/compare.sh and `sipguard scan` are measured on: 200k failures,
// half of them from addresses already banned, and 16k successful logins)
// through the engine the shipped rules.toml configures, as scan does. It
// reports the engine's live heap at the end.
func BenchmarkObserveMix(b *testing.B) {
	events := mixEvents(b, logmix.Options{Lines: 1_000_000, Seed: 1})
	cfg := config.DefaultConfig()
	opts, err := cfg.EngineOptions(func() ([]netip.Prefix, error) { return nil, nil })
	if err != nil {
		b.Fatal(err)
	}
	var e *engine.Engine
	b.ReportAllocs()
	for b.Loop() {
		if e, err = engine.New(opts); err != nil {
			b.Fatal(err)
		}
		for i := range events {
			if events[i].Kind == parsers.AuthSucceeded {
				e.Success(&events[i])
			} else {
				e.Observe(&events[i])
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(events)), "ns/event")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	runtime.KeepAlive(e)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(before.HeapAlloc-after.HeapAlloc), "engine-B")
}

// mixEvents parses the events of a generated mix.
func mixEvents(b *testing.B, opts logmix.Options) []parsers.Event {
	b.Helper()
	var buf bytes.Buffer
	if _, err := logmix.Generate(&buf, opts); err != nil {
		b.Fatal(err)
	}
	p, _ := asterisk.New(parsers.Options{Location: time.UTC})
	var events []parsers.Event
	for l := range bytes.Lines(buf.Bytes()) {
		var ev parsers.Event
		if p.Parse(bytes.TrimSuffix(l, []byte("\n")), &ev) == parsers.Matched {
			events = append(events, ev)
		}
	}
	return events
}

// BenchmarkHistoryFull bans 100,000 addresses, one after another, with
// MaxTracked at 20,000: the offence history fills and is swept again and
// again (a flood of bans from many IPv6 networks).
func BenchmarkHistoryFull(b *testing.B) {
	r := engine.Rule{Name: "r", Kinds: parsers.AllKinds, MaxRetry: 1, FindTime: time.Minute, BanTime: time.Second, Factor: 1}
	evs := make([]parsers.Event, 100_000)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i] = parsers.Event{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Kind: parsers.AuthFailed}
	}
	for b.Loop() {
		e, err := engine.New(engine.Options{Rules: []engine.Rule{r}, MaxTracked: 20_000})
		if err != nil {
			b.Fatal(err)
		}
		for i := range evs {
			e.Observe(&evs[i])
		}
	}
}
