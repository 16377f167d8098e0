package engine_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
)

// historyAddr is the i-th address of the history tests.
func historyAddr(i int) string { return fmt.Sprintf("198.51.%d.%d", i/250, 1+i%250) }

// TestOffenceHistoryBounded: a distributed attack banning more addresses
// within History than MaxTracked keeps at most MaxTracked offences; past
// it, the ended bans with the oldest offence are forgotten until a tenth
// of the room is free. The addresses forgotten start afresh, the others
// still escalate.
func TestOffenceHistoryBounded(t *testing.T) {
	r := rule("r", 1, time.Second, time.Second) // every failure bans, for a second
	r.Factor, r.MaxBanTime = 2, time.Hour
	e := newEngine(t, engine.Options{Rules: []engine.Rule{r}, MaxTracked: 100, History: 7 * 24 * time.Hour})
	// One address every 2 s: each ban has ended when the next begins.
	at := func(i int) time.Duration { return time.Duration(i) * 2 * time.Second }
	for i := range 100 {
		if _, ok := e.Observe(ev(historyAddr(i), at(i), parsers.AuthFailed)); !ok {
			t.Fatalf("%s not banned", historyAddr(i))
		}
	}
	if n, st := len(e.Offences()), e.Stats(); n != 100 || st.Evicted != 0 {
		t.Fatalf("after 100 bans: %d offences, %d evicted; want 100, 0", n, st.Evicted)
	}
	// The 101st: over MaxTracked, the 11 oldest go.
	e.Observe(ev(historyAddr(100), at(100), parsers.AuthFailed))
	if n, st := len(e.Offences()), e.Stats(); n != 90 || st.Evicted != 11 {
		t.Fatalf("after 101 bans: %d offences, %d evicted; want 90, 11", n, st.Evicted)
	}
	kept := map[netip.Prefix]bool{}
	for _, o := range e.Offences() {
		kept[o.Prefix] = true
	}
	for i := range 101 {
		p := netip.MustParsePrefix(historyAddr(i) + "/32")
		if kept[p] != (i >= 11) {
			t.Errorf("%s kept: %v; want the 11 oldest forgotten, the rest kept", p, kept[p])
		}
	}
	// A long attack never holds more than MaxTracked.
	for i := 101; i < 2000; i++ {
		e.Observe(ev(historyAddr(i), at(i), parsers.AuthFailed))
		if n := len(e.Offences()); n > 100 {
			t.Fatalf("after %d bans: %d offences; want at most 100", i+1, n)
		}
	}
	// Forgotten: banned again as a first offence. Remembered: escalated.
	if b, ok := e.Observe(ev(historyAddr(0), at(2000), parsers.AuthFailed)); !ok || b.Offences != 0 || b.Duration != time.Second {
		t.Errorf("%s (forgotten): ban %v after %d offences; want 1s after 0", historyAddr(0), b.Duration, b.Offences)
	}
	if b, ok := e.Observe(ev(historyAddr(1999), at(2001), parsers.AuthFailed)); !ok || b.Offences != 1 || b.Duration != 2*time.Second {
		t.Errorf("%s (remembered): ban %v after %d offences; want 2s after 1", historyAddr(1999), b.Duration, b.Offences)
	}
}

// TestOffenceHistoryKeepsBansInForce: the offence of a ban in force is
// never forgotten to make room (its address would be counted, and banned
// again, during its ban); once the bans end, the history shrinks to nine
// tenths of MaxTracked at the next ban.
func TestOffenceHistoryKeepsBansInForce(t *testing.T) {
	r := rule("r", 1, time.Second, time.Hour)
	e := newEngine(t, engine.Options{Rules: []engine.Rule{r}, MaxTracked: 100})
	for i := range 150 {
		e.Observe(ev(historyAddr(i), time.Duration(i)*time.Second, parsers.AuthFailed))
	}
	if n, st := len(e.Offences()), e.Stats(); n != 150 || st.Evicted != 0 {
		t.Fatalf("150 bans in force: %d offences, %d evicted; want 150, 0", n, st.Evicted)
	}
	for i := range 150 {
		if _, ok := e.Observe(ev(historyAddr(i), 200*time.Second, parsers.AuthFailed)); ok {
			t.Fatalf("%s banned again during its ban", historyAddr(i))
		}
	}
	// Two hours on, every ban has ended: the next one makes room. (The
	// 150 counted again above held more addresses than MaxTracked: 50
	// of them were evicted; Evicted counts both.)
	evicted := e.Stats().Evicted
	if _, ok := e.Observe(ev("203.0.113.1", 2*time.Hour, parsers.AuthFailed)); !ok {
		t.Fatal("203.0.113.1 not banned")
	}
	if n, st := len(e.Offences()), e.Stats(); n != 90 || st.Evicted-evicted != 61 {
		t.Errorf("after the bans ended: %d offences, %d evicted; want 90, 61", n, st.Evicted-evicted)
	}
}

