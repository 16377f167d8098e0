package daemon

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
)

// NoticeType says what a Notice reports.
type NoticeType string

// Notice types.
const (
	NoticeBan        NoticeType = "ban"
	NoticeUnban      NoticeType = "unban"
	NoticeCompromise NoticeType = "compromise"
)

// Reasons of unban notices.
const (
	UnbanExpired  = "expired"
	UnbanManual   = "manual"
	UnbanReplaced = "replaced" // a wider ban took its place
	UnbanFeed     = "feed"     // gone from its blocklist feed
	// UnbanCluster (cluster.go): lifted by the fleet.
)

// Notice is something the daemon did or saw that others may want to hear
// of: metrics, webhooks, commands.
type Notice struct {
	Type     NoticeType
	Target   netip.Prefix // the address or network banned or unbanned
	Addr     netip.Addr   // ban and compromise: the address whose events caused it
	Rule     string       // the rule, "manual", "compromise" or "feed:NAME"
	Reason   string       // ban: why; unban: one of the Unban* reasons
	Source   string       // the log source of the events
	User     string       // compromise: the account that logged in (attacker-written text)
	Count    int          // events that led to it
	Offences int          // earlier bans of the address (escalation)
	Time     time.Time
	Expires  time.Time // ban: when it ends
	// Latency is, for a ban a rule decided, the time from the daemon
	// receiving the line that completed it to the ban being in the firewall.
	Latency time.Duration
	// Origin is the fleet node whose ban this is, when not this one.
	Origin string
}

// Observer hears the daemon's notices. Notice is called on the daemon's
// core goroutine: it must return at once (count, or queue and drop when
// full), never wait for the network.
type Observer interface {
	Notice(Notice)
}

// NotifyReporter is an Observer that reports its delivery targets in
// `status`.
type NotifyReporter interface {
	NotifyStatus() []control.NotifyStatus
}

// Observe adds an observer. Call it before Run.
func (d *Daemon) Observe(o Observer) { d.observers = append(d.observers, o) }

func (d *Daemon) notice(n Notice) {
	for _, o := range d.observers {
		o.Notice(n)
	}
}

// Compromise says what a successful login from an address that just
// failed does: the sign of a guessed password.
type Compromise struct {
	// Action is "off", "alert" (log at warning level, count, notify) or
	// "ban" (alert, and ban the address for BanTime).
	Action      string
	MinFailures int           // failures within Window before the success
	Window      time.Duration // how far back failures count
	BanTime     time.Duration
}

// compromiseRule is the rule name of bans for a compromise.
const compromiseRule = "compromise"

// maxAlerted bounds the addresses remembered to alert once per window.
const maxAlerted = 10000

// success handles an auth_succeeded event: a success after MinFailures
// failures within Window is reported once per Window and address.
func (d *Daemon) success(ev *parsers.Event, now time.Time) {
	c := d.cfg.Compromise
	if c.Action == "" || c.Action == "off" || d.eng.Allowed(ev.Addr) {
		return
	}
	n := d.eng.Recent(ev.Addr, ev.Time.Add(-c.Window))
	if n < c.MinFailures {
		return
	}
	p := d.eng.Prefix(ev.Addr)
	if last, ok := d.alerted[p]; ok && ev.Time.Sub(last) < c.Window {
		return
	}
	if len(d.alerted) >= maxAlerted {
		for q, t := range d.alerted {
			if ev.Time.Sub(t) >= c.Window {
				delete(d.alerted, q)
			}
		}
		if len(d.alerted) >= maxAlerted {
			clear(d.alerted) // at worst, an address is reported twice
		}
	}
	d.alerted[p] = ev.Time
	d.compromises++
	d.log.Warn().Str(fieldIP, ev.Addr.String()).Str("user", ev.User).Str(fieldSource, ev.Source).
		Str("service", ev.Service.String()).Int("failures", n).Dur("within", c.Window).Str("action", c.Action).
		Msg("successful login after failures: a guessed password? check this account")
	d.notice(Notice{
		Type: NoticeCompromise, Target: p, Addr: ev.Addr, Rule: compromiseRule, Source: ev.Source, User: ev.User,
		Count: n, Time: ev.Time, Reason: "successful login after " + plural(n, "failure"),
	})
	if c.Action != "ban" {
		return
	}
	d.decide(engineBan(p, ev, n, c.BanTime), ev, now, time.Time{}, "successful login after "+plural(n, "failure"))
	d.eng.Banned(p, ev.Time, c.BanTime)
}

// engineBan is the ban of a compromise, in the engine's terms.
func engineBan(p netip.Prefix, ev *parsers.Event, n int, dur time.Duration) engine.Ban {
	return engine.Ban{Prefix: p, Addr: ev.Addr.Unmap(), Rule: compromiseRule, Count: n, First: ev.Time, Last: ev.Time, Duration: dur}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
