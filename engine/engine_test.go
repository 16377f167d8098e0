package engine_test

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/parsers"
)

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func ev(addr string, at time.Duration, kind parsers.Kind) *parsers.Event {
	return &parsers.Event{Addr: netip.MustParseAddr(addr), Time: t0.Add(at), Kind: kind}
}

func newEngine(t *testing.T, opts engine.Options) *engine.Engine {
	t.Helper()
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func rule(name string, maxRetry int, find, ban time.Duration) engine.Rule {
	return engine.Rule{Name: name, Kinds: parsers.AllKinds, MaxRetry: maxRetry, FindTime: find, BanTime: ban, Factor: 1}
}

// feed observes events from addr at the given offsets and returns the
// index of the event that caused the first ban, or -1.
func feed(e *engine.Engine, addr string, at ...time.Duration) (int, engine.Ban) {
	for i, a := range at {
		if b, ok := e.Observe(ev(addr, a, parsers.AuthFailed)); ok {
			return i, b
		}
	}
	return -1, engine.Ban{}
}

func TestWindowEdges(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		at   []time.Duration
		want int // index of the banning event, -1 for none
	}{
		{"three within", []time.Duration{0, 30 * s, 59*s + 999*time.Millisecond}, 2},
		// The window is half-open: (t-60s, t]. Exactly 60 s apart is out.
		{"exactly find_time apart", []time.Duration{0, 30 * s, 60 * s}, -1},
		{"slides", []time.Duration{0, 30 * s, 60 * s, 61 * s}, 3},
		{"too slow", []time.Duration{0, 40 * s, 80 * s, 120 * s, 160 * s}, -1},
		{"same instant", []time.Duration{5 * s, 5 * s, 5 * s}, 2},
		// Sources merge slightly out of order: the window still counts right.
		{"out of order", []time.Duration{50 * s, 10 * s, 55 * s}, 2},
		{"out of order, too old", []time.Duration{70 * s, 0, 71 * s}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 3, time.Minute, time.Hour)}})
			got, b := feed(e, "198.51.100.7", tc.at...)
			if got != tc.want {
				t.Fatalf("ban at event %d; want %d", got, tc.want)
			}
			if got >= 0 && (b.Count != 3 || b.Rule != "r" || b.Duration != time.Hour || b.Prefix != netip.MustParsePrefix("198.51.100.7/32")) {
				t.Errorf("ban = %+v", b)
			}
		})
	}
}

// TestSlowBruteForce: one guess every 10 s, which CrowdSec's asterisk_bf
// bucket (capacity 5, leak 10 s) never catches, is caught by a 5-in-1m
// rule at the 5th guess; one guess a minute by the slow rule at the 30th.
func TestSlowBruteForce(t *testing.T) {
	rules := []engine.Rule{rule("burst", 5, time.Minute, time.Hour), rule("slow", 30, 24*time.Hour, 24*time.Hour)}
	every := func(gap time.Duration, n int) []time.Duration {
		at := make([]time.Duration, n)
		for i := range at {
			at[i] = time.Duration(i) * gap
		}
		return at
	}
	e := newEngine(t, engine.Options{Rules: rules})
	i, b := feed(e, "198.51.100.7", every(10*time.Second, 100)...)
	if i != 4 || b.Rule != "burst" || b.Last.Sub(b.First) != 40*time.Second {
		t.Errorf("every 10 s: ban at %d by %q over %v; want at 4 by burst over 40s", i, b.Rule, b.Last.Sub(b.First))
	}
	e = newEngine(t, engine.Options{Rules: rules})
	i, b = feed(e, "198.51.100.8", every(time.Minute, 100)...)
	if i != 29 || b.Rule != "slow" || b.Duration != 24*time.Hour {
		t.Errorf("every minute: ban at %d by %q; want at 29 by slow", i, b.Rule)
	}
	// One guess every 50 minutes: 29 fit in a day, never 30.
	e = newEngine(t, engine.Options{Rules: rules})
	if i, _ := feed(e, "198.51.100.9", every(50*time.Minute, 200)...); i != -1 {
		t.Errorf("every 50 minutes: ban at %d; want none", i)
	}
}

func TestSeveralRulesLongestWins(t *testing.T) {
	rules := []engine.Rule{rule("short", 3, time.Minute, time.Hour), rule("long", 3, time.Hour, 5*time.Hour)}
	e := newEngine(t, engine.Options{Rules: rules})
	_, b := feed(e, "198.51.100.7", 0, time.Second, 2*time.Second)
	if b.Rule != "long" || b.Duration != 5*time.Hour {
		t.Errorf("ban = %s for %v; want long for 5h", b.Rule, b.Duration)
	}
	// Both windows are spent: after the ban the address starts from zero.
	at := 5*time.Hour + time.Minute
	if i, _ := feed(e, "198.51.100.7", at, at+time.Second); i != -1 {
		t.Errorf("banned again after 2 events")
	}
}

func TestKinds(t *testing.T) {
	r := rule("auth", 2, time.Minute, time.Hour)
	r.Kinds = parsers.KindSet(0).With(parsers.AuthFailed).With(parsers.UnknownUser)
	e := newEngine(t, engine.Options{Rules: []engine.Rule{r}})
	for i := range 5 {
		if _, ok := e.Observe(ev("198.51.100.7", time.Duration(i)*time.Second, parsers.UnknownExtension)); ok {
			t.Fatal("banned for a kind the rule does not count")
		}
	}
	e.Observe(ev("198.51.100.7", 6*time.Second, parsers.AuthFailed))
	if _, ok := e.Observe(ev("198.51.100.7", 7*time.Second, parsers.UnknownUser)); !ok {
		t.Error("not banned after two counted kinds")
	}
	if st := e.Stats(); st.Events != 7 || st.Counted != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestWhileBanned(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 2, time.Minute, 10*time.Minute)}})
	if i, _ := feed(e, "198.51.100.7", 0, time.Second); i != 1 {
		t.Fatal("no ban")
	}
	// Events while the ban is in force are not counted.
	if i, _ := feed(e, "198.51.100.7", 2*time.Second, 3*time.Second, 9*time.Minute); i != -1 {
		t.Error("banned again during the ban")
	}
	if st := e.Stats(); st.WhileBanned != 3 {
		t.Errorf("while banned = %d; want 3", st.WhileBanned)
	}
	// After it ends, counting starts afresh.
	if i, _ := feed(e, "198.51.100.7", 11*time.Minute, 11*time.Minute+time.Second); i != 1 {
		t.Error("not banned after the ban ended")
	}
}

