package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/firewall"
)

// The allowlist ([allow] and allow.self, cfg.Engine.Allow, and the
// trunks' addresses and networks, trunkAllow: see trunks.go) is never
// banned, whatever decides the ban:
//
//   - the engine never counts an allowlisted address and narrows a rule's
//     IPv6 network ban that would cover one to the attacker's address;
//   - each other origin refuses such a ban in its own words (manual bans
//     and imports, feeds, the cluster's bans);
//   - the queue of decisions (rules, the cluster) drops any that covers it
//     before planning (a wider ban would replace the narrower ones inside
//     it first), and ban, the one way bans reach the firewall, refuses any
//     that gets there all the same;
//   - bans made before an address was allowlisted are lifted, or
//     narrowed, at start and on reload (fitAllow);
//   - the firewall accepts the allowlist's packets ahead of every drop
//     (Backend.SetAllow), at start and on reload.

// UnbanAllowed is the unban reason of a ban lifted because it covers an
// allowlisted address (allowlisted after the ban was made).
const UnbanAllowed = "allowlisted"

// allowed returns the allowlist entry that p overlaps, if any: a ban must
// never cover an allowed address. p is read as the firewall reads it: an
// IPv4-mapped network is the IPv4 network it denotes.
func (d *Daemon) allowed(p netip.Prefix) netip.Prefix {
	if q, err := firewall.Normalize(p); err == nil {
		p = q
	}
	for _, list := range [][]netip.Prefix{d.cfg.Engine.Allow, d.trunkAllow} {
		for _, a := range list {
			if a.Overlaps(p) {
				return a
			}
		}
	}
	return netip.Prefix{}
}

// guardError refuses a ban at the last guard: it covers an allowlisted
// address, or special-purpose addresses (bans.Special).
type guardError struct {
	Prefix netip.Prefix
	Why    string // "covers allowlisted 192.0.2.1/32", "is link-local (fe80::/10)"
}

func (e *guardError) Error() string { return e.Prefix.String() + " " + e.Why }

// refused returns a *guardError when a ban of p must be refused: it
// covers an allowlisted address, or special-purpose addresses that no
// ban may cover (bans.Special: loopback, link-local, ...); it logs and
// counts the refusal. Every origin refuses these before: this is the
// last guard.
func (d *Daemon) refused(p netip.Prefix) error {
	if a := d.allowed(p); a.IsValid() {
		d.allowRefused++
		d.log.Warn().Str(fieldPrefix, p.String()).Str("allow", a.String()).
			Msg("ban refused: it covers an allowlisted address")
		return &guardError{Prefix: p, Why: "covers allowlisted " + a.String()}
	}
	if why, bad := bans.Special(p); bad {
		d.specialRefused++
		d.log.Error().Str(fieldPrefix, p.String()).Str(fieldReason, why).
			Msg("ban refused: special-purpose addresses are never banned")
		return &guardError{Prefix: p, Why: "is " + why}
	}
	return nil
}

// ban puts bans in force in the firewall.
func (d *Daemon) ban(ctx context.Context, bs ...firewall.Ban) error { return d.change(ctx, nil, bs...) }

// change lifts lift and puts bs in force in one firewall transaction
// (firewall.Backend.Change): the one way bans of every origin reach the
// firewall, so it is the last guard of the allowlist and of the
// special-purpose addresses. Should a ban that covers either get here,
// the call is refused with a *guardError, nothing is done, and it is
// logged and counted.
func (d *Daemon) change(ctx context.Context, lift []firewall.Lift, bs ...firewall.Ban) error {
	for _, b := range bs {
		if err := d.refused(b.Prefix); err != nil {
			return err
		}
	}
	return d.fw.Change(ctx, lift, bs...)
}

// setAllow loads the allowlist, the trunks' addresses included, into the
// firewall.
func (d *Daemon) setAllow(ctx context.Context) error {
	if err := d.fw.SetAllow(ctx, d.allowlist()); err != nil {
		d.fwErrors++
		return fmt.Errorf("load the allowlist into the firewall: %w", err)
	}
	return nil
}

// fit is a ban in force that covers an allowlisted address: old is lifted
// and, when not nil, narrow takes its place.
type fit struct {
	old, narrow *bans.Record
	allow       netip.Prefix
}

