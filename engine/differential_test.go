package engine

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// TestDifferential holds the engine to the reference (reference_test.go,
// the engine before its recency queue) on long random streams: every
// Observe and Success result, the stats after each event, the addresses
// tracked and the offence history must be the same. The streams mix IPv4,
// IPv4-mapped and IPv6 addresses in a few /64s (one holding an allowlisted
// address, so narrowed), special and allowlisted addresses, every kind,
// times mostly increasing with jitter, some out of order and some jumps
// past the windows and the history, a MaxTracked small enough to evict,
// and the calls that change state beside Observe (Forget, Banned,
// SetAllow, Restore).
func TestDifferential(t *testing.T) {
	mn, hour := time.Minute, time.Hour
	r := func(name string, maxRetry int, find, ban time.Duration, factor float64, kinds parsers.KindSet, ports string) Rule {
		return Rule{Name: name, Kinds: kinds, MaxRetry: maxRetry, FindTime: find, BanTime: ban, Factor: factor, MaxBanTime: 20 * ban, Ports: ports}
	}
	all := parsers.AllKinds
	some := parsers.KindSet(1<<parsers.AuthFailed | 1<<parsers.UnknownUser | 1<<parsers.Injection)
	ruleSets := map[string][]Rule{
		"burst and slow": {r("burst", 5, mn, hour, 2, all, ""), r("slow", 30, 24*hour, 24*hour, 2, all, "")},
		"one":            {r("one", 1, mn, 10*mn, 1, some, "")},
		"three":          {r("a", 3, mn, hour, 2, some, ""), r("b", 6, 10*mn, 2*hour, 1.5, all, ""), r("c", 12, hour, 5*hour, 3, all&^some, "")},
		"ports": {r("sip", 4, mn, hour, 2, all, ""), r("web", 3, 2*mn, 3*hour, 2, 1<<parsers.AdminAuthFailed|1<<parsers.AuthFailed, "web"),
			r("slow", 20, hour, 10*hour, 2, all, "")},
		"two ports": {r("x", 3, mn, hour, 2, all, "x"), r("y", 5, 5*mn, 2*hour, 2, all, "y")},
	}
	for name, rules := range ruleSets {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%s/%d", name, seed), func(t *testing.T) {
				differential(t, rules, seed, 30_000)
			})
		}
	}
}

