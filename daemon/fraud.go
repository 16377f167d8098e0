package daemon

import (
	"fmt"
	"maps"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/sipguard/sipguard/calls"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/fraud"
	"github.com/sipguard/sipguard/numbering"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/watchers"
)

// Fraud is the toll-fraud settings ([fraud]): the rules, and how
// Master.csv is written. Sources whose Parser is CallParserCEL or
// CallParserCDR read calls for them.
type Fraud struct {
	Rules fraud.Options
	CDR   calls.CDRColumns
	// Ban, when set, bans the address that last logged in as the account
	// of an alert, for BanTime.
	Ban     bool
	BanTime time.Duration
}

// FraudRuleName is the rule name of the bans toll-fraud alerts make.
const FraudRuleName = "fraud"

// Parsers of call logs: their lines are calls for the [fraud] rules, not
// failures counted toward bans.
const (
	CallParserCEL = "cel"
	CallParserCDR = "cdr"
)

// IsCallParser reports whether a source with this parser reads calls.
func IsCallParser(name string) bool { return name == CallParserCEL || name == CallParserCDR }

// NoticeFraud reports a toll-fraud rule that fired: User is the account,
// Rule the fraud rule, Reason what was called and the counts, Addr the
// address that last logged in as the account (when one did).
const NoticeFraud NoticeType = "fraud"

// callReader reads a call log's lines on the follower's goroutine, and
// counts what became of them for status.
type callReader struct {
	cel     *calls.CELReader // one of cel and cdr
	cdr     *calls.CDRReader
	lines   atomic.Int64
	matched atomic.Int64
	drops   [calls.DropTime + 1]atomic.Int64
}

// callItem is a change a line made: a CEL update, or a whole CDR call.
type callItem struct {
	update calls.Update
	record bool // update.Call is a CDR: placed and ended at once
}

func newCallReader(s Source, f *Fraud) *callReader {
	if s.Parser == CallParserCDR {
		var cols calls.CDRColumns
		if f != nil {
			cols = f.CDR
		}
		return &callReader{cdr: calls.NewCDRReader(cols, s.Location)}
	}
	return &callReader{cel: calls.NewCELReader(s.Location, 0)}
}

// read turns lines into call changes.
func (r *callReader) read(lines []watchers.Line) []callItem {
	var items []callItem
	for _, l := range lines {
		r.lines.Add(1)
		var it callItem
		var o calls.Outcome
		if r.cel != nil {
			o = r.cel.Line(l.Text, &it.update)
		} else {
			o = r.cdr.Line(l.Text, &it.update.Call)
			it.record = true
		}
		switch {
		case o == calls.Matched:
			r.matched.Add(1)
			items = append(items, it)
		case o >= calls.DropMalformed:
			r.drops[o].Add(1)
		}
	}
	return items
}

// counts reports the reader's lines as a log source's: events are the
// call changes read, drops by reason.
func (r *callReader) counts() parsers.Counts {
	c := parsers.Counts{Lines: r.lines.Load(), Events: r.matched.Load(), DropBy: map[string]int64{}, ByKind: map[string]int64{}}
	for _, o := range []calls.Outcome{calls.DropMalformed, calls.DropTooLong, calls.DropTime} {
		n := r.drops[o].Load()
		c.DropBy[o.String()] = n
		c.Dropped += n
	}
	return c
}

// newGuard makes the toll-fraud guard of cfg, or none.
func newGuard(cfg Config) (*fraud.Guard, error) {
	if cfg.Fraud == nil {
		return nil, nil
	}
	g, err := fraud.New(cfg.Fraud.Rules)
	if err != nil {
		return nil, fmt.Errorf("[fraud]: %w", err)
	}
	return g, nil
}

// reloadGuard replaces the guard when the rules changed: their counts
// start again (a new window, not a missed alert: calls under way are
// counted from their next change).
func (d *Daemon) reloadGuard(cfg Config) error {
	if reflect.DeepEqual(cfg.Fraud, d.cfg.Fraud) {
		return nil
	}
	g, err := newGuard(cfg)
	if err != nil {
		return err
	}
	if g != nil {
		g.UseLogins(d.logins) // the logins outlive the rules
	}
	d.guard = g
	return nil
}

// called applies a call change to the toll-fraud rules and reports what
// fired. Called on the core goroutine.
func (d *Daemon) called(source string, it callItem, now time.Time) {
	if d.guard == nil {
		return
	}
	if (it.record || it.update.Change == calls.Started) && d.guard.Checks(&it.update.Call) {
		if n := d.cfg.Fraud.Rules.Plan.Classify(it.update.Call.Dialled); n.Public {
			d.fraudCalls[destination(n)]++
		}
	}
	var alerts []fraud.Alert
	if it.record {
		alerts = d.guard.Record(it.update.Call)
	} else {
		alerts = d.guard.Update(it.update)
	}
	// The sources of the calls the guard follows, for Tick's alerts: no
	// more than it follows (bounded), and forgotten with them (fraudTick).
	switch id := it.update.Call.ID; {
	case it.record:
	case it.update.Change == calls.Answered && d.guard.Following(id):
		d.fraudLive[id] = source
	case it.update.Change == calls.Ended:
		delete(d.fraudLive, id)
	}
	for _, a := range alerts {
		d.fraudAlert(source, a, now)
	}
}

// fraudTick applies the minutes rule to the calls under way (Guard.Tick):
// called every second on the core goroutine.
func (d *Daemon) fraudTick() {
	if d.guard == nil {
		return
	}
	now := d.now()
	for _, a := range d.guard.Tick(now) {
		d.fraudAlert(d.fraudLive[a.CallID], a, now)
	}
	// A call never seen to end (its hang-up lost to a rotation, a crash)
	// is forgotten by the guard after 12 hours; its source here with it,
	// looked for once a minute.
	if len(d.fraudLive) > 0 && now.Sub(d.fraudSwept) >= time.Minute {
		d.fraudSwept = now
		for id := range d.fraudLive {
			if !d.guard.Following(id) {
				delete(d.fraudLive, id)
			}
		}
	}
}

