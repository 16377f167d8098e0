package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/parsers"
)

// manualRule is the rule name of bans made with `sipguard ban`.
const manualRule = "manual"

// banRecord is what the daemon knows of a ban in force.
type banRecord struct {
	Target   netip.Prefix `json:"target"`
	Addr     string       `json:"addr,omitempty"` // the address whose event triggered it
	Rule     string       `json:"rule"`
	Reason   string       `json:"reason,omitempty"`
	Since    time.Time    `json:"since"`
	Expires  time.Time    `json:"expires"`
	Count    int          `json:"count,omitempty"`
	Source   string       `json:"source,omitempty"`
	Offences int          `json:"offences,omitempty"`
	Origin   string       `json:"origin,omitempty"` // the fleet node that decided it; empty: this one
}

// decision is a ban the engine decided, waiting to be enforced.
type decision struct {
	ban     engine.Ban
	source  string
	kind    parsers.Kind
	at      time.Time // when decided
	timeout time.Duration
	read    time.Time // when the line that completed it arrived (zero: not from a line)
	reason  string    // why, when not the rule's count of events
	origin  string    // the fleet node that decided it; empty: this one
}

// decide queues a ban. Its timeout runs from the last event, so a ban
// decided on old lines (read after a restart) is shorter, or already over.
// read is when the deciding line arrived, why an explanation overriding
// the default one ("5 events in 40s, the last auth_failed").
func (d *Daemon) decide(b engine.Ban, ev *parsers.Event, now, read time.Time, why string) {
	age := max(now.Sub(b.Last), 0)
	timeout := b.Duration - age
	if timeout <= 0 {
		d.stale++
		d.log.Debug().Str(fieldPrefix, b.Prefix.String()).Str(fieldRule, b.Rule).Time("last_event", b.Last).
			Msg("ban already over: its events are older than its duration")
		return
	}
	d.pending = append(d.pending, decision{ban: b, source: ev.Source, kind: ev.Kind, at: now, timeout: timeout, read: read, reason: why})
}

// flush enforces the queued bans in one firewall call, then records them
// and the log positions of the lines that caused them. On a firewall error
// everything stays queued and is retried with backoff.
func (d *Daemon) flush(ctx context.Context) {
	if len(d.pending) > 0 {
		now := d.now()
		d.pending = d.uncovered(d.pending, now)
		bans := make([]firewall.Ban, 0, len(d.pending))
		for _, p := range d.pending {
			bans = append(bans, firewall.Ban{Prefix: p.ban.Prefix, Timeout: max(p.timeout-now.Sub(p.at), time.Second)})
		}
		err := d.makeRoom(ctx, bans)
		if err == nil {
			err = d.fw.Ban(ctx, bans...)
		}
		var oe *firewall.OverlapError
		if errors.As(err, &oe) {
			// Never let one ban hold up the others: drop it and go on.
			d.log.Warn().Str(fieldPrefix, oe.Prefix.String()).Str("overlaps", oe.With.String()).Msg("ban skipped: it overlaps another network ban")
			d.pending = slices.DeleteFunc(d.pending, func(p decision) bool { return p.ban.Prefix == oe.Prefix })
			d.flush(ctx)
			return
		}
		if err != nil {
			d.fwErrors++
			d.retryWait = min(max(2*d.retryWait, 250*time.Millisecond), 30*time.Second)
			d.retryAt = now.Add(d.retryWait)
			d.fwErr = err.Error()
			d.log.Error().Err(err).Int("bans", len(bans)).Dur("retry_in", d.retryWait).Msg("firewall refused bans; retrying")
			return
		}
		d.retryWait, d.fwErr = 0, ""
		enforced := time.Now()
		for i, p := range d.pending {
			var latency time.Duration
			if !p.read.IsZero() {
				latency = enforced.Sub(p.read)
			}
			d.record(p, bans[i].Timeout, now, latency)
		}
		d.pending = d.pending[:0]
		d.bansDirty = true
	}
	for name, p := range d.pendingPos {
		d.positions[name] = p
		d.posDirty = true
		delete(d.pendingPos, name)
	}
}

// uncovered drops the decisions a wider ban in force already covers (an
// attacker inside a banned network): the firewall would refuse them as
// overlapping, and they change nothing.
func (d *Daemon) uncovered(ds []decision, now time.Time) []decision {
	return slices.DeleteFunc(ds, func(p decision) bool {
		w, ok := d.covering(p.ban.Prefix, now)
		if ok {
			d.log.Debug().Str(fieldPrefix, p.ban.Prefix.String()).Str("covered_by", w.String()).Msg("ban not needed")
		}
		return ok
	})
}