func TestEscalation(t *testing.T) {
	r := rule("r", 1, time.Minute, time.Hour)
	r.Factor, r.MaxBanTime = 2, 5*time.Hour
	e := newEngine(t, engine.Options{Rules: []engine.Rule{r}, History: 30 * 24 * time.Hour})
	at := time.Duration(0)
	var got []time.Duration
	for range 5 {
		b, ok := e.Observe(ev("198.51.100.7", at, parsers.AuthFailed))
		if !ok {
			t.Fatalf("no ban at %v", at)
		}
		got = append(got, b.Duration)
		at += b.Duration + time.Second
	}
	want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 5 * time.Hour, 5 * time.Hour}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bans %v; want %v", got, want)
	}
	// Another address starts at the base.
	if b, _ := e.Observe(ev("198.51.100.8", at, parsers.AuthFailed)); b.Duration != time.Hour || b.Offences != 0 {
		t.Errorf("first ban of another address: %v after %d offences", b.Duration, b.Offences)
	}
	// Offences older than History are forgotten.
	at += 31 * 24 * time.Hour
	if b, _ := e.Observe(ev("198.51.100.7", at, parsers.AuthFailed)); b.Duration != time.Hour {
		t.Errorf("ban after the history expired: %v; want 1h", b.Duration)
	}
}

func TestAllowlist(t *testing.T) {
	e := newEngine(t, engine.Options{
		Rules: []engine.Rule{rule("r", 1, time.Minute, time.Hour)},
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
	})
	for _, a := range []string{"198.51.100.7", "198.51.100.255", "2001:db8:1:2::3", "::ffff:198.51.100.9"} {
		if _, ok := e.Observe(ev(a, 0, parsers.AuthFailed)); ok {
			t.Errorf("allowlisted %s banned", a)
		}
	}
	if _, ok := e.Observe(ev("198.51.101.1", 0, parsers.AuthFailed)); !ok {
		t.Error("address outside the allowlist not banned")
	}
	if st := e.Stats(); st.Allowed != 4 || st.Tracked != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestSpecial: events from special-purpose addresses (bans.Special), or
// from an address whose IPv6 prefix holds such space, are dropped and
// counted, never counted toward a ban.
func TestSpecial(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 3, time.Minute, time.Hour)}, Special: bans.Special})
	s := time.Second
	special := []string{"fe80::1", "127.0.0.1", "::1", "::", "::102:304", "169.254.169.254", "0.1.2.3", "224.0.0.1", "255.255.255.255", "ff02::1"}
	for _, a := range special {
		if i, b := feed(e, a, 0, s, 2*s, 3*s, 4*s); i >= 0 {
			t.Errorf("%s banned: %+v", a, b)
		}
	}
	if st := e.Stats(); st.Special != int64(5*len(special)) || st.Counted != 0 || st.Tracked != 0 {
		t.Errorf("stats %+v, want %d special", st, 5*len(special))
	}
	if i, _ := feed(e, "2001:db8::1", 0, s, 2*s); i != 2 {
		t.Errorf("2001:db8::1 banned at event %d, want 2", i)
	}
	if i, _ := feed(e, "198.51.100.7", 0, s, 2*s); i != 2 {
		t.Errorf("198.51.100.7 banned at event %d, want 2", i)
	}

	// Counted by a wide IPv6 prefix, an ordinary address can fall in a
	// network holding link-local and multicast space: fc00::/6.
	wide := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 1, time.Minute, time.Hour)}, IPv6Prefix: 6, Special: bans.Special})
	if i, b := feed(wide, "fd00::1", 0); i >= 0 {
		t.Errorf("fd00::1 banned as %s", b.Prefix)
	}
	if i, b := feed(wide, "2001:db8::1", 0); i != 0 || b.Prefix != netip.MustParsePrefix("2000::/6") {
		t.Errorf("2001:db8::1: %d %s", i, b.Prefix)
	}
}

func TestIPv6Prefix(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 5, time.Minute, time.Hour)}})
	// Five addresses of one /64 are one attacker.
	for i := 1; i <= 5; i++ {
		b, ok := e.Observe(ev(fmt.Sprintf("2001:db8:bad:1::%x", i), time.Duration(i)*time.Second, parsers.AuthFailed))
		if ok != (i == 5) {
			t.Fatalf("event %d: banned = %v", i, ok)
		}
		if ok && (b.Prefix != netip.MustParsePrefix("2001:db8:bad:1::/64") || b.Addr != netip.MustParseAddr("2001:db8:bad:1::5")) {
			t.Errorf("ban %v from %v; want 2001:db8:bad:1::/64", b.Prefix, b.Addr)
		}
	}
	// Another /64 has its own count.
	if i, _ := feed(e, "2001:db8:bad:2::1", time.Second, 2*time.Second, 3*time.Second, 4*time.Second); i != -1 {
		t.Error("another /64 shared the count")
	}
	// A /48 setting groups more.
	e = newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 2, time.Minute, time.Hour)}, IPv6Prefix: 48})
	e.Observe(ev("2001:db8:bad:1::1", 0, parsers.AuthFailed))
	if b, ok := e.Observe(ev("2001:db8:bad:2::1", time.Second, parsers.AuthFailed)); !ok || b.Prefix.Bits() != 48 {
		t.Errorf("/48: %v %v", ok, b.Prefix)
	}
}

func TestEvictionLeastRecentlySeen(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 2, time.Hour, time.Hour)}, MaxTracked: 3})
	e.Observe(ev("198.51.100.1", 0, parsers.AuthFailed))
	e.Observe(ev("198.51.100.2", time.Second, parsers.AuthFailed))
	e.Observe(ev("198.51.100.3", 2*time.Second, parsers.AuthFailed))
	e.Observe(ev("198.51.100.1", 3*time.Second, parsers.AuthFailed)) // .1 bans: its count survives
	e.Observe(ev("198.51.100.4", 4*time.Second, parsers.AuthFailed)) // evicts .2, least recently seen
	if st := e.Stats(); st.Tracked != 3 || st.Evicted != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if _, ok := e.Observe(ev("198.51.100.3", 5*time.Second, parsers.AuthFailed)); !ok {
		t.Error(".3 lost its count; the least recently seen (.2) should have gone")
	}
	if _, ok := e.Observe(ev("198.51.100.2", 6*time.Second, parsers.AuthFailed)); ok {
		t.Error(".2 kept its count after eviction")
	}
}

// TestStateDropped: an address whose events have all left every window
// holds no memory.
func TestStateDropped(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("a", 5, time.Minute, time.Hour), rule("b", 9, 10*time.Minute, time.Hour)}})
	for i := range 1000 {
		e.Observe(ev(fmt.Sprintf("198.51.%d.%d", i/250, 1+i%250), time.Duration(i)*time.Millisecond, parsers.AuthFailed))
	}
	if st := e.Stats(); st.Tracked != 1000 {
		t.Fatalf("tracked %d; want 1000", st.Tracked)
	}
	// One event 10 minutes later: every other address is past the longest window.
	e.Observe(ev("192.0.2.1", 10*time.Minute+time.Second, parsers.AuthFailed))
	if st := e.Stats(); st.Tracked != 1 {
		t.Errorf("tracked %d after the windows closed; want 1", st.Tracked)
	}
}