func differential(t *testing.T, rules []Rule, seed uint64, n int) {
	if n >= int(time.Millisecond/2) {
		t.Fatalf("%d events: the times made unique need fewer than %d", n, time.Millisecond/2)
	}
	rnd := rand.New(rand.NewPCG(seed, 11))
	allow := []netip.Prefix{
		netip.MustParsePrefix("10.9.0.0/16"),
		netip.MustParsePrefix("2001:db8:0:1::77/128"), // narrows 2001:db8:0:1::/64
	}
	special := func(p netip.Prefix) (string, bool) {
		for _, s := range []string{"127.0.0.0/8", "::1/128", "fe80::/10"} {
			if p.Overlaps(netip.MustParsePrefix(s)) {
				return "special", true
			}
		}
		return "", false
	}
	opts := Options{
		Rules: rules, Allow: allow, IPv6Prefix: 64, MaxTracked: []int{5 + rnd.IntN(60), 1000}[seed%2], History: time.Duration(1+rnd.IntN(48)) * time.Hour,
		Special:    special,
		Compromise: CompromiseRule{Action: []string{"alert", "ban", "off"}[seed%3], MinFailures: 2, Window: 10 * time.Minute, BanTime: 3 * time.Hour},
	}
	got, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := newRefEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	v4 := make([]netip.Addr, 150)
	for i := range v4 {
		v4[i] = netip.AddrFrom4([4]byte{198, 51, byte(rnd.IntN(3)), byte(rnd.IntN(256))})
	}
	nets := []string{"2001:db8:0:1::", "2001:db8:0:2::", "2001:db8:0:3::", "2a02:1:2:3::", "::"}
	addr := func() netip.Addr {
		switch x := rnd.IntN(100); {
		case x < 60:
			// Zipf-like: a few addresses send most events.
			return v4[min(rnd.IntN(len(v4)), rnd.IntN(len(v4)))]
		case x < 63:
			return netip.AddrFrom16(v4[rnd.IntN(len(v4))].As16()) // IPv4-mapped
		case x < 92:
			a := netip.MustParseAddr(nets[rnd.IntN(len(nets))]).As16()
			a[15], a[14] = byte(rnd.IntN(4)), byte(rnd.IntN(2))
			if rnd.IntN(10) == 0 {
				a[15] = 0x77 // the allowlisted address, or its neighbours' key
			}
			return netip.AddrFrom16(a)
		case x < 95:
			return netip.AddrFrom4([4]byte{10, 9, byte(rnd.IntN(2)), byte(rnd.IntN(4))})
		case x < 97:
			return netip.MustParseAddr([]string{"127.0.0.1", "::1", "fe80::1"}[rnd.IntN(3)])
		default:
			return netip.AddrFrom4([4]byte{203, 0, 113, byte(rnd.IntN(256))})
		}
	}
	kinds := append(parsers.Kinds(), parsers.AuthSucceeded, parsers.AuthSucceeded, 0)
	restored := 0 // offences restored
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for i := range n {
		switch x := rnd.IntN(1000); {
		case x < 3:
			now = now.Add(time.Duration(rnd.IntN(30)) * time.Hour) // past windows, history, bans
		case x < 50:
			now = now.Add(time.Duration(rnd.IntN(20)) * time.Minute)
		default:
			now = now.Add(time.Duration(rnd.IntN(3000)) * time.Millisecond)
		}
		at := now
		if rnd.IntN(20) == 0 {
			at = now.Add(-time.Duration(rnd.IntN(int(3 * time.Minute)))) // out of order
		}
		// No two events, nor an event and a manual ban or a restored
		// offence, have the same time: when the history is full, both
		// engines forget the oldest of two offences of the same time in
		// the order of a map's range, so at random.
		at = at.Truncate(time.Millisecond).Add(time.Duration(i))
		ev := &parsers.Event{Addr: addr(), Time: at, Kind: kinds[rnd.IntN(len(kinds))]}
		step := fmt.Sprintf("event %d %s %v %s", i, ev.Addr, ev.Kind, ev.Time.Format(time.TimeOnly))
		if ev.Kind == parsers.AuthSucceeded {
			c1, ok1 := got.Success(ev)
			c2, ok2 := want.Success(ev)
			if ok1 != ok2 || !reflect.DeepEqual(c1, c2) {
				t.Fatalf("%s: Success = %+v, %v; want %+v, %v", step, c1, ok1, c2, ok2)
			}
		} else {
			b1, ok1 := got.Observe(ev)
			b2, ok2 := want.Observe(ev)
			if ok1 != ok2 || !reflect.DeepEqual(b1, b2) {
				t.Fatalf("%s: Observe = %+v, %v; want %+v, %v", step, b1, ok1, b2, ok2)
			}
		}
		if s1, s2 := got.Stats(), want.Stats(); s1 != s2 {
			t.Fatalf("%s: stats %+v; want %+v", step, s1, s2)
		}
		if s1, s2 := got.Standing(ev.Addr), want.Standing(ev.Addr); !reflect.DeepEqual(s1, s2) {
			t.Fatalf("%s: standing %+v; want %+v", step, s1, s2)
		}
		switch x := rnd.IntN(2000); {
		case x < 2:
			p := got.Prefix(addr())
			got.Forget(p)
			want.Forget(p)
		case x < 4:
			p, d := got.Prefix(addr()), time.Duration(1+rnd.IntN(5))*time.Hour
			got.Banned(p, at.Add(time.Millisecond/2), d)
			want.Banned(p, at.Add(time.Millisecond/2), d)
		case x < 5:
			// Trunks come and go: the allowlist changes under tracked addresses.
			a := []netip.Prefix{allow[rnd.IntN(len(allow))], netip.PrefixFrom(addr(), 32+rnd.IntN(97)).Masked()}
			if a[1].Addr().Is4() {
				a[1] = netip.PrefixFrom(a[1].Addr(), 24).Masked()
			}
			if err1, err2 := got.SetAllow(a), want.SetAllow(a); (err1 == nil) != (err2 == nil) {
				t.Fatalf("%s: SetAllow(%v) = %v; want %v", step, a, err1, err2)
			}
		case x < 6:
			// Offences reports the offences of a /64 and of addresses in
			// it (kept while it was narrowed) as the same prefix: Restore
			// copies one of them, of the same time, under the other key.
			// The times are made unique again.
			o := want.Offences()
			for j := range o {
				o[j].Last = o[j].Last.Truncate(time.Millisecond).Add(time.Millisecond*3/4 + time.Duration(restored))
				restored++
			}
			got.Restore(o)
			want.Restore(o)
		}
		if i%1000 == 999 || i == n-1 {
			compareState(t, step, got, want)
		}
	}
	if s := want.Stats(); s.Bans == 0 || (s.Evicted == 0) != (seed%2 == 1) || s.WhileBanned == 0 {
		t.Errorf("the stream did not exercise the engine: %+v", s)
	}
}

// compareState compares what the engines track and remember.
func compareState(t *testing.T, step string, got *Engine, want *refEngine) {
	t.Helper()
	var k1, k2 []key
	for k := range got.trackers.all() {
		k1 = append(k1, k)
	}
	for k := range want.trackers {
		k2 = append(k2, key(k))
	}
	cmp := func(a, b key) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(k1, cmp)
	slices.SortFunc(k2, cmp)
	if !slices.Equal(k1, k2) {
		t.Fatalf("%s: tracking %d addresses; want %d (or others)", step, len(k1), len(k2))
	}
	if len(got.offences) != len(want.offences) {
		t.Fatalf("%s: %d offences; want %d", step, len(got.offences), len(want.offences))
	}
	for k, o := range want.offences {
		if g := got.offences[key(k)]; g == nil || g.count != o.count || g.last != o.last || g.until != o.until {
			t.Fatalf("%s: offence of %v = %+v; want %+v", step, netip.AddrFrom16(k), g, o)
		}
	}

}
