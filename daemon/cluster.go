package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/engine"
)

// Fleet is the fleet the daemon belongs to, as it sees it: a cluster.Node.
// Its methods must return at once.
type Fleet interface {
	Publish(cluster.Ban)              // share a ban of this node, if its rule is shared
	PublishLifted(cluster.Ban)        // say this node's ban was lifted by a cluster unban
	PublishUnban(cluster.Unban) error // lift a ban everywhere
	Servers() []netip.Addr            // the fleet's servers: never banned for the fleet
	Status() control.ClusterStatus
}

// Join makes the daemon a node of fleet. escalate: bans of other nodes
// count as offences for escalation here. Call it before Run.
func (d *Daemon) Join(fleet Fleet, escalate bool) {
	d.fleet, d.fleetEscalate = fleet, escalate
}

// UnbanCluster is the reason of unbans by `sipguard unban --cluster` on
// another node, or by a ban's origin lifting it.
const UnbanCluster = "cluster"

// maxSkew is how far ahead of this node's clock a fleet ban may start.
const maxSkew = 5 * time.Minute

// maxClusterUnbans bounds the cluster unbans remembered: they are rare
// acts of people.
const maxClusterUnbans = 1000

// clusterUnban is a cluster unban remembered, so that an older ban of its
// target arriving late (from a node that was away) is not enforced again.
type clusterUnban struct {
	at, until time.Time
}

// Apply enforces other nodes' updates (cluster.Local).
func (d *Daemon) Apply(ctx context.Context, updates []cluster.Update) (map[string]int, error) {
	var res map[string]int
	err := d.call(ctx, func() { res = d.applyFleet(ctx, updates) })
	return res, err
}

// Own returns the bans in force this node decided and shares
// (cluster.Local).
func (d *Daemon) Own(ctx context.Context) ([]cluster.Ban, error) {
	var out []cluster.Ban
	err := d.call(ctx, func() {
		now := d.now()
		for _, r := range d.bans {
			if r.Origin == "" && r.Expires.After(now) && !strings.HasPrefix(r.Rule, feedRulePrefix) && r.Rule != adoptedRule {
				out = append(out, r.fleet())
			}
		}
	})
	return out, err
}

func (r *banRecord) fleet() cluster.Ban {
	return cluster.Ban{
		Target: r.Target, Rule: r.Rule, Reason: r.Reason, Origin: r.Origin, Since: r.Since, Expires: r.Expires,
		Count: r.Count, Offences: r.Offences,
	}
}

// applyFleet runs on the core goroutine: the bans join the pending ones
// and go to the firewall in one transaction.
func (d *Daemon) applyFleet(ctx context.Context, updates []cluster.Update) map[string]int {
	res := map[string]int{}
	now := d.now()
	d.pruneClusterUnbans(now)
	for _, u := range updates {
		switch u.Kind {
		case cluster.UpdateBan:
			res[d.fleetBan(u.Ban, now)]++
		case cluster.UpdateLifted:
			res[d.fleetLifted(ctx, u.Ban)]++
		case cluster.UpdateUnban:
			res[d.fleetUnban(ctx, u.Unban, now)]++
		}
	}
	d.flush(ctx)
	return res
}