// TestBoundedMemory: a flood of distinct addresses never holds more than
// MaxTracked.
func TestBoundedMemory(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 5, time.Hour, time.Hour)}, MaxTracked: 1000})
	for i := range 200_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e.Observe(&parsers.Event{Addr: a, Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: parsers.AuthFailed})
		if e.Stats().Tracked > 1000 {
			t.Fatalf("tracked %d > 1000", e.Stats().Tracked)
		}
	}
	if st := e.Stats(); st.Evicted != 199_000 {
		t.Errorf("evicted %d; want 199000", st.Evicted)
	}
}

func TestForget(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 3, time.Hour, time.Hour)}})
	feed(e, "198.51.100.7", 0, time.Second)
	feed(e, "2001:db8:bad:1::1", 0, time.Second)
	e.Forget(netip.MustParsePrefix("198.51.100.7/32"))
	e.Forget(netip.MustParsePrefix("2001:db8:bad:1::2/128")) // the /64 it belongs to
	if i, _ := feed(e, "198.51.100.7", 2*time.Second, 3*time.Second); i != -1 {
		t.Error("counter kept after Forget")
	}
	if i, _ := feed(e, "2001:db8:bad:1::1", 2*time.Second, 3*time.Second); i != -1 {
		t.Error("IPv6 prefix counter kept after Forget")
	}
	// Forget also lifts the ban and forgives the offence.
	e.Observe(ev("198.51.100.7", 4*time.Second, parsers.AuthFailed))
	e.Forget(netip.MustParsePrefix("198.51.100.0/24"))
	if i, b := feed(e, "198.51.100.7", 5*time.Second, 6*time.Second, 7*time.Second); i != 2 || b.Offences != 0 {
		t.Errorf("after Forget: ban at %d with %d offences; want at 2 with 0", i, b.Offences)
	}
}

func TestNewErrors(t *testing.T) {
	ok := rule("r", 1, time.Minute, time.Hour)
	bad := func(f func(*engine.Rule)) []engine.Rule { r := ok; f(&r); return []engine.Rule{r} }
	tests := []struct {
		name string
		opts engine.Options
	}{
		{"no rules", engine.Options{}},
		{"max_retry", engine.Options{Rules: bad(func(r *engine.Rule) { r.MaxRetry = 0 })}},
		{"find_time", engine.Options{Rules: bad(func(r *engine.Rule) { r.FindTime = 0 })}},
		{"ban_time", engine.Options{Rules: bad(func(r *engine.Rule) { r.BanTime = -1 })}},
		{"factor", engine.Options{Rules: bad(func(r *engine.Rule) { r.Factor = 0.5 })}},
		{"max_ban_time", engine.Options{Rules: bad(func(r *engine.Rule) { r.MaxBanTime = time.Minute })}},
		{"kinds", engine.Options{Rules: bad(func(r *engine.Rule) { r.Kinds = 0 })}},
		{"name", engine.Options{Rules: bad(func(r *engine.Rule) { r.Name = "" })}},
		{"duplicate", engine.Options{Rules: []engine.Rule{ok, ok}}},
		{"ipv6 prefix", engine.Options{Rules: []engine.Rule{ok}, IPv6Prefix: 129}},
		{"compromise action", engine.Options{Rules: []engine.Rule{ok}, Compromise: engine.CompromiseRule{Action: "block", MinFailures: 1, Window: time.Hour}}},
		{"compromise min_failures", engine.Options{Rules: []engine.Rule{ok}, Compromise: engine.CompromiseRule{Action: "alert", Window: time.Hour}}},
		{"compromise window", engine.Options{Rules: []engine.Rule{ok}, Compromise: engine.CompromiseRule{Action: "alert", MinFailures: 1}}},
		{"compromise ban_time", engine.Options{Rules: []engine.Rule{ok}, Compromise: engine.CompromiseRule{Action: "ban", MinFailures: 1, Window: time.Hour}}},
	}
	for _, tc := range tests {
		if _, err := engine.New(tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestOffencesRestore(t *testing.T) {
	r := rule("r", 1, time.Minute, time.Hour)
	r.Factor = 2
	e := newEngine(t, engine.Options{Rules: []engine.Rule{r}})
	e.Observe(ev("198.51.100.7", 0, parsers.AuthFailed))
	e.Observe(ev("2001:db8:bad:1::1", 0, parsers.AuthFailed))
	saved := e.Offences()
	if len(saved) != 2 {
		t.Fatalf("offences %v", saved)
	}
	// A new engine (a restarted daemon) escalates from the saved history
	// and ignores the address while its ban runs.
	e2 := newEngine(t, engine.Options{Rules: []engine.Rule{r}})
	e2.Restore(saved)
	if _, ok := e2.Observe(ev("198.51.100.7", 30*time.Minute, parsers.AuthFailed)); ok {
		t.Error("banned during the restored ban")
	}
	if b, ok := e2.Observe(ev("2001:db8:bad:1::2", 2*time.Hour, parsers.AuthFailed)); !ok || b.Duration != 2*time.Hour || b.Offences != 1 {
		t.Errorf("after restore: %v %v after %d offences; want a 2h ban after 1", ok, b.Duration, b.Offences)
	}
	// A manual ban counts as an offence too.
	e2.Banned(netip.MustParsePrefix("198.51.100.9/32"), t0, time.Hour)
	if _, ok := e2.Observe(ev("198.51.100.9", 10*time.Minute, parsers.AuthFailed)); ok {
		t.Error("counted during a manual ban")
	}
	if b, _ := e2.Observe(ev("198.51.100.9", 2*time.Hour, parsers.AuthFailed)); b.Offences != 1 {
		t.Errorf("manual ban not counted as an offence: %d", b.Offences)
	}
	// Lifted (another node's ban, lifted by it): counted again from
	// then; the offence stays.
	e2.Banned(netip.MustParsePrefix("198.51.100.10/32"), t0, 5*time.Hour)
	e2.Lifted(netip.MustParsePrefix("198.51.100.10/32"), t0.Add(time.Minute))
	if b, ok := e2.Observe(ev("198.51.100.10", 2*time.Minute, parsers.AuthFailed)); !ok || b.Offences != 1 {
		t.Errorf("after the lift: banned %v after %d offences; want banned, after 1", ok, b.Offences)
	}
	// A ban narrower than the engine's prefix (an IPv6 address by hand)
	// holds the other addresses of its /64 no more: they are counted; the
	// offence is.
	e2.Banned(netip.MustParsePrefix("2001:db8:cafe:1::1/128"), t0, 5*time.Hour)
	if b, ok := e2.Observe(ev("2001:db8:cafe:1::2", time.Minute, parsers.AuthFailed)); !ok || b.Offences != 1 {
		t.Errorf("another address of a banned IPv6 address's /64: banned %v after %d offences; want banned, after 1", ok, b.Offences)
	}
}

// TestRecent: failures are reported by address (IPv6 by prefix) and time;
// successes are never counted; a ban empties the windows.
func TestRecent(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("burst", 5, time.Minute, time.Hour), rule("slow", 30, 24*time.Hour, time.Hour)}})
	a := netip.MustParseAddr("198.51.100.7")
	for i := range 3 {
		ev := parsers.Event{Time: t0.Add(time.Duration(i) * 10 * time.Minute), Addr: a, Kind: parsers.AuthFailed}
		if _, ban := e.Observe(&ev); ban {
			t.Fatal("banned after", i+1)
		}
	}
	ok := parsers.Event{Time: t0.Add(21 * time.Minute), Addr: a, Kind: parsers.AuthSucceeded}
	for range 10 {
		if _, ban := e.Observe(&ok); ban {
			t.Fatal("a success counted toward a ban")
		}
	}
	for _, c := range []struct {
		since time.Time
		want  int
	}{{t0, 3}, {t0.Add(5 * time.Minute), 2}, {t0.Add(20 * time.Minute), 1}, {t0.Add(21 * time.Minute), 0}} {
		if got := e.Recent(a, c.since); got != c.want {
			t.Errorf("Recent since %v = %d; want %d", c.since.Sub(t0), got, c.want)
		}
	}
	if got := e.Recent(netip.MustParseAddr("198.51.100.8"), t0); got != 0 {
		t.Errorf("another address: %d", got)
	}
	v6 := netip.MustParseAddr("2001:db8::1")
	ev := parsers.Event{Time: t0, Addr: v6, Kind: parsers.UnknownUser}
	e.Observe(&ev)
	if got := e.Recent(netip.MustParseAddr("2001:db8::ffff"), t0); got != 1 {
		t.Errorf("same /64: %d; want 1", got)
	}
	if st := e.Stats(); st.Events != 4 {
		t.Errorf("events %d; want 4 (successes are not events of the engine)", st.Events)
	}
}