// fraudAlert logs an alert at warning level and tells the observers
// (metrics, [[notify]] targets).
func (d *Daemon) fraudAlert(source string, a fraud.Alert, now time.Time) {
	d.fraudAlerts[a.Rule]++
	reason := fmt.Sprintf("call to %q (+%s %s%s)", a.Dialled, a.E164, a.Country, riskSuffix(a.Risk))
	if a.Limit > 0 {
		reason += fmt.Sprintf(": %g > %g", a.Count, a.Limit)
	}
	if a.NewCountry {
		reason += fmt.Sprintf(", after a login from %s, a country the account never used", a.LoginCountry)
	}
	ev := d.log.Warn().Str("account", a.Account).Str(fieldRule, a.Rule).Str("dialled", a.Dialled).Str("e164", a.E164).
		Str("country", a.Country).Str(fieldSource, source).Str("call", a.CallID).Time("at", a.Time)
	if a.Risk != "" {
		ev = ev.Str("risk", a.Risk)
	}
	if a.LastAddr.IsValid() {
		ev = ev.Str("last_login_ip", a.LastAddr.String())
	}
	if a.LoginCountry != "" {
		ev = ev.Str("last_login_country", a.LoginCountry)
	}
	ev.Msg("toll fraud suspected: check this account's calls, block it at the PBX, change its password")
	n := Notice{Type: NoticeFraud, Rule: a.Rule, Reason: reason, Source: source, User: a.Account, Count: int(a.Count), Time: a.Time}
	if a.LastAddr.IsValid() {
		n.Addr, n.Country = a.LastAddr, d.country(a.LastAddr)
	}
	if n.Time.IsZero() {
		n.Time = now
	}
	d.notice(n)
	if f := d.cfg.Fraud; f != nil && f.Ban {
		if len(d.fraudBans) >= maxFraudBans {
			d.fraudBans = d.fraudBans[1:]
		}
		d.fraudBans = append(d.fraudBans, fraudBan{alert: a, source: source, reason: reason, at: n.Time, due: now.Add(fraudBanDelay)})
	}
}

// fraudBan is a ban a fraud alert asks for, decided fraudBanDelay after
// the alert.
type fraudBan struct {
	alert          fraud.Alert
	source, reason string
	at, due        time.Time
}

// fraudBanDelay is how long after a fraud alert its ban is decided. The
// alert names the address to ban from the account's logins (the security
// log), but the call that fired it comes from another file (CEL, CDR):
// the attacker's login for the call (PJSIP authenticates each INVITE) is
// often written, or read, a moment after the call's record. Decided at
// once, the suspect would then be the office phone, the only address
// logged in so far (TestFraudBanLoginAfterCall); a few seconds later it is
// the attacker's new address.
const fraudBanDelay = 2 * time.Second

// maxFraudBans bounds the bans waiting for their delay.
const maxFraudBans = 1000

// fraudBansDue decides the bans of fraud alerts whose delay is over:
// called every second on the core goroutine.
func (d *Daemon) fraudBansDue() {
	now := d.now()
	for len(d.fraudBans) > 0 && !now.Before(d.fraudBans[0].due) {
		fb := d.fraudBans[0]
		d.fraudBans = d.fraudBans[1:]
		f := d.cfg.Fraud
		if d.guard == nil || f == nil || !f.Ban {
			continue // [fraud] or its ban action turned off meanwhile
		}
		a := fb.alert
		a.Suspect = d.guard.Suspect(a.Account, a.Time)
		if !a.Suspect.IsValid() {
			if a.LastAddr.IsValid() {
				d.log.Warn().Str("account", a.Account).Str(fieldRule, a.Rule).Msg("toll fraud: no address banned: " +
					"the account logged in from several addresses, none of them new, so which one calls cannot be told")
			}
			continue
		}
		// The address that placed the calls (the account's only one in
		// use, or a new one beside long-known ones): cut it off. decide
		// leaves out allowlisted and special addresses, and a ban already
		// over.
		addr := a.Suspect.Unmap()
		b := engine.Ban{Prefix: d.eng.Prefix(addr), Addr: addr, Rule: FraudRuleName, Count: max(1, int(a.Count)),
			First: fb.at, Last: fb.at, Duration: f.BanTime}
		d.decide(b, &parsers.Event{Source: fb.source, Kind: parsers.AuthSucceeded}, now, time.Time{},
			fmt.Sprintf("toll fraud (%s) on account %q: %s", a.Rule, a.Account, fb.reason))
	}
}

// destination is where a public number goes, for the status's counts: a
// bounded set of keys (the ISO codes of the numbering table,
// "non_geographic", "unknown", "national").
func destination(n numbering.Number) string {
	switch {
	case !n.International:
		return "national"
	case n.Country.Prefix == "":
		return "unknown" // no assigned country code
	case n.Country.ISO == "":
		return "non_geographic"
	}
	return n.Country.ISO
}

// fraudStatus is the toll-fraud part of status, when [fraud] is on.
func (d *Daemon) fraudStatus() *control.FraudStatus {
	if d.guard == nil {
		return nil
	}
	return &control.FraudStatus{Calls: maps.Clone(d.fraudCalls), Alerts: maps.Clone(d.fraudAlerts)}
}

func riskSuffix(risk string) string {
	if risk == "" {
		return ""
	}
	return ", " + risk
}
