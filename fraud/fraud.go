// Package fraud spots toll fraud while the calls are placed: the rules of
// [fraud] (countries allowed, risk ranges, concurrent calls, calls and
// international minutes per window, international calls after hours,
// prefix probing, international calls right after a login from a new
// address or, with a country database, a new country) applied to the calls package's calls, per account. It is pure
// and bounded: the caller feeds calls and successful logins with their own
// times, and acts on the alerts (log, notify, ban the address that last
// logged in as the account).
package fraud

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/sipguard/sipguard/calls"
	"github.com/sipguard/sipguard/logins"
	"github.com/sipguard/sipguard/numbering"
)

// Rule names, as alerts and the config name them.
const (
	RuleCountry    = "country"     // an international call to a country not allowed
	RuleRisk       = "risk_range"  // a call to a risk range (satellite, premium rate, ...)
	RuleConcurrent = "concurrent"  // more outbound calls at once than allowed
	RuleCalls      = "calls"       // more outbound calls in the window than allowed
	RuleMinutes    = "minutes"     // more international minutes in the window than allowed
	RuleHours      = "after_hours" // an international call outside business hours
	RuleProbing    = "probing"     // many short unanswered calls to different prefixes
	RuleNewAddress = "new_address" // an international call soon after a login from a new address
)

// Options are the rules; a zero limit turns its rule off.
type Options struct {
	Plan             numbering.Plan
	AllowedCountries []string // ISO 3166-1 alpha-2; "-" allows the non-geographic codes
	RiskRanges       bool     // alert on calls to risk ranges
	MaxConcurrent    int      // outbound calls at once, per account
	MaxCalls         int      // outbound calls per CallsWindow, per account
	CallsWindow      time.Duration
	MaxMinutes       float64 // international minutes per MinutesWindow, per account
	MinutesWindow    time.Duration
	BusinessHours    *Hours // international calls outside them alert
	ProbePrefixes    int    // distinct prefixes of short unanswered calls per ProbeWindow
	ProbeWindow      time.Duration
	ProbeMaxLength   time.Duration // a call shorter than this, unanswered, is a probe (default 15s)
	NewAddressWindow time.Duration // a login address first seen this recently is new
	// Contexts, when set, are the dialplan contexts whose calls are
	// checked (the phones' contexts; calls arriving from trunks are not
	// placed by an account).
	Contexts []string
	// Cooldown is how long after an alert the same rule stays quiet for
	// the same account (default 10 minutes); the counts go on.
	Cooldown    time.Duration
	MaxAccounts int // accounts followed at once (default 10,000)
}

// Alert is a rule that fired.
type Alert struct {
	Rule     string
	Time     time.Time
	Account  string
	CallID   string
	Dialled  string // caller-written: display escaped
	E164     string
	Country  string // ISO code; empty for non-geographic codes
	Risk     string // the risk range's category, when in one
	Count    float64
	Limit    float64
	LastAddr netip.Addr // the address that last logged in as the account, if known
	// LoginCountry is LastAddr's country, with a country database that
	// knows it; NewCountry (new_address only) says the login is new for
	// its country: one the account never logged in from before.
	LoginCountry string
	NewCountry   bool
	// Suspect is the address to ban for it, when one can be told apart
	// (see account.suspect); invalid otherwise.
	Suspect netip.Addr
}

func (a Alert) String() string {
	return fmt.Sprintf("%s: account %q, call to %q (+%s %s): %g > %g", a.Rule, a.Account, a.Dialled, a.E164, a.Country, a.Count, a.Limit)
}

// Guard applies the rules. It is not safe for concurrent use.
type Guard struct {
	o        Options
	accounts map[string]*account
	seq      uint64
	logins   *logins.History     // where each account logged in from
	live     map[string]liveCall // answered international calls under way, by ID (Tick)
}

// liveCall is an answered international call not yet ended.
type liveCall struct {
	call calls.Call
	n    numbering.Number
}