func TestCompromise(t *testing.T) {
	ok := engine.CompromiseRule{Action: "alert", MinFailures: 3, Window: time.Hour, BanTime: 7 * 24 * time.Hour}
	success := func(addr string, at time.Duration) *parsers.Event {
		e := ev(addr, at, parsers.AuthSucceeded)
		e.User, e.Source = "100", "pbx"
		return e
	}
	for _, tc := range []struct {
		name     string
		rule     engine.CompromiseRule
		addr     string
		failures int
		want     int // compromises reported from two successes
		ban      bool
	}{
		{"alert", ok, "198.51.100.7", 3, 1, false},
		{"ban", engine.CompromiseRule{Action: "ban", MinFailures: 3, Window: time.Hour, BanTime: 7 * 24 * time.Hour}, "198.51.100.7", 3, 1, true},
		{"too few failures", ok, "198.51.100.7", 2, 0, false},
		{"off", engine.CompromiseRule{Action: "off", MinFailures: 3, Window: time.Hour}, "198.51.100.7", 4, 0, false},
		{"allowlisted", ok, "192.0.2.7", 4, 0, false},
		{"IPv6 prefix", ok, "2001:db8::1", 3, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, engine.Options{
				Rules:      []engine.Rule{rule("burst", 10, time.Minute, time.Hour)},
				Allow:      []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
				Compromise: tc.rule,
			})
			for i := range tc.failures {
				e.Observe(ev(tc.addr, time.Duration(i)*time.Second, parsers.AuthFailed))
			}
			// Another address with no failures, then the attacker twice:
			// a phone registering again is reported once.
			if _, got := e.Success(success("198.51.100.99", 30*time.Second)); got {
				t.Error("a success without failures was reported")
			}
			var reported []engine.Compromise
			for _, at := range []time.Duration{40 * time.Second, 50 * time.Second} {
				s := success(tc.addr, at)
				if tc.addr == "2001:db8::1" {
					s.Addr = netip.MustParseAddr("2001:db8::2") // same /64
				}
				if c, got := e.Success(s); got {
					reported = append(reported, c)
				}
			}
			if len(reported) != tc.want {
				t.Fatalf("%d compromises reported; want %d: %+v", len(reported), tc.want, reported)
			}
			if got := e.Stats().Compromises; got != int64(tc.want) {
				t.Errorf("stats: %d compromises; want %d", got, tc.want)
			}
			if tc.want == 0 {
				return
			}
			c := reported[0]
			if c.Failures != tc.failures || c.User != "100" || c.Source != "pbx" || c.Prefix != e.Prefix(c.Addr) ||
				c.Reason() != fmt.Sprintf("successful login after %d failures", tc.failures) {
				t.Errorf("compromise %+v (%s)", c, c.Reason())
			}
			if (c.Ban != nil) != tc.ban {
				t.Fatalf("ban %+v; want one: %v", c.Ban, tc.ban)
			}
			if tc.ban {
				if c.Ban.Rule != engine.CompromiseRuleName || c.Ban.Duration != 7*24*time.Hour || c.Ban.Prefix != c.Prefix {
					t.Errorf("ban %+v", c.Ban)
				}
				// The ban is in force in the engine: failures are not counted.
				if _, banned := e.Observe(ev(tc.addr, time.Minute, parsers.AuthFailed)); banned || e.Stats().WhileBanned != 1 {
					t.Errorf("a failure during the compromise ban: banned %v, stats %+v", banned, e.Stats())
				}
			}
		})
	}
}

func TestCompromiseInherit(t *testing.T) {
	opts := engine.Options{
		Rules:      []engine.Rule{rule("burst", 10, time.Minute, time.Hour)},
		Compromise: engine.CompromiseRule{Action: "alert", MinFailures: 1, Window: time.Hour},
	}
	old := newEngine(t, opts)
	old.Observe(ev("198.51.100.7", 0, parsers.AuthFailed))
	if _, ok := old.Success(ev("198.51.100.7", time.Second, parsers.AuthSucceeded)); !ok {
		t.Fatal("not reported")
	}
	e := newEngine(t, opts)
	e.Inherit(old)
	e.Observe(ev("198.51.100.7", 2*time.Second, parsers.AuthFailed))
	if c, ok := e.Success(ev("198.51.100.7", 3*time.Second, parsers.AuthSucceeded)); ok {
		t.Errorf("reported again after the rules changed: %+v", c)
	}
	if e.Stats().Compromises != 1 {
		t.Errorf("compromises %d; want 1 carried over", e.Stats().Compromises)
	}
}

