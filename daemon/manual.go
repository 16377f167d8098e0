package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/firewall"
)

// refusal is a request the daemon will not carry out as asked: the
// caller's mistake (an allowlisted address, a network too wide without
// --force), not the daemon's. The control socket answers it with 400.
type refusal struct{ msg string }

func (e *refusal) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// ManualBan is what `sipguard ban` did.
type ManualBan struct {
	Record  *bans.Record // the ban in force now
	Renewed bool         // p was banned already: its ban was replaced
	Kept    bool         // p was banned already, longer: that ban was kept
	// CoveredBy is the wider ban in force that holds p: p is recorded,
	// and enforced when that one goes.
	CoveredBy netip.Prefix
}

// manualBan bans p for dur on the core goroutine. A network wider than
// bans.TooWide allows is refused without force; special-purpose
// addresses (bans.Special) and bans longer than bans.MaxDuration are
// refused, force or not; a ban of p already in force for longer is kept
// as it is; a network inside a wider ban in force is recorded, covered
// (ManualBan.CoveredBy). The channel returned is
// closed once the ban is saved: a manual ban must survive a crash.
func (d *Daemon) manualBan(ctx context.Context, p netip.Prefix, dur time.Duration, reason string, force bool) (ManualBan, <-chan struct{}, error) {
	reason = bans.CleanReason(reason)
	if dur <= 0 {
		dur = d.cfg.ManualBanTime
	}
	if a := d.allowed(p); a.IsValid() {
		return ManualBan{}, nil, refuse("%s is allowlisted (%s): remove it from [allow] first", p, a)
	}
	if bans.TooWide(p) && !force {
		return ManualBan{}, nil, refuse("%s is wider than /%d (IPv4) or /%d (IPv6): a typo? ban it with --force if you mean it",
			p, bans.MinBits4, bans.MinBits6)
	}
	if why, bad := bans.Special(p); bad {
		return ManualBan{}, nil, refuse("%s is %s: never banned", bans.String(p), why)
	}
	if dur > bans.MaxDuration {
		return ManualBan{}, nil, refuse("%s is longer than the longest ban, %s", duration.Format(dur), duration.Format(bans.MaxDuration))
	}
	now := d.now()
	if old, ok := d.longerHere(p, now.Add(dur), now); ok {
		d.log.Info().Str(fieldPrefix, p.String()).Str(fieldRule, old.Label()).Time("until", old.Expires).
			Msg("manual ban shorter than the ban in force: the longer one is kept")
		return ManualBan{Record: old, Renewed: true, Kept: true}, nil, nil
	}
	r := &bans.Record{Target: p, Origin: bans.ByHand, Reason: reason, Since: now, Expires: now.Add(dur)}
	// Inside a wider ban in force, whoever made it: recorded beside it and
	// kept out of the kernel (which holds no overlapping networks) until
	// that one goes, then enforced for what is left of its own time
	// (uncover). Refusing it would leave a person unable to ban a range
	// for a week while another node bans a wider one for ten minutes.
	plan := d.ledger.Plan([]*bans.Record{r}, now)
	var coveredBy netip.Prefix
	if len(plan.Covered) > 0 {
		w, _ := d.ledger.Covering(p, "", now)
		coveredBy = w.Target
	} else {
		// The bans inside p leave the kernel in the same transaction:
		// refused, they are still in force.
		if err := d.enforce(ctx, plan, now); err != nil {
			d.fwErrors++
			return ManualBan{}, nil, refuse("ban %s: %v", p, err)
		}
	}
	renewed := !d.ledger.UntilIn(p, "", now).IsZero()
	d.ledger.Put(r)
	d.eng.Banned(p, now, dur)
	ev := d.log.Info()
	country := d.banCountry(r)
	if country != "" {
		ev = ev.Str(fieldCountry, country)
	}
	if coveredBy.IsValid() {
		ev = ev.Str("inside", coveredBy.String())
	}
	ev.Str(fieldPrefix, p.String()).Str(fieldRule, r.Label()).Str(fieldReason, reason).
		Float64(fieldTTL, dur.Seconds()).Msg("ban")
	d.notice(Notice{Type: NoticeBan, Target: p, Rule: r.Label(), Reason: reason, Time: now, Expires: r.Expires, Country: country})
	d.share(r)
	d.bansDirty = true
	return ManualBan{Record: r, Renewed: renewed, CoveredBy: coveredBy}, d.durable(), nil
}

// manualUnban lifts every ban overlapping target (an address inside a
// banned IPv6 /64 lifts the /64), or every ban with all, and forgets the
// counters and offences of the target and of what it lifted. It returns
// what it lifted; the channel returned is closed once that is saved.
func (d *Daemon) manualUnban(ctx context.Context, target netip.Prefix, all bool) ([]netip.Prefix, <-chan struct{}, error) {
	var lift []netip.Prefix
	if all {
		lift = d.ledger.Overlapping(netip.MustParsePrefix("0.0.0.0/0"), nil)
		lift = append(lift, d.ledger.Overlapping(netip.MustParsePrefix("::/0"), nil)...)
	} else {
		lift = d.ledger.Overlapping(target, nil)
	}
	now := d.now()
	// The bans inside a wider one lifted, not overlapping target, go back
	// in force in the same transaction.
	var l lifts
	if len(lift) > 0 {
		if !all {
			l.back = d.coveredInside(lift, func(*bans.Record) bool { return true }, now)
		}
		for _, p := range lift {
			for _, ports := range d.profiles() {
				l.unban = append(l.unban, firewall.Lift{Prefix: p, Ports: ports})
			}
		}
		if err := d.applyLifts(ctx, &l); err != nil {
			d.fwErrors++
			return nil, nil, fmt.Errorf("unban: %w", err)
		}
	}
	d.keepLifted(lift, all)
	for _, p := range lift {
		d.unbanned(p, UnbanManual, "manual")
		d.eng.Forget(p)
	}
	d.putBack(ctx, &l, now, lift...)
	if target.IsValid() {
		d.eng.Forget(target)
	}
	if len(lift) == 0 {
		return nil, nil, nil
	}
	d.bansDirty = true
	return lift, d.durable(), nil
}