type span struct {
	id         string
	start, end time.Time // end zero: under way
}

type stamp struct {
	t time.Time
	v float64
	s string
}

type account struct {
	spans   []span  // outbound calls of the last hours
	calls   []stamp // starts of outbound calls in CallsWindow
	minutes []stamp // international minutes billed in MinutesWindow
	probes  []stamp // short unanswered calls: prefix, in ProbeWindow
	alerted map[string]time.Time
	used    uint64
}

const (
	maxSpanAge   = 12 * time.Hour // a call never seen to end is forgotten after this
	maxPerWindow = 10000          // stamps kept per account and rule
)

// New checks o and returns a Guard.
func New(o Options) (*Guard, error) {
	if err := o.Plan.Check(); err != nil {
		return nil, err
	}
	for _, c := range o.AllowedCountries {
		if c != "-" && (len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z') {
			return nil, fmt.Errorf("allowed_countries: %q is not an ISO 3166-1 alpha-2 code in capitals (or \"-\" for non-geographic codes)", c)
		}
	}
	switch {
	case o.MaxCalls > 0 && o.CallsWindow <= 0:
		return nil, errors.New("calls_window: must be positive for max_calls")
	case o.MaxMinutes > 0 && o.MinutesWindow <= 0:
		return nil, errors.New("minutes_window: must be positive for max_international_minutes")
	case o.ProbePrefixes > 0 && o.ProbeWindow <= 0:
		return nil, errors.New("probe_window: must be positive for probe_prefixes")
	}
	if o.ProbeMaxLength <= 0 {
		o.ProbeMaxLength = 15 * time.Second
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 10 * time.Minute
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = 10000
	}
	return &Guard{o: o, accounts: map[string]*account{}, logins: logins.New(o.MaxAccounts), live: map[string]liveCall{}}, nil
}

// UseLogins makes the guard read the accounts' logins from h, which its
// owner records (History.Login, with the login's country) and keeps
// across restarts and reloads, instead of the guard's own (Login).
func (g *Guard) UseLogins(h *logins.History) { g.logins = h }

// Login records a successful login (a registration or an authenticated
// call) of account from addr, without its country.
func (g *Guard) Login(acct string, addr netip.Addr, t time.Time) {
	g.logins.Login(acct, addr, "", t)
}

// Update applies a change a CEL record made to a call.
func (g *Guard) Update(u calls.Update) []Alert {
	c := &u.Call
	if !g.checked(c) {
		return nil
	}
	n := g.o.Plan.Classify(c.Dialled)
	if !n.Public {
		return nil
	}
	a := g.account(c.Account)
	switch u.Change {
	case calls.Started:
		return g.started(a, c, n)
	case calls.Answered:
		g.answered(c, n)
	case calls.Ended:
		delete(g.live, c.ID)
		return g.ended(a, c, n)
	}
	return nil
}

// answered follows an answered international call for Tick.
func (g *Guard) answered(c *calls.Call, n numbering.Number) {
	if g.o.MaxMinutes <= 0 || !n.International || c.Answer.IsZero() {
		return
	}
	if _, ok := g.live[c.ID]; !ok && len(g.live) >= maxPerWindow {
		return // bounded; the call's minutes still count when it ends
	}
	g.live[c.ID] = liveCall{*c, n}
}

// Following reports whether Tick follows call id: answered, international,
// not seen to end, and not forgotten (12 hours after its start).
func (g *Guard) Following(id string) bool {
	_, ok := g.live[id]
	return ok
}