// TestNarrowed: an IPv6 prefix holding an allowlisted address is never
// banned whole; its addresses are counted and banned one by one, the
// allowlisted one never.
func TestNarrowed(t *testing.T) {
	s := time.Second
	five := []time.Duration{0, s, 2 * s, 3 * s, 4 * s}
	type step struct {
		addr string
		at   []time.Duration
		ban  string // prefix banned by the last event; "" for none
		from string // NarrowedFrom; "" for none
	}
	for _, tc := range []struct {
		name     string
		allow    []string
		v6bits   int
		steps    []step
		narrowed int64
		allowed  int64
	}{
		{
			name:  "address allowed in the attacker's /64",
			allow: []string{"2001:db8:bad::1/128"},
			steps: []step{
				{"2001:db8:bad::2", five, "2001:db8:bad::2/128", "2001:db8:bad::/64"},
				{"2001:db8:bad::1", five, "", ""}, // the trusted peer: never counted
			},
			narrowed: 1, allowed: 5,
		},
		{
			name:  "the other addresses of the /64 count apart",
			allow: []string{"2001:db8:bad::1/128"},
			steps: []step{
				{"2001:db8:bad::3", five[:4], "", ""},
				{"2001:db8:bad::4", five[4:], "", ""}, // would be the fifth of the /64
				{"2001:db8:bad::3", []time.Duration{5 * s}, "2001:db8:bad::3/128", "2001:db8:bad::/64"},
				{"2001:db8:bad::4", five[:4], "2001:db8:bad::4/128", "2001:db8:bad::/64"},
			},
			narrowed: 2,
		},
		{
			name:  "a ban in force holds only its address",
			allow: []string{"2001:db8:bad::1/128"},
			steps: []step{
				{"2001:db8:bad::2", five, "2001:db8:bad::2/128", "2001:db8:bad::/64"},
				{"2001:db8:bad::2", []time.Duration{10 * s, 11 * s, 12 * s, 13 * s, 14 * s}, "", ""}, // while banned
				{"2001:db8:bad::5", []time.Duration{10 * s, 11 * s, 12 * s, 13 * s, 14 * s}, "2001:db8:bad::5/128", "2001:db8:bad::/64"},
			},
			narrowed: 2,
		},
		{
			name:  "other /64s stay whole",
			allow: []string{"2001:db8:bad::1/128"},
			steps: []step{{"2001:db8:bad:1::9", five, "2001:db8:bad:1::/64", ""}},
		},
		{
			name:  "a network allowed inside the /64",
			allow: []string{"2001:db8:bad:0:ffff::/80"},
			steps: []step{
				{"2001:db8:bad:0:ffff::7", five, "", ""},
				{"2001:db8:bad::2", five, "2001:db8:bad::2/128", "2001:db8:bad::/64"},
			},
			narrowed: 1, allowed: 5,
		},
		{
			name:    "an allowed network around the /64 allows it all",
			allow:   []string{"2001:db8::/32"},
			steps:   []step{{"2001:db8:bad::2", five, "", ""}},
			allowed: 5,
		},
		{
			name:   "a wider ipv6_prefix narrows too",
			allow:  []string{"2001:db8:bad:7::1/128"},
			v6bits: 48,
			steps: []step{
				{"2001:db8:bad:1::2", five, "2001:db8:bad:1::2/128", "2001:db8:bad::/48"},
				{"2001:db8:beef:1::2", five, "2001:db8:beef::/48", ""},
			},
			narrowed: 1,
		},
		{
			name:  "IPv4 is unchanged",
			allow: []string{"198.51.100.1/32"},
			steps: []step{{"198.51.100.2", five, "198.51.100.2/32", ""}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var allow []netip.Prefix
			for _, a := range tc.allow {
				allow = append(allow, netip.MustParsePrefix(a))
			}
			e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("burst", 5, time.Minute, time.Hour)}, Allow: allow, IPv6Prefix: tc.v6bits})
			for i, st := range tc.steps {
				var got engine.Ban
				banned := false
				for j, at := range st.at {
					b, ok := e.Observe(ev(st.addr, at, parsers.AuthFailed))
					if ok && j != len(st.at)-1 {
						t.Fatalf("step %d: %s banned at event %d of %d: %+v", i, st.addr, j+1, len(st.at), b)
					}
					got, banned = b, ok
				}
				if st.ban == "" {
					if banned {
						t.Errorf("step %d: %s banned %v; want no ban", i, st.addr, got.Prefix)
					}
					continue
				}
				var from netip.Prefix
				if st.from != "" {
					from = netip.MustParsePrefix(st.from)
				}
				if !banned || got.Prefix != netip.MustParsePrefix(st.ban) || got.NarrowedFrom != from || got.Addr != netip.MustParseAddr(st.addr) {
					t.Errorf("step %d: got ban %v (%v, narrowed from %v, from %v); want %s narrowed from %q", i, got.Prefix, banned, got.NarrowedFrom, got.Addr, st.ban, st.from)
				}
				for _, a := range allow {
					if got.Prefix.Overlaps(a) {
						t.Errorf("step %d: ban %v covers allowlisted %v", i, got.Prefix, a)
					}
				}
			}
			if st := e.Stats(); st.Narrowed != tc.narrowed || st.Allowed != tc.allowed {
				t.Errorf("stats: %d narrowed, %d allowlisted; want %d, %d", st.Narrowed, st.Allowed, tc.narrowed, tc.allowed)
			}
		})
	}
}

