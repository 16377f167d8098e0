package daemon

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/calls"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/fraud"
	"github.com/sipguard/sipguard/numbering"
	"github.com/sipguard/sipguard/parsers"
)

// TestFraudLiveForgotten: the daemon keeps the source of the calls the
// guard follows for its minutes rule, and of no others; a call never seen
// to end is forgotten with the guard's, not kept for ever (the map filled
// up to 10,000 calls, then named no source).
func TestFraudLiveForgotten(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	d, err := New(Config{
		Engine: engine.Options{Rules: []engine.Rule{{Name: "r", Kinds: parsers.AllKinds, MaxRetry: 1, FindTime: time.Minute, BanTime: time.Hour, Factor: 1}}},
		Fraud: &Fraud{Rules: fraud.Options{
			MaxMinutes: 600, MinutesWindow: 24 * time.Hour, AllowedCountries: []string{"GB", "DE"},
			Plan: numbering.Plan{InternationalPrefixes: []string{"00"}, NationalPrefix: "0", CountryCode: "44"},
		}},
	}, fwtest.New(nil), zerolog.Nop(), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	call := func(id, dialled string, ch calls.Change) {
		c := calls.Call{ID: id, Account: "1004", Tech: "PJSIP", Dialled: dialled, Start: now.Add(-time.Minute)}
		if ch != calls.Started {
			c.Answer = now
		}
		d.called("calls", callItem{update: calls.Update{Change: ch, Call: c}}, now)
	}
	for _, ch := range []calls.Change{calls.Started, calls.Answered} {
		call("abroad", "004930123456", ch)
		call("inside", "1001", ch)
	}
	if src, ok := d.fraudLive["abroad"]; !ok || src != "calls" || len(d.fraudLive) != 1 {
		t.Fatalf("sources kept: %v; want the international call's alone", d.fraudLive)
	}
	now = now.Add(time.Hour)
	d.fraudTick()
	if len(d.fraudLive) != 1 {
		t.Fatalf("an hour into the call: %v", d.fraudLive)
	}
	now = now.Add(12 * time.Hour)
	d.fraudTick()
	if len(d.fraudLive) != 0 {
		t.Errorf("13 hours into a call never seen to end: %v still kept", d.fraudLive)
	}
}