// Tick applies the minutes rule to the calls under way at now, the
// caller's clock (the daemon's, every second): an answered international
// call counts its minutes so far, beside the minutes of the calls that
// ended in the window. Counted only at hang-up, a few long calls (fewer
// than max_concurrent, to an allowed country, in business hours) would
// run up the bill for hours unseen. A call never seen to end is forgotten
// after 12 hours, as for concurrency.
func (g *Guard) Tick(now time.Time) []Alert {
	if len(g.live) == 0 {
		return nil
	}
	running := map[string]float64{}
	longest := map[string]liveCall{} // the call an alert names: the longest under way
	for id, l := range g.live {
		if now.Sub(l.call.Start) > maxSpanAge {
			delete(g.live, id)
			continue
		}
		if d := now.Sub(l.call.Answer); d > 0 {
			acct := l.call.Account
			running[acct] += d.Minutes()
			if cur, ok := longest[acct]; !ok || l.call.Answer.Before(cur.call.Answer) {
				longest[acct] = l
			}
		}
	}
	var out []Alert
	for _, acct := range slices.Sorted(maps.Keys(running)) {
		a := g.accounts[acct]
		if a == nil {
			continue // forgotten: its calls count again from their end
		}
		a.minutes = window(a.minutes, now, g.o.MinutesWindow)
		total := running[acct]
		for _, s := range a.minutes {
			total += s.v
		}
		if total <= g.o.MaxMinutes {
			continue
		}
		if last, ok := a.alerted[RuleMinutes]; ok && now.Sub(last) < g.o.Cooldown && !now.Before(last) {
			continue
		}
		a.alerted[RuleMinutes] = now
		l := longest[acct]
		out = append(out, g.alert(RuleMinutes, now, &l.call, l.n, total, g.o.MaxMinutes))
	}
	return out
}

// Record applies a call known only once it ended (a CDR): it is checked as
// placed at its start, then as ended.
func (g *Guard) Record(c calls.Call) []Alert {
	if !g.checked(&c) {
		return nil
	}
	n := g.o.Plan.Classify(c.Dialled)
	if !n.Public {
		return nil
	}
	a := g.account(c.Account)
	return append(g.started(a, &c, n), g.ended(a, &c, n)...)
}

// Checks reports whether the rules check c: a call placed by an account,
// in one of the contexts when Options.Contexts is set.
func (g *Guard) Checks(c *calls.Call) bool { return g.checked(c) }

func (g *Guard) checked(c *calls.Call) bool {
	return c.Account != "" && (len(g.o.Contexts) == 0 || slices.Contains(g.o.Contexts, c.Context))
}

// newLogin reports whether the account's last login came from an address,
// or a country (with a country database), first seen within d before t,
// while the account was known from another address (country) for at least
// d before that: a device that has always been there (or every address,
// right after sipguard first started) is not new. The second result says
// the country was new.
func newLogin(a *logins.Account, t time.Time, d time.Duration) (isNew, newCountry bool) {
	if a == nil {
		return false, false
	}
	if first, ok := a.Countries[a.LastCountry]; ok && a.LastCountry != "" && t.Sub(first) < d {
		for c, since := range a.Countries {
			if c != a.LastCountry && first.Sub(since) >= d {
				return true, true
			}
		}
	}
	first, ok := a.Addrs[a.Last]
	if !ok || t.Sub(first.First) >= d {
		return false, false
	}
	for addr, since := range a.Addrs {
		if addr != a.Last && first.First.Sub(since.First) >= d {
			return true, false
		}
	}
	return false, false
}

// suspectWindow is how recent a login must be for suspect to count its
// address as in use, when Options.NewAddressWindow is not set.
const suspectWindow = 24 * time.Hour

// suspect returns the address that placed the account's calls at t, when
// the logins tell it apart: the only address the account logged in from
// within d, or its last login's address when that is new (newLogin) beside
// addresses used for longer. Otherwise none: the last login may be the
// office phone re-registering while the fraud comes from elsewhere, and
// banning the office is a disaster the alert must not cause.
func suspect(a *logins.Account, t time.Time, d time.Duration) netip.Addr {
	if a == nil {
		return netip.Addr{}
	}
	var only netip.Addr
	active := 0
	for addr, s := range a.Addrs {
		if t.Sub(s.Last) < d {
			only, active = addr, active+1
		}
	}
	if active == 1 {
		return only
	}
	if isNew, _ := newLogin(a, t, d); active > 1 && isNew {
		return a.Last
	}
	return netip.Addr{}
}

