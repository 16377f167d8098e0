package daemon

import (
	"net/netip"
	"time"

	"github.com/sipguard/sipguard/engine"
)

// NoticeType says what a Notice reports.
type NoticeType string

// Notice types.
const (
	NoticeBan        NoticeType = "ban"
	NoticeUnban      NoticeType = "unban"
	NoticeCompromise NoticeType = "compromise"
	// NoticeDropSurge: a surge of a source's lines dropped as malformed
	// or injected (surge.go); Source, Count, Reason and Time are set.
	NoticeDropSurge NoticeType = "drop_surge"
)

// Reasons of unban notices.
const (
	UnbanExpired = "expired"
	UnbanManual  = "manual"
	UnbanFeed    = "feed" // gone from its blocklist feed
	// UnbanCluster (cluster.go): lifted by the cluster.
	// UnbanAllowed (allow.go): covers an address allowlisted since.
)

// Notice is something the daemon did or saw that others may want to hear
// of: metrics, webhooks, commands.
type Notice struct {
	Type     NoticeType
	Target   netip.Prefix // the address or network banned or unbanned
	Addr     netip.Addr   // ban and compromise: the address whose events caused it
	Rule     string       // the rule, "manual", "compromise" or "feed:NAME" (bans.Record.Label)
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
	// Node is the peer of the cluster whose ban this is, when not this
	// node's own.
	Node string
	// Country is the ISO code of Addr (of the target's first address when
	// Addr is not set), with a [geoip] database that knows it.
	Country string
}

// Observer hears the daemon's notices. Notice is called on the daemon's
// core goroutine: it must return at once (count, or queue and drop when
// full), never wait for the network.
type Observer interface {
	Notice(Notice)
}

// Observe adds an observer. Call it before Run.
func (d *Daemon) Observe(o Observer) { d.observers = append(d.observers, o) }

func (d *Daemon) notice(n Notice) {
	for _, o := range d.observers {
		o.Notice(n)
	}
}

// compromised reports a successful login after failures (the engine's
// compromise rule).
func (d *Daemon) compromised(c engine.Compromise) {
	d.log.Warn().Str(fieldIP, c.Addr.String()).Str("user", c.User).Str(fieldSource, c.Source).
		Str("service", c.Service.String()).Int("failures", c.Failures).Dur("within", d.cfg.Engine.Compromise.Window).
		Str("action", d.cfg.Engine.Compromise.Action).
		Msg("successful login after failures: a guessed password? check this account")
	d.notice(Notice{
		Type: NoticeCompromise, Target: c.Prefix, Addr: c.Addr, Rule: engine.CompromiseRuleName, Source: c.Source, User: c.User,
		Count: c.Failures, Time: c.Time, Reason: c.Reason(), Country: d.country(c.Addr),
	})
	d.refuseLearning(c.Addr, c.Time)
}
