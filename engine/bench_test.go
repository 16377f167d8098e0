package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/asterisk"
)

// BenchmarkObserve feeds the events of the generated failure mix (Zipf
// attackers, 2% IPv6) through the default burst and slow rules.
func BenchmarkObserve(b *testing.B) {
	var buf bytes.Buffer
	if _, err := logmix.Generate(&buf, logmix.Options{Lines: 200_000, Seed: 1, Mix: logmix.Failures}); err != nil {
		b.Fatal(err)
	}
	p, _ := asterisk.New(parsers.Options{Location: time.UTC})
	var events []parsers.Event
	for _, l := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
		var ev parsers.Event
		if p.Parse(l, &ev) == parsers.Matched {
			events = append(events, ev)
		}
	}
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