// TestRestoreSkips: Restore leaves out entries that are not offences and
// keeps what the engine already knows; a restored ban in force stops the
// counting of an address being counted already.
func TestRestoreSkips(t *testing.T) {
	r := rule("r", 3, time.Hour, time.Hour)
	r.Factor, r.MaxBanTime = 2, 24*time.Hour
	e := newEngine(t, engine.Options{Rules: []engine.Rule{r}})
	// Known before Restore: .7 banned once (ended), .8 counted (1 of 3).
	feed(e, "198.51.100.7", 0, time.Second, 2*time.Second)
	feed(e, "198.51.100.8", 2*time.Hour)
	e.Restore([]engine.Offence{
		{}, // no prefix
		{Prefix: netip.MustParsePrefix("198.51.100.9/32"), Count: 0, Last: t0, Until: t0.Add(48 * time.Hour)},
		{Prefix: netip.MustParsePrefix("198.51.100.10/32"), Count: -3, Last: t0, Until: t0.Add(48 * time.Hour)},
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Count: 5, Last: t0, Until: t0.Add(48 * time.Hour)},
		{Prefix: netip.MustParsePrefix("198.51.100.8/32"), Count: 2, Last: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)},
	})
	got := map[netip.Prefix]engine.Offence{}
	for _, o := range e.Offences() {
		got[o.Prefix] = o
	}
	if len(got) != 2 {
		t.Errorf("offences %+v; want .7 (known) and .8 (restored) only", got)
	}
	if o := got[netip.MustParsePrefix("198.51.100.7/32")]; o.Count != 1 || !o.Until.Equal(t0.Add(2*time.Second+time.Hour)) {
		t.Errorf(".7: %+v; want the known offence (1, until 1h2s), not the saved one", o)
	}
	// Not offences: .9 and .10 are counted as usual, banned as first
	// offenders.
	for _, a := range []string{"198.51.100.9", "198.51.100.10"} {
		if i, b := feed(e, a, 2*time.Hour, 2*time.Hour+time.Second, 2*time.Hour+2*time.Second); i != 2 || b.Offences != 0 {
			t.Errorf("%s: ban at %d after %d offences; want at 2 after 0", a, i, b.Offences)
		}
	}
	// .7's known ban ended long ago: it is counted, escalated from 1.
	if i, b := feed(e, "198.51.100.7", 2*time.Hour, 2*time.Hour+time.Second, 2*time.Hour+2*time.Second); i != 2 || b.Offences != 1 {
		t.Errorf(".7: ban at %d after %d offences; want at 2 after 1", i, b.Offences)
	}
	// .8 was being counted: its restored ban (until 3h) stops that, and
	// it escalates from the restored 2 after.
	if i, _ := feed(e, "198.51.100.8", 2*time.Hour+time.Second, 2*time.Hour+2*time.Second, 2*time.Hour+3*time.Second); i != -1 {
		t.Errorf(".8 banned at %d during its restored ban", i)
	}
	if i, b := feed(e, "198.51.100.8", 3*time.Hour+time.Second, 3*time.Hour+2*time.Second, 3*time.Hour+3*time.Second); i != 2 || b.Offences != 2 || b.Duration != 4*time.Hour {
		t.Errorf(".8 after its restored ban: ban at %d after %d offences for %v; want at 2 after 2 for 4h", i, b.Offences, b.Duration)
	}
}