// TestNarrowedState: Prefix, Recent, Forget, the offence history and the
// compromise rule work per address inside a narrowed prefix.
func TestNarrowedState(t *testing.T) {
	opts := engine.Options{
		Rules:      []engine.Rule{rule("burst", 3, time.Minute, time.Hour)},
		Allow:      []netip.Prefix{netip.MustParsePrefix("2001:db8:bad::1/128")},
		Compromise: engine.CompromiseRule{Action: "ban", MinFailures: 1, Window: time.Hour, BanTime: time.Hour},
	}
	e := newEngine(t, opts)
	a2, a3 := netip.MustParseAddr("2001:db8:bad::2"), netip.MustParseAddr("2001:db8:bad::3")
	if p := e.Prefix(a2); p != netip.MustParsePrefix("2001:db8:bad::2/128") {
		t.Errorf("Prefix(%v) = %v; want the /128", a2, p)
	}
	if p := e.Prefix(netip.MustParseAddr("2001:db8:beef::2")); p != netip.MustParsePrefix("2001:db8:beef::/64") {
		t.Errorf("Prefix outside = %v; want the /64", p)
	}
	feed(e, a2.String(), 0, time.Second)
	feed(e, a3.String(), 0)
	if n := e.Recent(a2, t0); n != 2 {
		t.Errorf("Recent(::2) = %d; want 2 (its own failures only)", n)
	}
	if n := e.Recent(a3, t0); n != 1 {
		t.Errorf("Recent(::3) = %d; want 1", n)
	}
	// Forgetting ::2 leaves ::3's count.
	e.Forget(netip.PrefixFrom(a2, 128))
	if n, m := e.Recent(a2, t0), e.Recent(a3, t0); n != 0 || m != 1 {
		t.Errorf("after Forget(::2): Recent %d, %d; want 0, 1", n, m)
	}
	// A compromise in the /64 bans the address alone.
	c, ok := e.Success(&parsers.Event{Addr: a3, Time: t0.Add(2 * time.Second), Kind: parsers.AuthSucceeded})
	if !ok || c.Ban == nil || c.Ban.Prefix != netip.PrefixFrom(a3, 128) || c.Ban.NarrowedFrom != netip.MustParsePrefix("2001:db8:bad::/64") {
		t.Fatalf("compromise %+v (ban %+v); want a ban of ::3/128", c, c.Ban)
	}
	if e.Stats().Narrowed != 1 {
		t.Errorf("narrowed %d; want 1", e.Stats().Narrowed)
	}
	// The offence history keeps the address; restored, ::3 is still
	// banned and ::2 is not.
	saved := e.Offences()
	if len(saved) != 1 || saved[0].Prefix != netip.PrefixFrom(a3, 128) {
		t.Fatalf("offences %+v; want ::3/128", saved)
	}
	e2 := newEngine(t, opts)
	e2.Restore(saved)
	if _, banned := feed(e2, a3.String(), time.Minute, time.Minute+time.Second, time.Minute+2*time.Second); banned.Prefix.IsValid() {
		t.Error("::3 banned again during its restored ban")
	}
	if i, b := feed(e2, a2.String(), time.Minute, time.Minute+time.Second, time.Minute+2*time.Second); i != 2 || b.Prefix != netip.PrefixFrom(a2, 128) {
		t.Errorf("::2 after restore: ban at %d of %v; want at 2 of ::2/128", i, b.Prefix)
	}
}

// TestNarrowedRestoreOfWideOffence: the offence of a /64 banned before its
// prefix held an allowlisted address is not restored onto its first
// address; the /64's addresses start afresh, one by one.
func TestNarrowedRestoreOfWideOffence(t *testing.T) {
	rules := []engine.Rule{rule("burst", 2, time.Minute, time.Hour)}
	old := newEngine(t, engine.Options{Rules: rules})
	if _, b := feed(old, "2001:db8:bad::2", 0, time.Second); b.Prefix != netip.MustParsePrefix("2001:db8:bad::/64") {
		t.Fatalf("old ban %v; want the /64", b.Prefix)
	}
	e := newEngine(t, engine.Options{Rules: rules, Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8:bad::1/128")}})
	e.Inherit(old)
	if got := e.Offences(); len(got) != 0 {
		t.Errorf("offences restored: %+v; want none", got)
	}
	for _, a := range []string{"2001:db8:bad::", "2001:db8:bad::2"} {
		if i, b := feed(e, a, 2*time.Second, 3*time.Second); i != 1 || b.Prefix != netip.PrefixFrom(netip.MustParseAddr(a), 128) || b.Offences != 0 {
			t.Errorf("%s: ban at %d of %v after %d offences; want at 1 of the /128 after 0", a, i, b.Prefix, b.Offences)
		}
	}
}

func TestStanding(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("burst", 3, time.Minute, time.Hour), rule("slow", 10, time.Hour, time.Hour)}})
	feed(e, "198.51.100.7", 0, 10*time.Second)
	feed(e, "198.51.100.8", 20*time.Second)
	s := e.Standing(netip.MustParseAddr("198.51.100.7"))
	if s.Prefix != netip.MustParsePrefix("198.51.100.7/32") || len(s.Windows) != 2 || s.Windows[0] != 2 || s.Windows[1] != 2 || !s.Until.IsZero() {
		t.Errorf("standing %+v; want 2 events in each window, no ban", s)
	}
	// Time moves on (another address's event): the burst window forgets.
	feed(e, "198.51.100.8", 2*time.Minute)
	if s := e.Standing(netip.MustParseAddr("198.51.100.7")); s.Windows[0] != 0 || s.Windows[1] != 2 {
		t.Errorf("after 2 minutes: %+v; want burst 0, slow 2", s)
	}
	// A ban: the window is spent, the offence and the ban's end known.
	_, b := feed(e, "198.51.100.9", 3*time.Minute, 3*time.Minute+time.Second, 3*time.Minute+2*time.Second)
	s = e.Standing(netip.MustParseAddr("198.51.100.9"))
	if s.Windows[0] != 0 || s.Offences != 1 || !s.Until.Equal(b.Until()) {
		t.Errorf("banned: %+v; want burst 0, 1 offence, until %v", s, b.Until())
	}
	if s := e.Standing(netip.MustParseAddr("2001:db8::1")); s.Prefix != netip.MustParsePrefix("2001:db8::/64") || s.Windows[0] != 0 {
		t.Errorf("unknown IPv6: %+v", s)
	}
}

// TestLongestBan: no ban a rule makes, however often the address offends,
// is longer than LongestBan, and one reaches it.
func TestLongestBan(t *testing.T) {
	esc := rule("esc", 1, time.Minute, time.Hour)
	esc.Factor, esc.MaxBanTime = 2, 7*24*time.Hour
	free := rule("free", 1, time.Minute, time.Hour)
	free.Factor = 3 // no cap: the engine's own (ten years)
	cases := []struct {
		name string
		opts engine.Options
		want time.Duration
	}{
		{"plain", engine.Options{Rules: []engine.Rule{rule("a", 5, time.Minute, time.Hour), rule("b", 5, time.Hour, 24*time.Hour)}}, 24 * time.Hour},
		{"escalation capped", engine.Options{Rules: []engine.Rule{esc, rule("b", 5, time.Hour, 24*time.Hour)}}, 7 * 24 * time.Hour},
		{"escalation uncapped", engine.Options{Rules: []engine.Rule{free}}, 10 * 365 * 24 * time.Hour},
		{"compromise", engine.Options{Rules: []engine.Rule{esc},
			Compromise: engine.CompromiseRule{Action: "ban", MinFailures: 1, Window: time.Hour, BanTime: 30 * 24 * time.Hour}}, 30 * 24 * time.Hour},
		{"compromise alert only", engine.Options{Rules: []engine.Rule{esc},
			Compromise: engine.CompromiseRule{Action: "alert", MinFailures: 1, Window: time.Hour, BanTime: 30 * 24 * time.Hour}}, 7 * 24 * time.Hour},
	}
	for _, c := range cases {
		if got := c.opts.LongestBan(); got != c.want {
			t.Errorf("%s: LongestBan %v, want %v", c.name, got, c.want)
		}
	}
	// The engine's own bans of a repeat offender stop at it.
	e := newEngine(t, engine.Options{Rules: []engine.Rule{esc}, History: 365 * 24 * time.Hour})
	longest, at := time.Duration(0), time.Duration(0)
	for range 20 {
		_, b := feed(e, "203.0.113.7", at)
		if b.Duration > esc.MaxBanTime {
			t.Fatalf("ban of %v: longer than LongestBan %v", b.Duration, esc.MaxBanTime)
		}
		longest = max(longest, b.Duration)
		at += b.Duration + time.Second
	}
	if longest != esc.MaxBanTime {
		t.Errorf("longest ban made %v; LongestBan says %v", longest, esc.MaxBanTime)
	}
}

