package engine

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// CompromiseRule says what a successful login from an address that has
// just failed means: the sign of a guessed password.
type CompromiseRule struct {
	// Action is "off" (or empty), "alert" (report it) or "ban" (report it
	// and ban the address for BanTime).
	Action      string
	MinFailures int           // failures within Window before the success
	Window      time.Duration // how far back failures count
	BanTime     time.Duration
}

// CompromiseRuleName is the rule name of compromise bans.
const CompromiseRuleName = "compromise"

// maxAlerted bounds the addresses remembered to report once per window.
const maxAlerted = 10000

// Compromise is a successful login after failures.
type Compromise struct {
	Prefix   netip.Prefix // what the engine counts and bans: the address or its IPv6 prefix
	Addr     netip.Addr
	User     string // the account that logged in (attacker-written text)
	Source   string
	Service  parsers.Service
	Failures int // failures of Prefix within the window before the success
	Time     time.Time
	// Ban is set when the rule's action is "ban": the ban to enforce,
	// recorded as an offence already.
	Ban *Ban
}

// Reason says why, in words: "successful login after 3 failures".
func (c Compromise) Reason() string {
	if c.Failures == 1 {
		return "successful login after 1 failure"
	}
	return "successful login after " + strconv.Itoa(c.Failures) + " failures"
}

// Success runs the compromise rule on an auth_succeeded event: a success
// from an address (or IPv6 prefix) with at least MinFailures failures in
// the rules' windows within Window is reported, once per Window and
// address. Successes are never counted toward a ban.
func (e *Engine) Success(ev *parsers.Event) (Compromise, bool) {
	c := e.compromise
	if ev.Kind != parsers.AuthSucceeded || c.Action == "" || c.Action == "off" || e.Allowed(ev.Addr.Unmap()) {
		return Compromise{}, false
	}
	n := e.Recent(ev.Addr, ev.Time.Add(-c.Window))
	if n < c.MinFailures {
		return Compromise{}, false
	}
	p, from := e.prefix(ev.Addr)
	if last, ok := e.alerted[p]; ok && ev.Time.Sub(last) < c.Window {
		return Compromise{}, false
	}
	if len(e.alerted) >= maxAlerted {
		for q, t := range e.alerted {
			if ev.Time.Sub(t) >= c.Window {
				delete(e.alerted, q)
			}
		}
		if len(e.alerted) >= maxAlerted {
			clear(e.alerted) // at worst, an address is reported twice
		}
	}
	e.alerted[p] = ev.Time
	e.stats.Compromises++
	out := Compromise{
		Prefix: p, Addr: ev.Addr.Unmap(), User: ev.User, Source: ev.Source, Service: ev.Service,
		Failures: n, Time: ev.Time,
	}
	if c.Action == "ban" {
		out.Ban = &Ban{
			Prefix: p, Addr: ev.Addr.Unmap(), Rule: CompromiseRuleName, Count: n,
			First: ev.Time, Last: ev.Time, Duration: c.BanTime, NarrowedFrom: from,
		}
		if from.IsValid() {
			e.stats.Narrowed++
		}
		e.Banned(p, ev.Time, c.BanTime)
	}
	return out, true
}
