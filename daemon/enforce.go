package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/parsers"
)

// decision is a ban decided (by the engine, or by a peer of the cluster),
// waiting to be enforced.
type decision struct {
	ban     engine.Ban
	origin  bans.Origin
	source  string
	kind    parsers.Kind
	at      time.Time // when decided
	timeout time.Duration
	read    time.Time  // when the line that completed it arrived (zero: not from a line)
	reason  string     // why, when not the rule's count of events
	lines   []Evidence // the log lines that led to it
	ports   string     // the ports profile of the rule's bans ("": the default)

	rec *bans.Record // made by flush
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
	d.pending = append(d.pending, decision{ban: b, origin: bans.ByRule, source: ev.Source, kind: ev.Kind, at: now, timeout: timeout, read: read, reason: why,
		lines: d.evidence.decided(b.Prefix), ports: d.cfg.RulePorts[b.Rule]})
}

// flush enforces the queued bans in one firewall call, then records them
// and the log positions of the lines that caused them. On a firewall error
// everything stays queued and is retried with backoff.
func (d *Daemon) flush(ctx context.Context) {
	// Queued before a reload allowlisted their address, or special: never
	// enforced, and dropped before planning (a wider ban would replace
	// the narrower ones inside it first). A wider one dropped after a
	// firewall error took nothing out of the kernel: its transaction
	// (enforce) failed as a whole.
	d.pending = slices.DeleteFunc(d.pending, func(p decision) bool { return d.refused(p.ban.Prefix) != nil })
	if len(d.pending) > 0 {
		now := d.now()
		recs := make([]*bans.Record, len(d.pending))
		for i := range d.pending {
			p := &d.pending[i]
			p.rec = p.record(now)
			recs[i] = p.rec
		}
		plan := d.ledger.Plan(recs, now)
		// A covered ban is recorded all the same, and not enforced: the
		// wider ban drops its traffic, and when that ban is lifted or
		// ends, uncover puts the covered one in force (its origin may be
		// another, the wider ban's origin may not end it).
		for _, r := range plan.Covered {
			d.log.Debug().Str(fieldPrefix, r.Target.String()).Msg("ban covered by a wider one: recorded, enforced when that one goes")
		}
		err := d.enforce(ctx, plan, now)
		var oe *firewall.OverlapError
		var ge *guardError
		var skip netip.Prefix
		switch {
		case errors.As(err, &oe):
			d.log.Warn().Str(fieldPrefix, oe.Prefix.String()).Str("overlaps", oe.With.String()).Msg("ban skipped: it overlaps another network ban")
			skip = oe.Prefix
		case errors.As(err, &ge):
			skip = ge.Prefix
		}
		if skip.IsValid() {
			// Never let one ban hold up the others: drop it and go on.
			d.pending = slices.DeleteFunc(d.pending, func(p decision) bool { return p.ban.Prefix == skip })
			d.flush(ctx)
			return
		}
		if err != nil {
			d.fwErrors++
			d.retryWait = min(max(2*d.retryWait, 250*time.Millisecond), 30*time.Second)
			d.retryAt = now.Add(d.retryWait)
			d.fwErr = err.Error()
			d.log.Error().Err(err).Int("bans", len(plan.Enforce)).Dur("retry_in", d.retryWait).Msg("firewall refused bans; retrying")
			return
		}
		d.retryWait, d.fwErr = 0, ""
		enforced := time.Now()
		for _, p := range d.pending {
			var latency time.Duration
			if !p.read.IsZero() {
				latency = enforced.Sub(p.read)
			}
			d.record(p, now, latency)
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

// record makes the record of a decision, enforced from now for what is
// left of its timeout (at least a second).
func (p *decision) record(now time.Time) *bans.Record {
	b := p.ban
	timeout := max(p.timeout-now.Sub(p.at), time.Second)
	r := &bans.Record{
		Target: b.Prefix, Origin: p.origin, Rule: b.Rule, Addr: b.Addr, Reason: p.reason, Since: now, Expires: now.Add(timeout),
		Count: b.Count, Offences: b.Offences, Source: p.source, Ports: p.ports,
	}
	if p.origin.Kind == bans.Peer {
		// A peer's ban keeps its own start, so that its origin's "lifted"
		// and cluster unbans find it.
		r.Since = b.First
	}
	if r.Reason == "" {
		r.Reason = fmt.Sprintf("%d events in %s, the last %s", b.Count, b.Last.Sub(b.First).Round(time.Second), p.kind)
	}
	if b.NarrowedFrom.IsValid() {
		r.Reason += "; the address alone: " + b.NarrowedFrom.String() + " holds an allowlisted address"
	}
	return r
}

// firewallBans turns new records into what the firewall enforces: one
// ban per target and ports profile, for as long as its longest record
// there once the new ones are held (a target is banned as long as any
// origin wants it: a shorter new record never shortens the kernel's
// timeout). A new record replaces its origin's record held (Put), the
// last of an origin's in recs too: a peer's ban sent again ending sooner
// shortens the kernel's timeout, else the kernel would hold the target
// after the ledger's last record of it ended, a ban no one sees or wants.
func (d *Daemon) firewallBans(recs []*bans.Record, now time.Time) []firewall.Ban {
	newest := make(map[bans.Replaced]map[bans.Origin]time.Time, len(recs))
	var order []bans.Replaced
	for _, r := range recs {
		k := bans.Replaced{Target: r.Target, Ports: r.Ports}
		if newest[k] == nil {
			order = append(order, k)
			newest[k] = map[bans.Origin]time.Time{}
		}
		newest[k][r.Origin] = r.Expires
	}
	out := make([]firewall.Ban, len(order))
	for i, k := range order {
		var until time.Time
		for _, exp := range newest[k] {
			until = later(until, exp)
		}
		replaced := func(r *bans.Record) bool {
			_, renewed := newest[k][r.Origin]
			return r.Ports != k.Ports || renewed
		}
		if held := d.ledger.Without(k.Target, replaced); held != nil && held.InForce(now) {
			until = later(until, held.Expires)
		}
		out[i] = firewall.Ban{Prefix: k.Target, Timeout: until.Sub(now), Ports: k.Ports}
	}
	return out
}

// enforce puts plan's new bans in force and takes out of the kernel, in
// the same transaction, the network bans they contain in their ports
// profile (after an ipv6_prefix change, a manual ban of a whole range, a
// node's own wider ban): the wider ban takes their place there, with no
// moment, and no firewall error, leaving neither in force. Their records
// stay in the ledger, covered by the wider one (Plan.Covered): when it
// goes, lifted or ended, uncover puts them back in force for what is left
// of their time, so a wider ban of one origin never ends another's
// narrower one.
func (d *Daemon) enforce(ctx context.Context, plan bans.Plan, now time.Time) error {
	lift := make([]firewall.Lift, len(plan.Replace))
	for i, q := range plan.Replace {
		lift[i] = firewall.Lift{Prefix: q.Target, Ports: q.Ports}
	}
	if err := d.change(ctx, lift, d.firewallBans(plan.Enforce, now)...); err != nil {
		return err
	}
	for _, q := range plan.Replace {
		d.log.Debug().Str(fieldPrefix, q.Target.String()).Msg("ban covered by a wider one: out of the kernel until that one goes")
	}
	return nil
}

// record holds a decision enforced at now and tells the observers.
func (d *Daemon) record(p decision, now time.Time, latency time.Duration) {
	r := p.rec
	// Peers' bans come by the thousand: applyCluster logs each batch, and
	// each ban is at debug level. The level is chosen before the event is
	// made: an event made and dropped is never returned to zerolog's pool
	// (a flood of peers' bans allocated one per ban).
	var ev *zerolog.Event
	if r.Origin.Kind == bans.Peer {
		ev = d.log.Debug()
	} else {
		ev = d.log.Info()
	}
	if node := r.Node(); node != "" {
		ev = ev.Str(fieldNode, node)
	} else {
		d.ruleBans[r.Rule]++
	}
	d.ledger.Put(r)
	if r.Origin.Kind == bans.Rule {
		d.evidence.banned(r.Target, p.lines)
	}
	timeout := r.Expires.Sub(now)
	var addr string
	if r.Addr.IsValid() {
		addr = r.Addr.String()
	}
	if from := p.ban.NarrowedFrom; from.IsValid() {
		d.log.Info().Str(fieldIP, addr).Str("network", from.String()).Str("allow", d.allowed(from).String()).
			Msg("ban narrowed to the address: its network holds an allowlisted address")
	}
	country := d.banCountry(r)
	if country != "" {
		ev = ev.Str(fieldCountry, country)
	}
	ev.Str(fieldIP, addr).Str(fieldPrefix, r.Target.String()).Str(fieldRule, r.Rule).
		Int(fieldCount, r.Count).Float64(fieldTTL, timeout.Round(time.Second).Seconds()).
		Str(fieldSource, r.Source).Int(fieldOffence, r.Offences).Msg("ban")
	d.notice(Notice{
		Type: NoticeBan, Target: r.Target, Addr: r.Addr, Rule: r.Rule, Reason: r.Reason, Source: r.Source,
		Count: r.Count, Offences: r.Offences, Time: now, Expires: r.Expires, Latency: latency, Node: r.Node(),
		Country: country,
	})
	d.share(r)
}

// unbanned forgets every record of a target lifted for reason (why: the
// log's words) and tells the observers.
func (d *Daemon) unbanned(p netip.Prefix, reason, why string) {
	d.lifted(p, d.ledger.Remove(p), true, reason, why)
}

// lifted tells of records of target p gone for reason; over says whether
// the target is no longer banned at all. A feed's entries come and go by
// the thousand: the feed keeps its own books and its log line reports
// them; no one is notified of each.
func (d *Daemon) lifted(p netip.Prefix, gone []*bans.Record, over bool, reason, why string) {
	if len(gone) == 0 {
		return
	}
	d.bansDirty = true
	feedOnly := true
	for _, r := range gone {
		if r.Origin.Kind == bans.Feed {
			d.feedEntryLifted(r, reason, why)
		} else {
			feedOnly = false
		}
	}
	if !over {
		d.log.Debug().Str(fieldPrefix, p.String()).Str(fieldRule, gone[0].Label()).Str(fieldReason, why).
			Msg("a ban's record lifted; others of the target stay in force")
		return
	}
	d.evidence.lifted(p)
	d.unbans[reason]++
	if feedOnly {
		return
	}
	n := Notice{Type: NoticeUnban, Target: p, Reason: reason, Time: d.now(), Rule: gone[0].Label(), Node: gone[0].Node()}
	d.log.Info().Str(fieldPrefix, p.String()).Str(fieldRule, n.Rule).Str(fieldReason, why).Msg("unban")
	d.notice(n)
}

// liftRecords lifts the records of target p matching drop, at now: in the
// firewall first (the target unbanned when nothing is left, or its
// timeout set to the longest record left when that is shorter), then in
// the ledger.
func (d *Daemon) liftRecords(ctx context.Context, p netip.Prefix, drop func(*bans.Record) bool, reason, why string) ([]*bans.Record, error) {
	now := d.now()
	rest := d.ledger.Without(p, drop)
	var l lifts
	d.planLift(&l, p, drop, now)
	if len(l.unban) > 0 {
		l.back = d.coveredInside([]netip.Prefix{p}, drop, now)
	}
	if err := d.applyLifts(ctx, &l); err != nil {
		d.fwErrors++
		return nil, err
	}
	gone := d.liftedRecords(p, drop, rest, now, reason, why)
	d.putBack(ctx, &l, now, p)
	return gone, nil
}

// liftedRecords forgets the records of target p matching drop, lifted in
// the firewall at now (rest: the longest record left, Without), and tells
// of them.
func (d *Daemon) liftedRecords(p netip.Prefix, drop func(*bans.Record) bool, rest *bans.Record, now time.Time, reason, why string) []*bans.Record {
	gone := d.ledger.RemoveIf(p, drop)
	if rest != nil && !rest.InForce(now) {
		gone = append(gone, d.ledger.Remove(p)...) // ended, lifted by the kernel
	}
	d.lifted(p, gone, rest == nil || !rest.InForce(now), reason, why)
	return gone
}

// lifts is what lifting some records takes in the firewall: the targets
// to unban, each in its ports profile, the bans to shorten, and the bans
// inside a network unbanned that it covered (coveredInside), which go in
// in the same transaction: as a second one, they were out of the kernel
// between the two, and for as long as it failed.
type lifts struct {
	unban   []firewall.Lift
	shorten []firewall.Ban
	back    []firewall.Ban
	// later: the firewall refused back beside a network it still holds
	// (applyLifts), which uncover puts in force once it has let it go.
	later bool
}

// putBack logs the bans l put back in force inside the networks lifted
// (some of targets), whose earlier failed return (uncovering) is moot;
// or, those refused (lifts.later), tries them again as uncover does,
// the ledger now without the records lifted.
func (d *Daemon) putBack(ctx context.Context, l *lifts, now time.Time, targets ...netip.Prefix) {
	if len(l.unban) == 0 {
		// Nothing left the firewall, nothing was put back: a target
		// still in force in one profile may have ended in another, whose
		// returns wait (uncovering).
		return
	}
	for _, p := range targets {
		delete(d.uncovering, p)
	}
	if l.later {
		for _, p := range targets {
			d.uncover(ctx, p, now)
		}
		return
	}
	if len(l.back) > 0 {
		d.log.Info().Int("bans", len(l.back)).Msg("bans inside a lifted network ban put back in force")
	}
}

// coveredInside returns what the firewall must hold once the records
// matching gone of the targets in lifted are lifted (gone nil: none, they
// left the ledger already; the records left there still cover): the bans
// of the networks inside those targets, in force, that they covered
// (Plan: Covered; the kernel holds no overlapping networks) and that
// nothing left covers, each for its longest record in force in its ports
// profile. Bans the guard refuses (allowlisted, special) are left out,
// logged and counted.
func (d *Daemon) coveredInside(lifted []netip.Prefix, gone func(*bans.Record) bool, now time.Time) []firewall.Ban {
	in := make(map[netip.Prefix]bool, len(lifted))
	for _, p := range lifted {
		in[p] = true
	}
	// Only the lifted targets' records go: another target's record of
	// the same origin still covers what it covered. A network the guard
	// refuses (it covers an address allowlisted since, not yet fitted:
	// applyAllow) is not put back: it covers nothing either. Inside lists
	// the wider first.
	refused := map[netip.Prefix]bool{}
	going := func(r *bans.Record) bool { return refused[r.Target] || gone != nil && in[r.Target] && gone(r) }
	var out []firewall.Ban
	seen := map[netip.Prefix]bool{}
	for _, p := range lifted {
		if bans.IsHost(p) {
			continue
		}
		for _, q := range d.ledger.Inside(p) {
			if seen[q] {
				continue
			}
			seen[q] = true
			until := map[string]time.Time{}
			var order []string
			for _, r := range d.ledger.RecordsOf(q) {
				if !r.InForce(now) || going(r) {
					continue
				}
				if _, ok := until[r.Ports]; !ok {
					order = append(order, r.Ports)
				}
				until[r.Ports] = later(until[r.Ports], r.Expires)
			}
			for _, ports := range order {
				if _, covered := d.ledger.CoveringBut(q, ports, now, going); covered {
					continue
				}
				if d.refused(q) != nil {
					refused[q] = true
					break // in no profile
				}
				out = append(out, firewall.Ban{Prefix: q, Timeout: until[ports].Sub(now), Ports: ports})
			}
		}
	}
	return out
}

// planLift adds to l what lifting the records of target p matching drop
// takes, at now, in each ports profile they are of: a profile left
// without a record in force is lifted; one whose longest record left is
// shorter gets that timeout. A network covered there by a wider ban in
// force is not in the kernel (flush: Plan.Covered): its records go from
// the ledger alone (shortening it, the kernel would refuse it as
// overlapping the wider one, and the lift would fail).
func (d *Daemon) planLift(l *lifts, p netip.Prefix, drop func(*bans.Record) bool, now time.Time) {
	recs := d.ledger.RecordsOf(p)
	done := map[string]bool{}
	for _, r := range recs {
		if !drop(r) || done[r.Ports] {
			continue
		}
		done[r.Ports] = true
		if _, covered := d.ledger.Covering(p, r.Ports, now); covered {
			continue
		}
		var rest *bans.Record
		for _, o := range recs {
			if o.Ports == r.Ports && !drop(o) && o.InForce(now) && (rest == nil || o.Expires.After(rest.Expires)) {
				rest = o
			}
		}
		switch {
		case rest == nil:
			l.unban = append(l.unban, firewall.Lift{Prefix: p, Ports: r.Ports})
		case rest.Expires.Before(d.ledger.UntilIn(p, r.Ports, now)):
			l.shorten = append(l.shorten, firewall.Ban{Prefix: p, Timeout: rest.Expires.Sub(now), Ports: r.Ports})
		}
	}
}

// applyLifts does l in the firewall, in one transaction: should it fail,
// no part of it is done (a target lifted in one ports profile while its
// shortening in another failed kept its records in the ledger, in force
// in neither).
func (d *Daemon) applyLifts(ctx context.Context, l *lifts) error {
	if len(l.unban) == 0 && len(l.shorten) == 0 {
		return nil
	}
	err := d.change(ctx, l.unban, append(slices.Clip(l.shorten), l.back...)...)
	// A ban put back overlapping a network the firewall still holds (its
	// record ended a moment ago: its ban ends after it, by as long as the
	// call that set it took) must not fail the lift: a peer's lift is not
	// sent again, a person's unban would fail. The lift goes alone, and
	// the bans inside go in when the firewall lets that network go.
	var oe *firewall.OverlapError
	if err != nil && errors.As(err, &oe) && slices.ContainsFunc(l.back, func(b firewall.Ban) bool { return b.Prefix == oe.Prefix }) {
		l.back, l.later = nil, true
		return d.change(ctx, l.unban, l.shorten...)
	}
	return err
}

// expire forgets the records that ended. The kernel holds a target as
// long as its longest record: when the last one ends, it has lifted the
// target already, and the bans it covered are put in force (uncover).
func (d *Daemon) expire() {
	now := d.now()
	ended := map[netip.Prefix]bool{}
	for _, r := range d.ledger.Ended(now) {
		ended[r.Target] = true
	}
	for p := range ended {
		gone := d.ledger.RemoveIf(p, func(r *bans.Record) bool { return !r.InForce(now) })
		_, held := d.ledger.Get(p)
		d.lifted(p, gone, !held, UnbanExpired, "expired")
	}
	for p := range ended {
		d.uncover(d.ctx(), p, now)
	}
}

// uncover puts in force, once the network ban of p has left the kernel
// (in some ports profile), the network bans inside it that it covered
// (Plan: Covered; the kernel holds no overlapping networks) and that are
// still in force, unless a wider ban still covers them there (p itself,
// in a profile where it is still in force).
func (d *Daemon) uncover(ctx context.Context, p netip.Prefix, now time.Time) {
	if bans.IsHost(p) {
		return
	}
	bs := d.coveredInside([]netip.Prefix{p}, nil, now)
	first, retried := d.uncovering[p]
	delete(d.uncovering, p)
	if len(bs) == 0 {
		return
	}
	if err := d.ban(ctx, bs...); err != nil {
		var ge *guardError
		if d.uncovering == nil {
			d.uncovering = map[netip.Prefix]time.Time{}
		}
		if !retried {
			first = now
		}
		if !errors.As(err, &ge) { // allowlisted, special: never put back, not retried
			d.uncovering[p] = first
		}
		// The firewall still holding p itself, or another network whose
		// records ended (around p, lifted beside it: putBack), is expected
		// for a moment: its ban ends after its record, by as long as the
		// call that set it took. Tried again soon (uncoverRetry), it is no
		// error unless it lasts.
		var oe *firewall.OverlapError
		if errors.As(err, &oe) && oe.Until.After(now) && (d.uncoverHint.IsZero() || oe.Until.Before(d.uncoverHint)) {
			d.uncoverHint = oe.Until
		}
		if errors.As(err, &oe) && (oe.With == p || d.ledger.Until(oe.With, now).IsZero()) && now.Sub(first) < time.Second {
			d.log.Debug().Str(fieldPrefix, p.String()).Int("bans", len(bs)).
				Msg("the firewall still holds a network ban that ended: the bans inside it go in when it lets it go")
			return
		}
		d.fwErrors++
		d.log.Error().Err(err).Str(fieldPrefix, p.String()).Int("bans", len(bs)).
			Msg("bans inside a lifted network ban not put back in force")
		return
	}
	d.log.Info().Str(fieldPrefix, p.String()).Int("bans", len(bs)).Msg("bans inside a lifted network ban put back in force")
}

// uncoverAgain retries the uncovers the firewall failed.
func (d *Daemon) uncoverAgain(ctx context.Context) {
	now := d.now()
	d.uncoverHint = time.Time{} // set again by those refused again
	// uncover adds back the ones failing again: not while ranging.
	for _, p := range slices.Collect(maps.Keys(d.uncovering)) {
		d.uncover(ctx, p, now)
	}
}