// Suspect returns the address to ban for acct's calls at t, as an alert
// at t names it (Alert.Suspect), from the logins known now: a caller that
// acts on an alert a little later sees the logins written meanwhile.
func (g *Guard) Suspect(acct string, t time.Time) netip.Addr {
	return suspect(g.logins.Account(acct), t, g.suspectWindow())
}

func (g *Guard) suspectWindow() time.Duration {
	if g.o.NewAddressWindow > 0 {
		return g.o.NewAddressWindow
	}
	return suspectWindow
}

// alert is a rule that fired at t on call c to n, with what the account's
// logins say: the last one's address and country, whether it is new, and
// the address to ban.
func (g *Guard) alert(rule string, t time.Time, c *calls.Call, n numbering.Number, count, limit float64) Alert {
	al := Alert{Rule: rule, Time: t, Account: c.Account, CallID: c.ID, Dialled: c.Dialled, E164: n.E164,
		Country: n.Country.ISO, Count: count, Limit: limit}
	if n.Risk != nil {
		al.Risk = n.Risk.Category
	}
	if la := g.logins.Account(c.Account); la != nil {
		al.LastAddr, al.LoginCountry = la.Last, la.LastCountry
		al.Suspect = suspect(la, c.Start, g.suspectWindow())
		if rule == RuleNewAddress {
			_, al.NewCountry = newLogin(la, c.Start, g.o.NewAddressWindow)
		}
	}
	return al
}

// started checks a call as it is placed.
func (g *Guard) started(a *account, c *calls.Call, n numbering.Number) []Alert {
	var out []Alert
	alert := func(rule string, count, limit float64) {
		if last, ok := a.alerted[rule]; ok && c.Start.Sub(last) < g.o.Cooldown && !c.Start.Before(last) {
			return
		}
		a.alerted[rule] = c.Start
		out = append(out, g.alert(rule, c.Start, c, n, count, limit))
	}
	if g.o.RiskRanges && n.Risk != nil {
		alert(RuleRisk, 1, 0)
	}
	if n.International && len(g.o.AllowedCountries) > 0 {
		iso := n.Country.ISO
		if iso == "" {
			iso = "-"
		}
		if !slices.Contains(g.o.AllowedCountries, iso) {
			alert(RuleCountry, 1, 0)
		}
	}
	if n.International && g.o.BusinessHours != nil && !g.o.BusinessHours.Within(c.Start) {
		alert(RuleHours, 1, 0)
	}
	if n.International && g.o.NewAddressWindow > 0 {
		if isNew, _ := newLogin(g.logins.Account(c.Account), c.Start, g.o.NewAddressWindow); isNew {
			alert(RuleNewAddress, 1, 0)
		}
	}
	// Concurrent calls: the calls under way at this one's start. A CDR
	// arrives at the call's end, so an end in the future counts too.
	a.spans = prune(a.spans, c.Start)
	end := c.End
	if i := slices.IndexFunc(a.spans, func(s span) bool { return s.id == c.ID }); i >= 0 {
		a.spans[i].end = end
	} else {
		a.spans = append(a.spans, span{c.ID, c.Start, end})
		if len(a.spans) > maxPerWindow {
			a.spans = a.spans[1:]
		}
	}
	if g.o.MaxConcurrent > 0 {
		if k := concurrent(a.spans, c.Start, end); k > g.o.MaxConcurrent {
			alert(RuleConcurrent, float64(k), float64(g.o.MaxConcurrent))
		}
	}
	if g.o.MaxCalls > 0 {
		a.calls = window(append(a.calls, stamp{t: c.Start}), c.Start, g.o.CallsWindow)
		if k := len(a.calls); k > g.o.MaxCalls {
			alert(RuleCalls, float64(k), float64(g.o.MaxCalls))
		}
	}
	return out
}