// fleetBan queues another node's ban, unless this node allows the address,
// bans it already for longer, or a cluster unban lifted it.
func (d *Daemon) fleetBan(b cluster.Ban, now time.Time) string {
	if !b.Expires.After(now) {
		return "expired"
	}
	if b.Since.After(now.Add(maxSkew)) {
		// A start in the future would escape cluster unbans.
		d.log.Warn().Str(fieldPrefix, b.Target.String()).Str(fieldOrigin, b.Origin).Time("since", b.Since).
			Msg("fleet ban ignored: it starts in the future (clock of its origin?)")
		return "future"
	}
	if a := d.allowed(b.Target); a.IsValid() {
		d.log.Info().Str(fieldPrefix, b.Target.String()).Str(fieldOrigin, b.Origin).Str("allow", a.String()).
			Msg("fleet ban ignored: allowlisted here")
		return "allowlisted"
	}
	if d.fleet != nil {
		for _, s := range d.fleet.Servers() {
			if b.Target.Contains(s) {
				d.log.Warn().Str(fieldPrefix, b.Target.String()).Str(fieldOrigin, b.Origin).Str("server", s.String()).
					Msg("fleet ban ignored: it would cut this node off the fleet's server")
				return "server"
			}
		}
	}
	for t, cu := range d.clusterUnbans {
		if t.Overlaps(b.Target) && !b.Since.After(cu.at) {
			return "unbanned"
		}
	}
	if r, ok := d.bans[b.Target]; ok && !r.Expires.Before(b.Expires) {
		return "known"
	}
	if _, ok := d.covering(b.Target, now); ok {
		return "known"
	}
	var addr netip.Addr
	if isHost(b.Target) {
		addr = b.Target.Addr()
	}
	timeout := b.Expires.Sub(now)
	d.pending = append(d.pending, decision{
		ban: engine.Ban{
			Prefix: b.Target, Addr: addr, Rule: b.Rule, Count: b.Count, Offences: b.Offences,
			First: b.Since, Last: b.Since, Duration: b.Expires.Sub(b.Since),
		},
		at: now, timeout: timeout, reason: b.Reason, origin: b.Origin,
	})
	if d.fleetEscalate {
		d.eng.Banned(b.Target, now, timeout)
	}
	return "applied"
}

// fleetLifted lifts a ban its origin lifted.
func (d *Daemon) fleetLifted(ctx context.Context, b cluster.Ban) string {
	r, ok := d.bans[b.Target]
	if !ok || r.Origin != b.Origin || r.Since.After(b.Since) {
		return "not_held"
	}
	if err := d.fw.Unban(ctx, b.Target); err != nil {
		d.fwErrors++
		d.log.Error().Err(err).Str(fieldPrefix, b.Target.String()).Msg("fleet unban failed")
		return "failed"
	}
	d.unbanned(b.Target, UnbanCluster, "lifted by "+b.Origin)
	return "applied"
}

// fleetUnban lifts the bans overlapping u.Target made before it, this
// node's own ones included, and forgets their offences.
func (d *Daemon) fleetUnban(ctx context.Context, u cluster.Unban, now time.Time) string {
	if u.Until.After(now) && len(d.clusterUnbans) < maxClusterUnbans {
		d.clusterUnbans[u.Target] = clusterUnban{at: u.Time, until: u.Until}
	}
	lifted, err := d.liftBefore(ctx, u.Target, u.Time, "cluster unban from "+u.Origin)
	if err != nil {
		return "failed"
	}
	if lifted == 0 {
		return "nothing_to_unban"
	}
	return "applied"
}

// liftBefore lifts the bans overlapping target that began before t.
func (d *Daemon) liftBefore(ctx context.Context, target netip.Prefix, t time.Time, why string) (int, error) {
	var lift []netip.Prefix
	for p, r := range d.bans {
		if p.Overlaps(target) && !r.Since.After(t) {
			lift = append(lift, p)
		}
	}
	d.eng.Forget(target)
	if len(lift) == 0 {
		return 0, nil
	}
	if err := d.fw.Unban(ctx, lift...); err != nil {
		d.fwErrors++
		d.log.Error().Err(err).Str(fieldPrefix, target.String()).Msg("fleet unban failed")
		return 0, err
	}
	for _, p := range lift {
		r := d.bans[p]
		if r.Origin == "" && d.fleet != nil {
			d.fleet.PublishLifted(r.fleet()) // out of the stream too
		}
		d.unbanned(p, UnbanCluster, why)
		d.eng.Forget(p)
	}
	return len(lift), nil
}