// TestRulePorts: rules with ports of their own ban apart: an address
// banned by the GUI rule is still counted by the SIP rule (it can still
// reach SIP), while a SIP ban stops SIP counting; after a restart the
// offence history does not hold back the SIP rule for a GUI ban.
func TestRulePorts(t *testing.T) {
	gui := rule("gui", 2, time.Minute, time.Hour)
	gui.Kinds, gui.Ports = parsers.KindSet(0).With(parsers.AdminAuthFailed), "80/tcp,443/tcp"
	sip := rule("sip", 2, time.Minute, time.Hour)
	sip.Kinds = parsers.KindSet(0).With(parsers.AuthFailed)
	opts := engine.Options{Rules: []engine.Rule{gui, sip}}
	e := newEngine(t, opts)
	e.Observe(ev("198.51.100.7", 0, parsers.AdminAuthFailed))
	if b, ok := e.Observe(ev("198.51.100.7", time.Second, parsers.AdminAuthFailed)); !ok || b.Rule != "gui" {
		t.Fatalf("no GUI ban: %+v", b)
	}
	if _, ok := e.Observe(ev("198.51.100.7", 2*time.Second, parsers.AdminAuthFailed)); ok {
		t.Error("banned again by the GUI rule while its ban holds")
	}
	e.Observe(ev("198.51.100.7", 3*time.Second, parsers.AuthFailed))
	if b, ok := e.Observe(ev("198.51.100.7", 4*time.Second, parsers.AuthFailed)); !ok || b.Rule != "sip" {
		t.Errorf("SIP failures of a GUI-banned address: no SIP ban (%+v)", b)
	}
	if _, ok := e.Observe(ev("198.51.100.7", 5*time.Second, parsers.AuthFailed)); ok {
		t.Error("banned again by the SIP rule while its ban holds")
	}
	if st := e.Stats(); st.WhileBanned != 2 {
		t.Errorf("WhileBanned = %d; want 2", st.WhileBanned)
	}

	// Restored from the offence history: only a GUI ban was made.
	e = newEngine(t, opts)
	e.Observe(ev("198.51.100.8", 0, parsers.AdminAuthFailed))
	e.Observe(ev("198.51.100.8", time.Second, parsers.AdminAuthFailed))
	e2 := newEngine(t, opts)
	e2.Restore(e.Offences())
	e2.Observe(ev("198.51.100.8", 2*time.Second, parsers.AuthFailed))
	if _, ok := e2.Observe(ev("198.51.100.8", 3*time.Second, parsers.AuthFailed)); !ok {
		t.Error("after a restore, a GUI ban held back the SIP rule")
	}
}

// TestSetAllow: the allowlist changes under a running engine (a trunk's
// DNS answer): the counters of other addresses go on, a new entry is
// never counted again, and an IPv6 network ban narrows around it.
func TestSetAllow(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 3, time.Minute, time.Hour)}})
	s := time.Second
	if i, _ := feed(e, "198.51.100.9", 0, s); i >= 0 {
		t.Fatal("banned after 2 of 3")
	}
	if err := e.SetAllow([]netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:1::1/128")}); err != nil {
		t.Fatal(err)
	}
	if i, _ := feed(e, "198.51.100.9", 2*s); i != 0 {
		t.Error("the counter of an address not allowlisted did not go on")
	}
	if i, _ := feed(e, "192.0.2.1", 0, s, 2*s, 3*s); i >= 0 || !e.Allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a newly allowlisted address was counted")
	}
	if i, b := feed(e, "2001:db8:1::2", 0, s, 2*s); i != 2 || b.Prefix != netip.MustParsePrefix("2001:db8:1::2/128") {
		t.Errorf("IPv6 neighbour of an allowlisted address: %d %s; want banned as the /128", i, b.Prefix)
	}
	if err := e.SetAllow([]netip.Prefix{{}}); err == nil || !e.Allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("an invalid allowlist: %v, or the old one lost", err)
	}
	if err := e.SetAllow(nil); err != nil || e.Allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Error("an address left the allowlist but is still allowed")
	}
}

// TestSetAllowTracked: an address (or IPv6 prefix) the engine already
// counts, then allowlisted, is counted no more: Observe reads the
// allowlist only for what it does not track, so SetAllow forgets it.
func TestSetAllowTracked(t *testing.T) {
	e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 3, time.Minute, time.Hour)}})
	s := time.Second
	for _, a := range []string{"203.0.113.5", "2001:db8:2::1", "2001:db8:3::1"} {
		if i, _ := feed(e, a, 0, s); i >= 0 {
			t.Fatalf("%s banned after 2 of 3", a)
		}
	}
	allow := []netip.Prefix{netip.MustParsePrefix("203.0.113.5/32"), netip.MustParsePrefix("2001:db8:2::/48"), netip.MustParsePrefix("2001:db8:3::1/128")}
	if err := e.SetAllow(allow); err != nil {
		t.Fatal(err)
	}
	before := e.Stats().Allowed
	for _, a := range []string{"203.0.113.5", "2001:db8:2::1", "2001:db8:2::2", "2001:db8:3::1"} {
		if i, b := feed(e, a, 2*s, 3*s); i >= 0 {
			t.Errorf("%s, allowlisted while counted, was banned: %s", a, b.Prefix)
		}
	}
	if got := e.Stats().Allowed - before; got != 8 {
		t.Errorf("%d events counted as allowlisted, want 8", got)
	}
	// The neighbour of an allowlisted /128 is counted on its own, from
	// scratch: its /64's count was not its own.
	if i, b := feed(e, "2001:db8:3::2", 2*s, 3*s, 4*s); i != 2 || b.Prefix != netip.MustParsePrefix("2001:db8:3::2/128") {
		t.Errorf("neighbour of an allowlisted address: %d %s; want banned as the /128 at its third event", i, b.Prefix)
	}
}