// ended checks a call as it ends.
func (g *Guard) ended(a *account, c *calls.Call, n numbering.Number) []Alert {
	var out []Alert
	alert := func(rule string, count, limit float64) {
		if last, ok := a.alerted[rule]; ok && c.End.Sub(last) < g.o.Cooldown && !c.End.Before(last) {
			return
		}
		a.alerted[rule] = c.End
		out = append(out, g.alert(rule, c.End, c, n, count, limit))
	}
	for i := range a.spans {
		if a.spans[i].id == c.ID {
			a.spans[i].end = c.End
		}
	}
	if g.o.MaxMinutes > 0 && n.International {
		if b := c.Billed(); b > 0 {
			a.minutes = window(append(a.minutes, stamp{t: c.End, v: b.Minutes()}), c.End, g.o.MinutesWindow)
			total := 0.0
			for _, s := range a.minutes {
				total += s.v
			}
			if total > g.o.MaxMinutes {
				alert(RuleMinutes, total, g.o.MaxMinutes)
			}
		}
	}
	if g.o.ProbePrefixes > 0 && c.Answer.IsZero() && !c.End.IsZero() && c.End.Sub(c.Start) < g.o.ProbeMaxLength && n.E164 != "" {
		prefix := n.E164[:min(len(n.E164), 5)]
		a.probes = window(append(a.probes, stamp{t: c.End, s: prefix}), c.End, g.o.ProbeWindow)
		distinct := map[string]bool{}
		for _, s := range a.probes {
			distinct[s.s] = true
		}
		if len(distinct) >= g.o.ProbePrefixes {
			alert(RuleProbing, float64(len(distinct)), float64(g.o.ProbePrefixes))
		}
	}
	return out
}

// concurrent returns the most calls of spans under way at once at the
// start of any of them within [start, end] (end zero: just at start).
func concurrent(spans []span, start, end time.Time) int {
	at := func(t time.Time) int {
		n := 0
		for _, s := range spans {
			if !s.start.After(t) && (s.end.IsZero() || s.end.After(t)) {
				n++
			}
		}
		return n
	}
	most := at(start)
	if !end.IsZero() {
		for _, s := range spans {
			if s.start.After(start) && s.start.Before(end) {
				most = max(most, at(s.start))
			}
		}
	}
	return most
}

// prune forgets calls that ended before now, or never ended and are older
// than maxSpanAge.
func prune(spans []span, now time.Time) []span {
	return slices.DeleteFunc(spans, func(s span) bool {
		if s.end.IsZero() {
			return now.Sub(s.start) > maxSpanAge
		}
		return now.Sub(s.end) > maxSpanAge
	})
}

// window keeps the stamps within d before now, at most maxPerWindow.
func window(s []stamp, now time.Time, d time.Duration) []stamp {
	s = slices.DeleteFunc(s, func(x stamp) bool { return now.Sub(x.t) >= d })
	if len(s) > maxPerWindow {
		s = s[len(s)-maxPerWindow:]
	}
	return s
}

// account returns acct's state, forgetting the least recently used
// account when full.
func (g *Guard) account(acct string) *account {
	g.seq++
	a := g.accounts[acct]
	if a == nil {
		if len(g.accounts) >= g.o.MaxAccounts {
			var lru string
			var used uint64 = 1<<64 - 1
			for k, v := range g.accounts {
				if v.used < used {
					lru, used = k, v.used
				}
			}
			delete(g.accounts, lru)
		}
		a = &account{alerted: map[string]time.Time{}}
		g.accounts[acct] = a
	}
	a.used = g.seq
	return a
}

// Accounts returns how many accounts are followed.
func (g *Guard) Accounts() int { return len(g.accounts) }