// keepLifted remembers the other nodes' bans among lift, lifted here by a
// plain unban, so that reading the fleet's stream again (after a restart)
// does not bring them back. After an unban --all, one entry per family
// covers everything.
func (d *Daemon) keepLifted(lift []netip.Prefix, all bool) {
	now := d.now()
	var until time.Time
	for _, p := range lift {
		r := d.bans[p]
		if r == nil || r.Origin == "" {
			continue
		}
		if all {
			until = later(until, r.Expires)
			continue
		}
		d.clusterUnbans[p] = clusterUnban{at: now, until: later(r.Expires, d.clusterUnbans[p].until)}
	}
	if all && !until.IsZero() {
		for _, p := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			d.clusterUnbans[p] = clusterUnban{at: now, until: later(until, d.clusterUnbans[p].until)}
		}
	}
}

func (d *Daemon) pruneClusterUnbans(now time.Time) {
	for t, cu := range d.clusterUnbans {
		if !cu.until.After(now) {
			delete(d.clusterUnbans, t)
		}
	}
}

// clusterUnbanFor is how long the fleet must remember an unban of target:
// as long as a ban it lifts could still be in force somewhere, which this
// node judges from the bans it knows and its own longest ban.
func (d *Daemon) clusterUnbanFor(target netip.Prefix, now time.Time) time.Time {
	until := now.Add(max(d.cfg.ManualBanTime, time.Hour))
	for _, r := range d.cfg.Engine.Rules {
		until = later(until, now.Add(max(r.BanTime, r.MaxBanTime)))
	}
	for p, r := range d.bans {
		if p.Overlaps(target) {
			until = later(until, r.Expires)
		}
	}
	return until
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// share publishes a ban of this node to the fleet.
func (d *Daemon) share(r *banRecord) {
	if d.fleet != nil && r.Origin == "" {
		d.fleet.Publish(r.fleet())
	}
}

// clusterUnban lifts the bans of target here, and asks every node of the
// fleet to lift theirs: `sipguard unban --cluster`.
func (d *Daemon) clusterUnban(ctx context.Context, target netip.Prefix, all bool) (control.UnbanResponse, <-chan struct{}, error) {
	if d.fleet == nil {
		return control.UnbanResponse{}, nil, control.BadRequest("--cluster: this daemon has no [cluster]")
	}
	if all {
		return control.UnbanResponse{}, nil, control.BadRequest("--cluster takes an address or network, not --all")
	}
	now := d.now()
	u := cluster.Unban{Target: target, Time: now, Until: d.clusterUnbanFor(target, now)}
	if err := d.fleet.PublishUnban(u); err != nil {
		return control.UnbanResponse{}, nil, control.BadRequest("--cluster: %v", err)
	}
	var lift []string
	for p, r := range d.bans {
		if p.Overlaps(target) && !r.Since.After(now) {
			lift = append(lift, p.String())
		}
	}
	sort.Strings(lift)
	if _, err := d.liftBefore(ctx, target, now, "cluster unban"); err != nil {
		return control.UnbanResponse{}, nil, fmt.Errorf("unban: %w", err)
	}
	d.clusterUnbans[target] = clusterUnban{at: now, until: u.Until}
	d.log.Info().Str(fieldPrefix, target.String()).Time("until", u.Until).Int("lifted_here", len(lift)).
		Msg("cluster unban queued for the fleet")
	res := control.UnbanResponse{Result: control.AlreadyUnbanned, Unbanned: []string{}, Cluster: true}
	if len(lift) > 0 {
		res.Result, res.Unbanned = control.Unbanned, lift
	}
	d.bansDirty = true
	return res, d.durable(), nil
}

// fleetStatus is the cluster part of status, if any.
func (d *Daemon) fleetStatus() *control.ClusterStatus {
	if d.fleet == nil {
		return nil
	}
	st := d.fleet.Status()
	return &st
}