// TestTrackerReuse: the state of an address forgotten (evicted past
// MaxTracked) is never taken over by the next one, whose tracker it reuses:
// neither its window nor its ban by ports.
func TestTrackerReuse(t *testing.T) {
	gui := rule("gui", 2, time.Minute, time.Hour)
	gui.Kinds, gui.Ports = parsers.KindSet(0).With(parsers.AdminAuthFailed), "80/tcp,443/tcp"
	sip := rule("sip", 3, time.Minute, time.Hour)
	sip.Kinds = parsers.KindSet(0).With(parsers.AuthFailed)
	e := newEngine(t, engine.Options{Rules: []engine.Rule{gui, sip}, MaxTracked: 1})
	e.Observe(ev("198.51.100.7", 0, parsers.AdminAuthFailed))
	if _, ok := e.Observe(ev("198.51.100.7", time.Second, parsers.AdminAuthFailed)); !ok {
		t.Fatal("no GUI ban")
	}
	e.Observe(ev("198.51.100.7", 2*time.Second, parsers.AuthFailed))
	e.Observe(ev("198.51.100.7", 3*time.Second, parsers.AuthFailed)) // one short of a SIP ban
	// 198.51.100.8 evicts .7 and reuses its tracker.
	if _, ok := e.Observe(ev("198.51.100.8", 4*time.Second, parsers.AdminAuthFailed)); ok {
		t.Error("one GUI failure banned: the window of the address forgotten was kept")
	}
	if _, ok := e.Observe(ev("198.51.100.8", 5*time.Second, parsers.AuthFailed)); ok {
		t.Error("one SIP failure banned: the window of the address forgotten was kept")
	}
	if b, ok := e.Observe(ev("198.51.100.8", 6*time.Second, parsers.AdminAuthFailed)); !ok || b.Rule != "gui" {
		t.Errorf("second GUI failure: %+v, %v; want a GUI ban (not held back by the forgotten one's)", b, ok)
	}
	if st := e.Stats(); st.Bans != 2 || st.Tracked != 1 || st.WhileBanned != 0 {
		t.Errorf("stats %+v; want 2 bans, 1 tracked, none while banned", st)
	}
}

// TestOffenceHistoryFull: with more bans within History than MaxTracked,
// the ended ones with the oldest offence are forgotten, those of equal
// times by address (not in the map's order, which made two runs of the
// same events differ), and bans in force are kept.
func TestOffenceHistoryFull(t *testing.T) {
	for range 20 { // the map's order changes from engine to engine
		e := newEngine(t, engine.Options{Rules: []engine.Rule{rule("r", 1, time.Minute, time.Second)}, MaxTracked: 10})
		for i := 10; i >= 1; i-- { // ten bans at one instant, ended by the next
			feed(e, fmt.Sprintf("198.51.100.%d", i), 0)
		}
		feed(e, "198.51.100.20", 10*time.Second) // the 11th: a tenth of the room is made
		var got []string
		for _, o := range e.Offences() {
			got = append(got, o.Prefix.Addr().String())
		}
		slices.Sort(got)
		want := []string{"198.51.100.10", "198.51.100.20", "198.51.100.3", "198.51.100.4", "198.51.100.5",
			"198.51.100.6", "198.51.100.7", "198.51.100.8", "198.51.100.9"}
		if !slices.Equal(got, want) {
			t.Fatalf("offences kept: %v; want %v (.1 and .2 forgotten first)", got, want)
		}
		if s := e.Stats(); s.Evicted != 3 {
			t.Fatalf("%d evicted, want 3 (a tracker, to track the 11th address, and 2 offences)", s.Evicted)
		}
	}
}

// TestHistoryFullScales: an offence history kept full by a flood of bans
// costs in proportion to the bans, not to their square: looking for the
// oldest offence again for each one forgotten took 15 s for 100,000 bans
// over a MaxTracked of 20,000 (BenchmarkHistoryFull; 0.3 s now). Eight
// times the bans and the room may cost about eight times as much (the
// sorts' log aside); a quadratic sweep cost more than forty.
func TestHistoryFullScales(t *testing.T) {
	testutil.SkipShort(t, "times two floods of bans")
	r := rule("r", 1, time.Minute, time.Second)
	run := func(n int) time.Duration {
		best := time.Duration(math.MaxInt64)
		for range 3 {
			e := newEngine(t, engine.Options{Rules: []engine.Rule{r}, MaxTracked: n / 5})
			start := time.Now()
			for i := range n {
				e.Observe(&parsers.Event{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
					Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Kind: parsers.AuthFailed})
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	small, large := run(5_000), run(40_000)
	t.Logf("5,000 bans %v, 40,000 bans %v", small, large)
	if ratio := float64(large) / float64(small); ratio > 20 {
		t.Errorf("8 times the bans took %.1f times as long (%v, %v): the history's sweep is quadratic", ratio, small, large)
	}
}

// TestForgetScales: forgetting an address (each cluster unban, each
// manual unban does) costs the same whatever the number of addresses
// tracked: 100 times the trackers, well under 10 times the time (a scan
// of them all: about 100 times).
func TestForgetScales(t *testing.T) {
	testutil.SkipShort(t, "times forgetting among many trackers")
	r := rule("r", 1000, time.Hour, time.Hour)
	run := func(n int) time.Duration {
		e := newEngine(t, engine.Options{Rules: []engine.Rule{r}, MaxTracked: 2 * n})
		addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
		for i := range n {
			e.Observe(&parsers.Event{Addr: addr(i), Time: t0, Kind: parsers.AuthFailed})
		}
		best := time.Duration(math.MaxInt64)
		for range 3 {
			start := time.Now()
			for i := range 1000 {
				e.Forget(netip.PrefixFrom(addr(n+i), 32))
			}
			best = min(best, time.Since(start))
		}
		if got := e.Stats().Tracked; got != n {
			t.Fatalf("%d tracked after forgetting others; want %d", got, n)
		}
		e.Forget(netip.PrefixFrom(addr(0), 32))
		if got := e.Stats().Tracked; got != n-1 {
			t.Fatalf("%d tracked after forgetting one; want %d", got, n-1)
		}
		return best
	}
	small, large := run(1_000), run(100_000)
	t.Logf("1,000 forgets among 1,000 trackers %v, among 100,000 %v", small, large)
	if ratio := float64(large) / float64(small); ratio > 10 {
		t.Errorf("100 times the trackers: forgetting took %.1f times as long (%v, %v): a scan of them all", ratio, small, large)
	}
}