// misfits returns the bans in force at now that cover an allowlisted
// address: made before it was allowlisted, or by an older sipguard. A
// rule's network ban is narrowed to the address that caused it, as the
// engine bans it now, unless that address is allowlisted itself or
// banned already for as long; every other ban is lifted.
func (d *Daemon) misfits(now time.Time) []fit {
	var out []fit
	d.ledger.Targets(func(r *bans.Record) bool {
		a := d.allowed(r.Target)
		if !a.IsValid() || !r.InForce(now) {
			return true
		}
		f := fit{old: r, allow: a}
		if r.Origin == bans.ByRule && r.Addr.IsValid() && r.Target.Contains(r.Addr) {
			host := bans.Host(r.Addr)
			held, ok := d.ledger.GetIn(host, r.Ports)
			if !d.allowed(host).IsValid() && (!ok || held.Expires.Before(r.Expires)) {
				n := *r
				n.Target = host
				n.Reason += "; the address alone: " + r.Target.String() + " holds an allowlisted address"
				f.narrow = &n
			}
		}
		out = append(out, f)
		return true
	})
	return out
}

// fitted records fits done: the old bans lifted, the narrowed ones held
// (and counted by the engine as bans in force).
func (d *Daemon) fitted(fits []fit, now time.Time) {
	for _, f := range fits {
		d.unbanned(f.old.Target, UnbanAllowed, "it covers allowlisted "+f.allow.String())
		if f.narrow == nil {
			continue
		}
		d.ledger.Put(f.narrow)
		d.eng.Banned(f.narrow.Target, now, f.narrow.Expires.Sub(now))
		d.log.Info().Str(fieldIP, f.narrow.Addr.String()).Str("network", f.old.Target.String()).Str("allow", f.allow.String()).
			Msg("ban narrowed to the address: its network holds an allowlisted address")
	}
	if len(fits) > 0 {
		d.bansDirty = true
	}
}

// fitAllow lifts or narrows the bans in force that cover the allowlist,
// in the firewall and the ledger (after a reload changed it).
func (d *Daemon) fitAllow(ctx context.Context) error {
	now := d.now()
	fits := d.misfits(now)
	if len(fits) == 0 {
		return nil
	}
	var lift []netip.Prefix
	var put []firewall.Ban
	seen := map[netip.Prefix]bool{}
	for _, f := range fits {
		if !seen[f.old.Target] { // a target's records in several profiles
			seen[f.old.Target] = true
			lift = append(lift, f.old.Target)
		}
		if f.narrow != nil {
			put = append(put, firewall.Ban{Prefix: f.narrow.Target, Timeout: f.narrow.Expires.Sub(now), Ports: f.narrow.Ports})
		}
	}
	// One transaction: the bans lifted, the addresses they narrow to, and
	// the bans inside the networks lifted that those held. Should it
	// fail, the lifts go first on their own: the allowlist wins over the
	// bans, which follow, and are retried if they fail.
	l := lifts{back: d.coveredInside(lift, func(*bans.Record) bool { return true }, now)}
	for _, p := range lift {
		for _, ports := range d.profiles() {
			l.unban = append(l.unban, firewall.Lift{Prefix: p, Ports: ports})
		}
	}
	err := d.change(ctx, l.unban, append(put, l.back...)...)
	if err == nil {
		d.fitted(fits, now)
		d.putBack(ctx, &l, now, lift...)
		return nil
	}
	d.fwErrors++
	d.log.Warn().Err(err).Int("bans", len(lift)).Msg("bans covering the allowlist not refitted in one transaction: lifting them first")
	if err := d.fw.Unban(ctx, lift...); err != nil {
		d.fwErrors++
		return fmt.Errorf("lift %d bans covering the allowlist: %w", len(lift), err)
	}
	if err = d.ban(ctx, put...); err != nil {
		d.fwErrors++
		err = fmt.Errorf("narrow %d bans covering the allowlist: %w", len(put), err)
		for i := range fits {
			fits[i].narrow = nil // lifted all the same
		}
	}
	d.fitted(fits, now)
	for _, f := range fits {
		d.uncover(ctx, f.old.Target, now)
	}
	return err
}
