package fraud

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/calls"
	"github.com/sipguard/sipguard/logins"
	"github.com/sipguard/sipguard/numbering"
)

var (
	ukPlan = numbering.Plan{InternationalPrefixes: []string{"00"}, NationalPrefix: "0", CountryCode: "44"}
	day    = time.Date(2025, 12, 2, 0, 0, 0, 0, time.UTC) // a Tuesday
)

func guard(t *testing.T, o Options) *Guard {
	t.Helper()
	o.Plan = ukPlan
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// call is an outbound call of account at start, answered after ring (or
// not when ring < 0), lasting talk once answered.
func call(id, account, dialled string, start time.Time, ring, talk time.Duration) calls.Call {
	c := calls.Call{ID: id, Account: account, Tech: "PJSIP", Dialled: dialled, Context: "from-internal", Start: start}
	if ring >= 0 {
		c.Answer = start.Add(ring)
		c.End = c.Answer.Add(talk)
	} else {
		c.End = start.Add(talk)
	}
	return c
}

func rules(alerts []Alert) string {
	var s []string
	for _, a := range alerts {
		s = append(s, a.Rule)
	}
	return strings.Join(s, ",")
}

// TestRules runs each rule on a case that must fire it and one that must
// not (a normal business day's calls).
func TestRules(t *testing.T) {
	hours, err := ParseHours("mon-fri 08:00-18:00", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	nine := day.Add(9 * time.Hour)
	tests := []struct {
		name  string
		o     Options
		calls []calls.Call
		want  string
	}{
		{"country: allowed", Options{AllowedCountries: []string{"GB", "DE"}},
			[]calls.Call{call("1", "1001", "004930123456", nine, time.Second, time.Minute)}, ""},
		{"country: not allowed", Options{AllowedCountries: []string{"GB", "DE"}},
			[]calls.Call{call("1", "1001", "0053123456", nine, time.Second, time.Minute)}, RuleCountry},
		{"country: national calls are never checked", Options{AllowedCountries: []string{"DE"}},
			[]calls.Call{call("1", "1001", "02079460000", nine, time.Second, time.Minute)}, ""},
		{"country: non-geographic not allowed by default", Options{AllowedCountries: []string{"GB"}},
			[]calls.Call{call("1", "1001", "0088216012345", nine, time.Second, time.Minute)}, RuleCountry},
		{"risk range", Options{RiskRanges: true},
			[]calls.Call{call("1", "1001", "0088216012345", nine, time.Second, time.Minute)}, RuleRisk},
		{"risk range: national premium rate", Options{RiskRanges: true},
			[]calls.Call{call("1", "1001", "09011234567", nine, time.Second, time.Minute)}, RuleRisk},
		{"risk range: ordinary number", Options{RiskRanges: true},
			[]calls.Call{call("1", "1001", "004930123456", nine, time.Second, time.Minute)}, ""},
		{"internal calls are never checked", Options{RiskRanges: true, MaxCalls: 1, CallsWindow: time.Hour},
			[]calls.Call{call("1", "1001", "1002", nine, time.Second, time.Minute), call("2", "1001", "1003", nine, time.Second, time.Minute)}, ""},
		{"after hours", Options{BusinessHours: &hours},
			[]calls.Call{call("1", "1001", "004930123456", day.Add(23*time.Hour), time.Second, time.Minute)}, RuleHours},
		{"after hours: weekend", Options{BusinessHours: &hours},
			[]calls.Call{call("1", "1001", "004930123456", day.Add(4*24*time.Hour+10*time.Hour), time.Second, time.Minute)}, RuleHours},
		{"after hours: national call at night", Options{BusinessHours: &hours},
			[]calls.Call{call("1", "1001", "02079460000", day.Add(23*time.Hour), time.Second, time.Minute)}, ""},
		{"after hours: in hours", Options{BusinessHours: &hours},
			[]calls.Call{call("1", "1001", "004930123456", nine, time.Second, time.Minute)}, ""},
		{"concurrent", Options{MaxConcurrent: 2}, []calls.Call{
			call("1", "1001", "004930123456", nine, time.Second, 10*time.Minute),
			call("2", "1001", "004930123457", nine.Add(time.Minute), time.Second, 10*time.Minute),
			call("3", "1001", "004930123458", nine.Add(2*time.Minute), time.Second, 10*time.Minute)}, RuleConcurrent},
		{"concurrent: one after the other", Options{MaxConcurrent: 2}, []calls.Call{
			call("1", "1001", "004930123456", nine, time.Second, time.Minute),
			call("2", "1001", "004930123457", nine.Add(2*time.Minute), time.Second, time.Minute),
			call("3", "1001", "004930123458", nine.Add(4*time.Minute), time.Second, time.Minute)}, ""},
		{"concurrent: per account", Options{MaxConcurrent: 2}, []calls.Call{
			call("1", "1001", "004930123456", nine, time.Second, 10*time.Minute),
			call("2", "1002", "004930123457", nine.Add(time.Minute), time.Second, 10*time.Minute),
			call("3", "1003", "004930123458", nine.Add(2*time.Minute), time.Second, 10*time.Minute)}, ""},
		{"calls per window", Options{MaxCalls: 2, CallsWindow: time.Hour}, []calls.Call{
			call("1", "1001", "02079460001", nine, time.Second, time.Minute),
			call("2", "1001", "02079460002", nine.Add(10*time.Minute), time.Second, time.Minute),
			call("3", "1001", "02079460003", nine.Add(20*time.Minute), time.Second, time.Minute)}, RuleCalls},
		{"calls per window: spread out", Options{MaxCalls: 2, CallsWindow: time.Hour}, []calls.Call{
			call("1", "1001", "02079460001", nine, time.Second, time.Minute),
			call("2", "1001", "02079460002", nine.Add(40*time.Minute), time.Second, time.Minute),
			call("3", "1001", "02079460003", nine.Add(80*time.Minute), time.Second, time.Minute)}, ""},
		{"international minutes", Options{MaxMinutes: 30, MinutesWindow: 24 * time.Hour}, []calls.Call{
			call("1", "1001", "004930123456", nine, time.Second, 20*time.Minute),
			call("2", "1001", "004930123456", nine.Add(time.Hour), time.Second, 20*time.Minute)}, RuleMinutes},
		{"international minutes: national ones do not count", Options{MaxMinutes: 30, MinutesWindow: 24 * time.Hour}, []calls.Call{
			call("1", "1001", "02079460000", nine, time.Second, 20*time.Minute),
			call("2", "1001", "02079460000", nine.Add(time.Hour), time.Second, 20*time.Minute)}, ""},
		{"probing", Options{ProbePrefixes: 3, ProbeWindow: time.Hour}, []calls.Call{
			call("1", "1001", "0088216012345", nine, -1, 3*time.Second),
			call("2", "1001", "0037167012345", nine.Add(time.Minute), -1, 3*time.Second),
			call("3", "1001", "0022412345678", nine.Add(2*time.Minute), -1, 3*time.Second)}, RuleProbing},
		{"probing: the same prefix again and again", Options{ProbePrefixes: 3, ProbeWindow: time.Hour}, []calls.Call{
			call("1", "1001", "004930123456", nine, -1, 3*time.Second),
			call("2", "1001", "004930123456", nine.Add(time.Minute), -1, 3*time.Second),
			call("3", "1001", "004930123456", nine.Add(2*time.Minute), -1, 3*time.Second)}, ""},
		{"probing: answered calls are no probes", Options{ProbePrefixes: 3, ProbeWindow: time.Hour}, []calls.Call{
			call("1", "1001", "0088216012345", nine, time.Second, 3*time.Second),
			call("2", "1001", "0037167012345", nine.Add(time.Minute), time.Second, 3*time.Second),
			call("3", "1001", "0022412345678", nine.Add(2*time.Minute), time.Second, 3*time.Second)}, ""},
		{"contexts: calls from trunks are not placed by an account", Options{RiskRanges: true, Contexts: []string{"from-phones"}},
			[]calls.Call{call("1", "1001", "0088216012345", nine, time.Second, time.Minute)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := guard(t, tt.o)
			var got []Alert
			for _, c := range tt.calls {
				got = append(got, g.Record(c)...)
			}
			if r := rules(got); r != tt.want {
				t.Errorf("alerts %q, want %q: %v", r, tt.want, got)
			}
		})
	}
}

// TestNewAddress: an account known from one address for weeks logs in
// from a new one and calls abroad at once; its usual address calling
// abroad, or a new address calling nationally, is no alert.
func TestNewAddress(t *testing.T) {
	office, stranger := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.66")
	g := guard(t, Options{NewAddressWindow: 24 * time.Hour})
	g.Login("1001", office, day.Add(-30*24*time.Hour))
	if a := g.Record(call("1", "1001", "004930123456", day, time.Second, time.Minute)); len(a) != 0 {
		t.Fatalf("usual address: %v", a)
	}
	g.Login("1001", stranger, day.Add(time.Hour))
	if a := g.Record(call("2", "1001", "02079460000", day.Add(time.Hour+time.Minute), time.Second, time.Minute)); len(a) != 0 {
		t.Fatalf("national call: %v", a)
	}
	a := g.Record(call("3", "1001", "0088216012345", day.Add(time.Hour+2*time.Minute), time.Second, time.Minute))
	if rules(a) != RuleNewAddress || a[0].LastAddr != stranger {
		t.Fatalf("international call from the new address: %v", a)
	}
	// Right after sipguard started, every address is new: no alert.
	g2 := guard(t, Options{NewAddressWindow: 24 * time.Hour})
	g2.Login("1001", office, day)
	g2.Login("1001", stranger, day.Add(time.Minute))
	if a := g2.Record(call("1", "1001", "004930123456", day.Add(2*time.Minute), time.Second, time.Minute)); len(a) != 0 {
		t.Fatalf("after start: %v", a)
	}
}

// TestNightBurstFromCEL replays a night-time fraud burst through the CEL
// reader: after a normal day, a guessed account places 40 calls to
// satellite and premium numbers, 8 at once, at 02:00.
func TestNightBurstFromCEL(t *testing.T) {
	hours, _ := ParseHours("mon-fri 08:00-18:00", time.UTC)
	g := guard(t, Options{AllowedCountries: []string{"GB", "DE", "FR"}, RiskRanges: true, MaxConcurrent: 4, MaxCalls: 20,
		CallsWindow: time.Hour, MaxMinutes: 60, MinutesWindow: 24 * time.Hour, BusinessHours: &hours})
	attacker := netip.MustParseAddr("203.0.113.66")
	g.Login("1001", attacker, day.Add(2*time.Hour-time.Minute))
	var b strings.Builder
	line := func(ev string, t time.Time, ch, exten, uid, lid string) {
		fmt.Fprintf(&b, "%q,\"%d.%06d\",%q,\"from-internal\",%q,%q,%q,\"\",\"\",\"\",\"1001\"\n", ev, t.Unix(), t.Nanosecond()/1000, ch, exten, uid, lid)
	}
	// The normal day: ten national calls.
	for i := range 10 {
		start := day.Add(9*time.Hour + time.Duration(i)*30*time.Minute)
		id := fmt.Sprintf("%d.%d", start.Unix(), i)
		line("CHAN_START", start, fmt.Sprintf("PJSIP/1002-%08x", i), "02079460000", id, id)
		line("ANSWER", start.Add(5*time.Second), fmt.Sprintf("PJSIP/1002-%08x", i), "02079460000", id, id)
		line("HANGUP", start.Add(3*time.Minute), fmt.Sprintf("PJSIP/1002-%08x", i), "02079460000", id, id)
	}
	numbers := []string{"0088216012345", "00881612345678", "0044909876543", "0053123456"}
	for i := range 40 {
		start := day.Add(26*time.Hour + time.Duration(i/8)*10*time.Minute + time.Duration(i%8)*time.Second)
		id := fmt.Sprintf("%d.%d", start.Unix(), 100+i)
		ch := fmt.Sprintf("PJSIP/1001-%08x", 100+i)
		n := numbers[i%len(numbers)]
		line("CHAN_START", start, ch, n, id, id)
		line("ANSWER", start.Add(2*time.Second), ch, n, id, id)
		line("HANGUP", start.Add(8*time.Minute), ch, n, id, id)
	}
	r := calls.NewCELReader(nil, 0)
	fired := map[string]int{}
	var first time.Time
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		var u calls.Update
		if r.Line([]byte(l), &u) != calls.Matched {
			continue
		}
		for _, a := range g.Update(u) {
			fired[a.Rule]++
			if a.Account != "1001" || a.LastAddr != attacker {
				t.Errorf("alert on the wrong account or address: %v", a)
			}
			if first.IsZero() {
				first = a.Time
			}
		}
	}
	for _, rule := range []string{RuleRisk, RuleCountry, RuleHours, RuleConcurrent, RuleCalls, RuleMinutes} {
		if fired[rule] == 0 {
			t.Errorf("%s did not fire: %v", rule, fired)
		}
	}
	if want := day.Add(26 * time.Hour); !first.Equal(want) {
		t.Errorf("first alert at %v, want the first fraudulent call's start %v", first, want)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{AllowedCountries: []string{"gb"}},
		{MaxCalls: 1},
		{MaxMinutes: 1},
		{ProbePrefixes: 1},
		{Plan: numbering.Plan{CountryCode: "+44"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	for _, s := range []string{"", "mon-fri", "mon-fri 18:00-08:00", "xyz 08:00-18:00", "mon-fri 8-18"} {
		if _, err := ParseHours(s, time.UTC); err == nil {
			t.Errorf("ParseHours(%q): no error", s)
		}
	}
	h, err := ParseHours("fri-mon 22:00-24:00", time.UTC)
	if err != nil || !h.Days[5] || !h.Days[0] || !h.Days[1] || h.Days[3] || !h.Within(day.Add(-24*time.Hour+23*time.Hour)) {
		t.Errorf("wrapping days: %+v %v", h, err)
	}
}

// TestBounded: a flood of accounts (chan_sip guests are named by their
// address) keeps the guard's state bounded.
func TestBounded(t *testing.T) {
	g := guard(t, Options{RiskRanges: true, MaxAccounts: 100, MaxCalls: 5, CallsWindow: time.Hour})
	for i := range 5000 {
		g.Record(call(fmt.Sprint(i), fmt.Sprintf("10.0.%d.%d", i/256, i%256), "02079460000", day.Add(time.Duration(i)*time.Second), time.Second, time.Second))
	}
	if g.Accounts() > 100 {
		t.Errorf("%d accounts followed", g.Accounts())
	}
}

// TestSuspect: the address an alert names for a ban is the account's only
// address in use, or a new one beside long-known ones; never the office
// phone that merely logged in last while the account is used elsewhere.
func TestSuspect(t *testing.T) {
	office, home, stranger := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.20"), netip.MustParseAddr("203.0.113.66")
	call3 := func(g *Guard, at time.Time) Alert {
		t.Helper()
		a := g.Record(call("x"+at.String(), "1001", "0088216012345", at, time.Second, time.Minute))
		if len(a) != 1 {
			t.Fatalf("alerts %v", a)
		}
		return a[0]
	}
	o := Options{RiskRanges: true, Cooldown: time.Nanosecond}

	g := guard(t, o)
	g.Login("1001", office, day.Add(-40*24*time.Hour))
	g.Login("1001", office, day)
	if a := call3(g, day.Add(time.Minute)); a.Suspect != office {
		t.Errorf("the only address in use: suspect %v", a.Suspect)
	}

	g = guard(t, o)
	g.Login("1001", office, day.Add(-40*24*time.Hour))
	g.Login("1001", stranger, day)
	if a := call3(g, day.Add(time.Minute)); a.Suspect != stranger {
		t.Errorf("a new address beside the office: suspect %v", a.Suspect)
	}
	// The office phone re-registers after the stranger: the last login is
	// the office's, which is no suspect; the stranger is not the last one.
	g.Login("1001", office, day.Add(2*time.Minute))
	if a := call3(g, day.Add(3*time.Minute)); a.Suspect.IsValid() || a.LastAddr != office {
		t.Errorf("the office re-registered last: suspect %v, last %v", a.Suspect, a.LastAddr)
	}

	g = guard(t, o)
	g.Login("1001", office, day.Add(-40*24*time.Hour))
	g.Login("1001", home, day.Add(-30*24*time.Hour))
	g.Login("1001", home, day)
	g.Login("1001", office, day.Add(time.Second))
	if a := call3(g, day.Add(time.Minute)); a.Suspect.IsValid() {
		t.Errorf("two long-known addresses in use: suspect %v", a.Suspect)
	}
}

// TestNewCountry: with the logins' countries (a country database), a
// login from a country the account never used is new as well, and the
// alert says so; an account's first country, or one used for long, is
// not.
func TestNewCountry(t *testing.T) {
	office, home, stranger := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("203.0.113.66")
	intl := func(id string, at time.Time) calls.Call {
		return call(id, "1001", "0088216012345", at, time.Second, time.Minute)
	}
	setup := func() (*Guard, *logins.History) {
		g := guard(t, Options{NewAddressWindow: 24 * time.Hour})
		h := logins.New(0)
		g.UseLogins(h)
		return g, h
	}

	t.Run("new country", func(t *testing.T) {
		g, h := setup()
		h.Login("1001", office, "DE", day.Add(-30*24*time.Hour))
		if h.Login("1001", stranger, "FR", day) != true {
			t.Error("FR not new")
		}
		a := g.Record(intl("1", day.Add(time.Minute)))
		if rules(a) != RuleNewAddress || !a[0].NewCountry || a[0].LoginCountry != "FR" || a[0].LastAddr != stranger {
			t.Fatalf("alerts %+v", a)
		}
	})
	t.Run("new address, same country", func(t *testing.T) {
		g, h := setup()
		h.Login("1001", office, "DE", day.Add(-30*24*time.Hour))
		h.Login("1001", home, "DE", day)
		a := g.Record(intl("1", day.Add(time.Minute)))
		if rules(a) != RuleNewAddress || a[0].NewCountry || a[0].LoginCountry != "DE" {
			t.Fatalf("alerts %+v", a)
		}
	})
	t.Run("known address, new country", func(t *testing.T) {
		// The address was used before the database knew it (or before it
		// moved to another country): the address is old, its country new.
		g, h := setup()
		h.Login("1001", office, "DE", day.Add(-30*24*time.Hour))
		h.Login("1001", stranger, "", day.Add(-20*24*time.Hour))
		h.Login("1001", stranger, "RU", day)
		a := g.Record(intl("1", day.Add(time.Minute)))
		if rules(a) != RuleNewAddress || !a[0].NewCountry || a[0].LoginCountry != "RU" {
			t.Fatalf("alerts %+v", a)
		}
	})
	t.Run("first country", func(t *testing.T) {
		g, h := setup()
		if h.Login("1001", office, "DE", day) {
			t.Error("an account's first country is new")
		}
		if a := g.Record(intl("1", day.Add(time.Minute))); len(a) != 0 {
			t.Fatalf("alerts %+v", a)
		}
	})
	t.Run("country used for long", func(t *testing.T) {
		g, h := setup()
		h.Login("1001", office, "DE", day.Add(-30*24*time.Hour))
		h.Login("1001", home, "FR", day.Add(-10*24*time.Hour))
		h.Login("1001", office, "DE", day)
		if a := g.Record(intl("1", day.Add(time.Minute))); len(a) != 0 {
			t.Fatalf("alerts %+v", a)
		}
	})
	t.Run("two countries at once", func(t *testing.T) {
		// Both countries appeared at the same time (sipguard's first
		// start): neither is news.
		g, h := setup()
		h.Login("1001", office, "DE", day)
		h.Login("1001", stranger, "FR", day.Add(time.Minute))
		if a := g.Record(intl("1", day.Add(2*time.Minute))); len(a) != 0 {
			t.Fatalf("alerts %+v", a)
		}
	})
}

// TestNewAddressFlood: an attacker with an account's password logs in
// from more addresses than the account's history keeps (an IPv6 /64 has
// plenty), hoping to push the long-known office address out of it: then
// no address would be older than the others, new_address would stay
// quiet and no address would be banned. The office address must stay,
// the alert fire and its suspect be the attacker's last address.
func TestNewAddressFlood(t *testing.T) {
	office := netip.MustParseAddr("192.0.2.10")
	g := guard(t, Options{NewAddressWindow: 24 * time.Hour})
	g.Login("1001", office, day.Add(-30*24*time.Hour))
	g.Login("1001", office, day)
	var last netip.Addr
	for i := range logins.MaxAddrs + 5 {
		last = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
		g.Login("1001", last, day.Add(time.Hour+time.Duration(i)*time.Second))
	}
	a := g.Record(call("1", "1001", "0088216012345", day.Add(2*time.Hour), time.Second, time.Minute))
	if rules(a) != RuleNewAddress || a[0].Suspect != last {
		t.Fatalf("after %d logins from new addresses: alerts %v", logins.MaxAddrs+5, a)
	}
}

// TestMinutesUnderWay: a guessed account keeps three calls to an allowed
// country answered for hours (fewer than max_concurrent, in business
// hours, no risk range): minutes counted only at hang-up would stay
// silent while the bill grows. Tick counts the answered minutes of the
// calls under way; calls that ended are no longer under way, and an
// unanswered call counts nothing.
func TestMinutesUnderWay(t *testing.T) {
	g := guard(t, Options{MaxMinutes: 60, MinutesWindow: 24 * time.Hour, MaxConcurrent: 5})
	nine := day.Add(9 * time.Hour)
	for i := range 3 {
		c := call(fmt.Sprint("long", i), "1001", "004930123456", nine, 10*time.Second, 0)
		c.End = time.Time{}
		if a := g.Update(calls.Update{Change: calls.Started, Call: c}); len(a) != 0 {
			t.Fatalf("start: %v", a)
		}
		if a := g.Update(calls.Update{Change: calls.Answered, Call: c}); len(a) != 0 {
			t.Fatalf("answer: %v", a)
		}
	}
	ringing := call("ringing", "1002", "004930123456", nine, -1, 0)
	ringing.End = time.Time{}
	g.Update(calls.Update{Change: calls.Started, Call: ringing})
	if a := g.Tick(nine.Add(15 * time.Minute)); len(a) != 0 {
		t.Fatalf("45 minutes in all: %v", a)
	}
	a := g.Tick(nine.Add(25 * time.Minute))
	if rules(a) != RuleMinutes || a[0].Account != "1001" || a[0].Count < 70 || a[0].Count > 75 {
		t.Fatalf("three calls answered for 25 minutes: %v", a)
	}
	if a := g.Tick(nine.Add(26 * time.Minute)); len(a) != 0 {
		t.Fatalf("within the cooldown: %v", a)
	}
	// The calls end: counted as they end, no longer under way.
	g2 := guard(t, Options{MaxMinutes: 60, MinutesWindow: 24 * time.Hour})
	c := call("short", "1001", "004930123456", nine, 10*time.Second, 0)
	c.End = time.Time{}
	g2.Update(calls.Update{Change: calls.Started, Call: c})
	g2.Update(calls.Update{Change: calls.Answered, Call: c})
	c.End = c.Answer.Add(10 * time.Minute)
	g2.Update(calls.Update{Change: calls.Ended, Call: c})
	if a := g2.Tick(nine.Add(5 * time.Hour)); len(a) != 0 {
		t.Fatalf("an ended call still under way: %v", a)
	}
}