// covering returns a network ban in force that strictly contains p.
func (d *Daemon) covering(p netip.Prefix, now time.Time) (netip.Prefix, bool) {
	if isHost(p) {
		return netip.Prefix{}, false // addresses live in their own sets
	}
	for q, r := range d.bans {
		if !isHost(q) && q.Bits() < p.Bits() && q.Contains(p.Addr()) && r.Expires.After(now) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// makeRoom lifts the network bans that new, wider network bans contain
// (after an ipv6_prefix change, or a manual ban of a whole range): the
// wider ban replaces them.
func (d *Daemon) makeRoom(ctx context.Context, bans []firewall.Ban) error {
	var lift []netip.Prefix
	for _, b := range bans {
		if isHost(b.Prefix) {
			continue
		}
		for q := range d.bans {
			if !isHost(q) && q.Bits() > b.Prefix.Bits() && b.Prefix.Contains(q.Addr()) {
				lift = append(lift, q)
			}
		}
	}
	if len(lift) == 0 {
		return nil
	}
	if err := d.fw.Unban(ctx, lift...); err != nil {
		return err
	}
	for _, q := range lift {
		d.unbanned(q, UnbanReplaced, "replaced by a wider ban")
	}
	d.bansDirty = true
	return nil
}

func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

func (d *Daemon) record(p decision, timeout time.Duration, now time.Time, latency time.Duration) {
	b := p.ban
	r := &banRecord{
		Target: b.Prefix, Rule: b.Rule, Since: now, Expires: now.Add(timeout),
		Count: b.Count, Source: p.source, Offences: b.Offences, Reason: p.reason, Origin: p.origin,
	}
	if b.Addr.IsValid() {
		r.Addr = b.Addr.String()
	}
	if r.Reason == "" {
		r.Reason = fmt.Sprintf("%d events in %s, the last %s", b.Count, b.Last.Sub(b.First).Round(time.Second), p.kind)
	}
	ev := d.log.Info()
	if p.origin != "" {
		// Another node's ban keeps its own start, so that its origin's
		// "lifted" and cluster unbans find it.
		r.Since = b.First
		ev = ev.Str(fieldOrigin, p.origin)
	} else {
		d.ruleBans[b.Rule]++
	}
	d.bans[b.Prefix] = r
	ev.Str(fieldIP, r.Addr).Str(fieldPrefix, b.Prefix.String()).Str(fieldRule, b.Rule).
		Int(fieldCount, b.Count).Float64(fieldTTL, timeout.Round(time.Second).Seconds()).
		Str(fieldSource, p.source).Int(fieldOffence, b.Offences).Msg("ban")
	d.notice(Notice{
		Type: NoticeBan, Target: b.Prefix, Addr: b.Addr, Rule: b.Rule, Reason: r.Reason, Source: p.source,
		Count: b.Count, Offences: b.Offences, Time: now, Expires: r.Expires, Latency: latency, Origin: p.origin,
	})
	d.share(r)
}

// unbanned forgets a ban lifted for reason (why: the log's words) and
// tells the observers.
func (d *Daemon) unbanned(p netip.Prefix, reason, why string) {
	r := d.bans[p]
	delete(d.bans, p)
	d.bansDirty = true
	d.unbans[reason]++
	if r != nil && strings.HasPrefix(r.Rule, feedRulePrefix) {
		// A feed's entries come and go by the thousand: the feed's own
		// log line reports them, and no one is notified of each.
		fs := d.feeds[strings.TrimPrefix(r.Rule, feedRulePrefix)]
		if fs == nil {
			return
		}
		delete(fs.applied, p)
		switch reason {
		case UnbanManual:
			fs.excluded[p] = struct{}{}
		case UnbanExpired, UnbanReplaced:
			fs.dirty = true // try again (a wider ban keeps it out)
		}
		if reason == UnbanManual {
			d.log.Info().Str(fieldPrefix, p.String()).Str(fieldRule, r.Rule).Str(fieldReason, why).
				Msg("unban of a feed entry: kept out until restart; [allow] it for good")
		}
		return
	}
	n := Notice{Type: NoticeUnban, Target: p, Reason: reason, Time: d.now()}
	if r != nil {
		n.Rule, n.Origin = r.Rule, r.Origin
	}
	d.log.Info().Str(fieldPrefix, p.String()).Str(fieldRule, n.Rule).Str(fieldReason, why).Msg("unban")
	d.notice(n)
}

// expire forgets bans that ended (the kernel has lifted them already).
func (d *Daemon) expire() {
	now := d.now()
	for p, r := range d.bans {
		if !r.Expires.After(now) {
			d.unbanned(p, UnbanExpired, "expired")
		}
	}
}

// parseTarget reads an address or a network. Host bits set in a network
// are an error, as in the config.
func parseTarget(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, control.BadRequest("%q is not an IP address or CIDR", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, control.BadRequest("%q has host bits set (did you mean %s?)", s, p.Masked())
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, control.BadRequest("%q: write IPv4 networks in IPv4 form", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, control.BadRequest("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// manualBan bans r.Target on the core goroutine. The channel returned is
// closed once the ban is saved: a manual ban must survive a crash.
func (d *Daemon) manualBan(ctx context.Context, req control.BanRequest) (control.BanResponse, <-chan struct{}, error) {
	p, err := parseTarget(req.Target)
	if err != nil {
		return control.BanResponse{}, nil, err
	}
	dur := d.cfg.ManualBanTime
	if req.For != "" {
		if dur, err = duration.Parse(req.For); err != nil || dur <= 0 {
			return control.BanResponse{}, nil, control.BadRequest("--for %q: a positive duration such as 30m, 1h or 7d", req.For)
		}
	}
	if a := d.allowed(p); a.IsValid() {
		return control.BanResponse{}, nil, control.BadRequest("%s is allowlisted (%s): remove it from [allow] first", p, a)
	}
	now := d.now()
	if w, ok := d.covering(p, now); ok {
		return control.BanResponse{}, nil, control.BadRequest("%s is inside %s, banned until %s: unban that first to change it",
			p, w, d.bans[w].Expires.Local().Format(time.DateTime))
	}
	ban := firewall.Ban{Prefix: p, Timeout: dur}
	err = d.makeRoom(ctx, []firewall.Ban{ban})
	if err == nil {
		err = d.fw.Ban(ctx, ban)
	}
	if err != nil {
		d.fwErrors++
		return control.BanResponse{}, nil, control.BadRequest("ban %s: %v", p, err)
	}
	result := control.Banned
	if _, ok := d.bans[p]; ok {
		result = control.AlreadyBanned
	}
	r := &banRecord{Target: p, Rule: manualRule, Reason: req.Reason, Since: now, Expires: now.Add(dur)}
	d.bans[p] = r
	d.eng.Banned(p, now, dur)
	d.log.Info().Str(fieldPrefix, p.String()).Str(fieldRule, manualRule).Str(fieldReason, req.Reason).
		Float64(fieldTTL, dur.Seconds()).Msg("ban")
	d.notice(Notice{Type: NoticeBan, Target: p, Rule: manualRule, Reason: req.Reason, Time: now, Expires: r.Expires})
	d.share(r)
	d.bansDirty = true
	return control.BanResponse{Result: result, Ban: r.control()}, d.durable(), nil
}

// allowed returns the allowlist entry that p overlaps, if any: a ban must
// never cover an allowed address.
func (d *Daemon) allowed(p netip.Prefix) netip.Prefix {
	for _, a := range d.cfg.Engine.Allow {
		if a.Overlaps(p) {
			return a
		}
	}
	return netip.Prefix{}
}

// manualUnban lifts every ban overlapping the target (an address inside a
// banned IPv6 /64 lifts the /64), and forgets the counters and offences of
// the target and of what it lifted. The channel returned is closed once
// that is saved.
func (d *Daemon) manualUnban(ctx context.Context, req control.UnbanRequest) (control.UnbanResponse, <-chan struct{}, error) {
	var target netip.Prefix
	if !req.All {
		var err error
		if target, err = parseTarget(req.Target); err != nil {
			return control.UnbanResponse{}, nil, err
		}
	}
	if req.Cluster {
		return d.clusterUnban(ctx, target, req.All)
	}
	var lift []netip.Prefix
	for p := range d.bans {
		if req.All || p.Overlaps(target) {
			lift = append(lift, p)
		}
	}
	sort.Slice(lift, func(i, j int) bool { return lift[i].String() < lift[j].String() })
	if len(lift) > 0 {
		if err := d.fw.Unban(ctx, lift...); err != nil {
			d.fwErrors++
			return control.UnbanResponse{}, nil, fmt.Errorf("unban: %w", err)
		}
	}
	res := control.UnbanResponse{Result: control.AlreadyUnbanned, Unbanned: []string{}}
	d.keepLifted(lift, req.All)
	for _, p := range lift {
		d.unbanned(p, UnbanManual, "manual")
		d.eng.Forget(p)
		res.Unbanned = append(res.Unbanned, p.String())
	}
	if target.IsValid() {
		d.eng.Forget(target)
	}
	if len(lift) == 0 {
		return res, nil, nil
	}
	res.Result = control.Unbanned
	d.bansDirty = true
	return res, d.durable(), nil
}

func (r *banRecord) control() control.Ban {
	return control.Ban{
		Target: prefixString(r.Target), Rule: r.Rule, Reason: r.Reason, Since: r.Since,
		Expires: r.Expires, Count: r.Count, Source: r.Source, Origin: r.Origin,
	}
}

// prefixString shows an address without /32 or /128.
func prefixString(p netip.Prefix) string {
	if isHost(p) {
		return p.Addr().String()
	}
	return p.String()
}