// profiles returns the firewall's ports profiles: the default ("") and
// those of the rules with ports of their own, set up at start.
func (d *Daemon) profiles() []string {
	out := []string{""}
	for _, ports := range d.cfg.RulePorts {
		if !slices.Contains(out, ports) {
			out = append(out, ports)
		}
	}
	return out
}

// longerHere returns a record of this node's own (a rule's, a person's)
// of target p in force past until, in the default ports (those a manual
// ban drops): a manual ban shorter than it is not needed, and that one
// is kept. Another origin's record is not enough: a peer's lift, or a
// feed's entry leaving, would take the person's ban with it; the
// manual ban is recorded beside it (the kernel holds the longest).
func (d *Daemon) longerHere(p netip.Prefix, until, now time.Time) (*bans.Record, bool) {
	for _, r := range d.ledger.RecordsOf(p) {
		if r.Origin.Local() && r.Ports == "" && r.InForce(now) && r.Expires.After(until) {
			return r, true
		}
	}
	return nil, false
}

// ImportEntry is one ban of an import.
type ImportEntry struct {
	Target netip.Prefix
	For    time.Duration // 0: [daemon] manual_ban_time
	Reason string
}

// Imported reports an import.
type Imported struct {
	Banned  int
	Renewed int      // banned before; expiry set anew
	Kept    int      // banned before, for longer: that ban kept
	Covered int      // of Banned and Renewed, inside a wider ban in force
	Refused []string // entries not banned, with why
}

// manualImport makes manual bans of every acceptable entry in one firewall
// transaction. An entry is refused, with the reason, when it is
// allowlisted or special-purpose (bans.Special), asks for longer than
// bans.MaxDuration, or lies inside a wider entry of the same import; a
// network entry replaces the narrower network bans inside it, and one
// inside a wider ban in force is recorded beside it, as `sipguard ban`
// does. Observers are not told of each entry: an
// import is one log line.
func (d *Daemon) manualImport(ctx context.Context, entries []ImportEntry) (Imported, <-chan struct{}, error) {
	res := Imported{Refused: []string{}}
	now := d.now()
	var ok []ImportEntry
	for _, e := range entries {
		if e.For <= 0 {
			e.For = d.cfg.ManualBanTime
		}
		e.Reason = bans.CleanReason(e.Reason)
		if a := d.allowed(e.Target); a.IsValid() {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: allowlisted (%s)", bans.String(e.Target), a))
			continue
		}
		if bans.TooWide(e.Target) {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: wider than /%d (IPv4) or /%d (IPv6)", bans.String(e.Target), bans.MinBits4, bans.MinBits6))
			continue
		}
		if why, bad := bans.Special(e.Target); bad {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: %s, never banned", bans.String(e.Target), why))
			continue
		}
		if e.For > bans.MaxDuration {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: %s is longer than the longest ban, %s",
				bans.String(e.Target), duration.Format(e.For), duration.Format(bans.MaxDuration)))
			continue
		}
		if _, ok := d.longerHere(e.Target, now.Add(e.For), now); ok {
			res.Kept++
			continue
		}
		ok = append(ok, e)
	}
	// Wider networks first, so that an entry inside another is found.
	slices.SortStableFunc(ok, func(a, b ImportEntry) int { return a.Target.Bits() - b.Target.Bits() })
	accepted := bans.NewIndex()
	var recs []*bans.Record
	for _, e := range ok {
		if accepted.Has(e.Target) {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: listed twice", bans.String(e.Target)))
			continue
		}
		if !bans.IsHost(e.Target) && accepted.Contains(e.Target) {
			res.Refused = append(res.Refused, fmt.Sprintf("%s: inside another entry", bans.String(e.Target)))
			continue
		}
		accepted.Add(e.Target)
		recs = append(recs, &bans.Record{Target: e.Target, Origin: bans.ByHand, Reason: e.Reason, Since: now, Expires: now.Add(e.For)})
	}
	if len(recs) == 0 {
		return res, nil, nil
	}
	plan := d.ledger.Plan(recs, now)
	if err := d.enforce(ctx, plan, now); err != nil {
		d.fwErrors++ // as manualBan: nothing done, the bans inside in force still
		return Imported{}, nil, fmt.Errorf("import: %w", err)
	}
	// The entries inside a wider ban in force are recorded as manualBan
	// records them: out of the kernel until that one goes. (Plan finds no
	// entry inside another: those were refused above.)
	res.Covered = len(plan.Covered)
	for _, r := range append(plan.Enforce, plan.Covered...) {
		if d.ledger.UntilIn(r.Target, "", now).IsZero() {
			res.Banned++
		} else {
			res.Renewed++
		}
		d.ledger.Put(r)
		d.eng.Banned(r.Target, now, r.Expires.Sub(now))
		d.share(r)
	}
	d.bansDirty = true
	d.log.Info().Int("banned", res.Banned).Int("renewed", res.Renewed).Int("kept", res.Kept).Int("covered", res.Covered).
		Int("refused", len(res.Refused)).Msg("import")
	return res, d.durable(), nil
}
