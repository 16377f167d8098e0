package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/engine"
)

// Cluster is the cluster the daemon belongs to, as it sees it: a
// cluster.Node. Its methods must return at once.
type Cluster interface {
	Publish(cluster.Ban)              // share a ban of this node, if its rule is shared
	PublishLifted(cluster.Ban)        // say this node's ban was lifted by a cluster unban
	PublishUnban(cluster.Unban) error // lift a ban everywhere
	Servers() []netip.Addr            // the cluster's servers: never banned for a peer
	Stats() cluster.Stats
}

// Join makes the daemon a node of c. escalate: bans of other nodes count
// as offences for escalation here. Call it before Run.
func (d *Daemon) Join(c Cluster, escalate bool) {
	d.cluster, d.clusterEscalate = c, escalate
}

// PeerLimits bound what one peer of the cluster may hold here, so that a
// compromised node cannot ban the Internet, fill this node's memory, or
// keep its core busy: beyond them its bans are refused, counted (the
// cluster's ignored "limit") and logged at warning. Zero: no limit.
type PeerLimits struct {
	Bans      int // records held
	Networks  int // of them, networks
	Space4    int // IPv4 addresses covered
	Space6    int // IPv6 /64s covered
	PerMinute int // bans made, by their start, within a minute: a flood, not a catch-up of old bans
	Unbans    int // cluster unbans remembered (each lifts bans here and keeps them lifted)
}

// LimitPeers sets the limits of each peer's bans. Call it before Run.
func (d *Daemon) LimitPeers(l PeerLimits) { d.peerLimits = l }

// peerRate counts a peer's bans by the minute of their start.
type peerRate struct {
	minute int64
	n      int
}

// overLimit says which limit a peer's ban would break, if any; pending is
// what the peer's bans already queued in this batch add.
func (d *Daemon) overLimit(b cluster.Ban, pending bans.Usage, now time.Time) string {
	l := d.peerLimits
	origin := bans.FromPeer(b.Origin)
	if _, renew := d.ledger.Of(b.Target, origin); !renew {
		u := d.ledger.Usage(origin)
		v4, v6 := bans.Space(b.Target)
		network := 0
		if !bans.IsHost(b.Target) {
			network = 1
		}
		switch {
		case l.Bans > 0 && u.Records+pending.Records+1 > l.Bans:
			return fmt.Sprintf("more than %d bans", l.Bans)
		case l.Networks > 0 && u.Networks+pending.Networks+network > l.Networks:
			return fmt.Sprintf("more than %d networks", l.Networks)
		case l.Space4 > 0 && u.Space4+pending.Space4+v4 > uint64(l.Space4):
			return fmt.Sprintf("more than %d IPv4 addresses", l.Space4)
		case l.Space6 > 0 && u.Space6+pending.Space6+v6 > uint64(l.Space6):
			return fmt.Sprintf("more than %d IPv6 /64s", l.Space6)
		}
	}
	if l.PerMinute > 0 && now.Sub(b.Since) < time.Minute {
		minute := b.Since.Unix() / 60
		r := d.peerRate[b.Origin]
		if r.minute != minute {
			r = peerRate{minute: minute}
		}
		if r.n >= l.PerMinute {
			return fmt.Sprintf("more than %d bans a minute", l.PerMinute)
		}
		r.n++
		d.peerRate[b.Origin] = r
	}
	return ""
}

// warnLimit logs a peer's refused bans, once a minute per peer and limit.
func (d *Daemon) warnLimit(node, why string, now time.Time) {
	d.warnPeer(node, why, now, "cluster bans refused: the peer is over its limit ([cluster] max_peer_*); a compromised node?")
}

// warnPeer logs msg about a peer's messages, once a minute per peer and
// why: a hostile peer does not flood the log.
func (d *Daemon) warnPeer(node, why string, now time.Time, msg string) {
	key := node + "\x00" + why
	if last, ok := d.peerWarned[key]; ok && now.Sub(last) < time.Minute {
		return
	}
	if len(d.peerWarned) > 10000 {
		clear(d.peerWarned)
	}
	d.peerWarned[key] = now
	d.log.Warn().Str(fieldNode, node).Str(fieldReason, why).Msg(msg)
}

// UnbanCluster is the reason of unbans by `sipguard unban --cluster` on
// another node, or by a ban's origin lifting it.
const UnbanCluster = "cluster"

// maxSkew is how far ahead of this node's clock a peer's ban may start.
const maxSkew = 5 * time.Minute

// maxLifts bounds the cluster unbans remembered from all peers together
// (each peer's own share: PeerLimits.Unbans): they are rare acts of
// people.
const maxLifts = 1000

// longestBan is the longest ban this node makes, by its rules (escalation
// included) or by hand: other nodes' bans are held here no longer, and
// their unbans remembered no longer (a node with a clock in the year 9999
// bans nothing for ever here).
func (d *Daemon) longestBan() time.Duration {
	return max(d.cfg.Engine.LongestBan(), d.cfg.ManualBanTime, time.Hour)
}

// A turn of the core goroutine applies other nodes' updates, applyChunk
// at most, then enforces them in one firewall transaction. Local work
// goes first: a turn ends as soon as a batch of the log's lines or a call
// (the control socket) waits (localWaiting), and the loop takes the
// log's batches before the next turn; so a local ban waits at most for
// the rest of the turn under way, most of which is the transaction. A
// turn lasts about applyTurn in all: the updates taken are budgeted with
// what enforcing each cost in the turns before (flushCost), which is most
// of a turn (the firewall, the ledger, the observers), not only with the
// time taking them took. After a turn, the core rests from other nodes'
// work peerRest times as long as the turn took.
const (
	applyTurn  = 125 * time.Microsecond
	applyChunk = 500
)

// peerRest is how long the core rests from other nodes' work after a turn
// of it, in turns: a flood of the fleet's bans has the core, the firewall
// and the CPU a fifth of the time at most. Most local bans then come
// while they are idle, rather than in the middle of a turn or of its
// transaction, and the kernel's rare slow transactions (1-4 ms, 1 in 250,
// whatever their size) are spread over five times as long, so that fewer
// local bans meet one. Measured (TestPeerFloodLocalLatencyKernel, 2
// cores, 2026-12-04), a local ban's p50/p90/p99 during a flood of 100,000
// bans went from 243-271/718-764/1900-2840 µs to 72-81/155-191/344-480
// µs, what they are without the flood (71-92/158-201/502-2350), and the
// flood from 63,000-83,000 bans a second to 11,000-13,600: 100,000 bans
// take 7-9 s to enforce instead of 1.2-1.6 s. Turns of 125 µs rather
// than 250 halve a local ban's wait when it does meet one, for a fifth
// of the throughput; without the rest they did no better, the turns
// following each other. An update after a pause hardly waits: the rest
// is four times the last turn, half a millisecond or so.
const peerRest = 4

// pace spreads other nodes' work over time (peerRest). Apply's callers
// share it.
type pace struct {
	mu   sync.Mutex
	next time.Time // the earliest start of the next turn (monotonic)
}

// wait waits until the next turn may start.
func (p *pace) wait(ctx context.Context) error {
	p.mu.Lock()
	w := time.Until(p.next)
	p.mu.Unlock()
	if w <= 0 {
		return nil
	}
	t := time.NewTimer(w)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxRest bounds the rest: a turn is long when the firewall is slow (a
// stall, a transaction of thousands), and other nodes' bans must not
// wait seconds for it.
const maxRest = 5 * time.Millisecond

// rest owes the rest after a turn that took took.
func (p *pace) rest(took time.Duration) {
	p.mu.Lock()
	p.next = time.Now().Add(min(peerRest*took, maxRest))
	p.mu.Unlock()
}

// flushCost estimates what enforcing one peer's ban costs, from the turns
// before: a moving average, starting at 5 µs.
type flushCost struct{ perBan time.Duration }

func (f *flushCost) estimate(bans int) time.Duration {
	if f.perBan == 0 {
		f.perBan = 5 * time.Microsecond
	}
	return time.Duration(bans) * f.perBan
}

// observe folds in one turn: took to enforce n bans.
func (f *flushCost) observe(took time.Duration, n int) {
	if n < 16 {
		return // too few to say much
	}
	f.perBan = (3*f.perBan + took/time.Duration(n)) / 4
}

// Apply enforces other nodes' updates (cluster.Local).
func (d *Daemon) Apply(ctx context.Context, updates []cluster.Update) (map[string]int, error) {
	res := map[string]int{}
	defer func() {
		// One line per batch of the cluster's, not per turn. Refused:
		// every other outcome (allowlisted, special, overlaps, not_held,
		// ...), of bans, lifts and unbans alike.
		refused := 0
		for why, k := range res {
			if why != "applied" && why != "known" && why != "limit" {
				refused += k
			}
		}
		if res["applied"] > 0 || res["limit"] > 0 {
			d.log.Info().Int("applied", res["applied"]).Int("known", res["known"]).Int("over_limit", res["limit"]).
				Int("refused", refused).Msg("cluster bans")
		}
	}()
	for len(updates) > 0 {
		if err := d.peerPace.wait(ctx); err != nil {
			return res, err
		}
		var took time.Duration
		if err := d.callRemote(ctx, func() {
			start := time.Now()
			n := 0
			for why, k := range d.applyCluster(ctx, updates[:min(len(updates), applyChunk)], &n) {
				res[why] += k
			}
			updates = updates[n:]
			took = time.Since(start)
		}); err != nil {
			return res, err
		}
		d.peerPace.rest(took)
	}
	return res, nil
}

// Own returns the bans in force this node decided and shares
// (cluster.Local).
func (d *Daemon) Own(ctx context.Context) ([]cluster.Ban, error) {
	var out []cluster.Ban
	err := d.callRemote(ctx, func() {
		now := d.now()
		d.ledger.All(func(r *bans.Record) bool {
			if r.Origin.Local() && r.InForce(now) {
				out = append(out, clusterBan(r))
			}
			return true
		})
	})
	return out, err
}

// clusterBan is a record as the cluster carries it.
func clusterBan(r *bans.Record) cluster.Ban {
	return cluster.Ban{
		Target: r.Target, Rule: r.Label(), Reason: r.Reason, Origin: r.Node(), Since: r.Since, Expires: r.Expires,
		Count: r.Count, Offences: r.Offences,
	}
}

// applyCluster runs on the core goroutine: the bans join the pending ones
// and go to the firewall in one transaction. It stops after applyTurn, or
// as soon as local work waits, having applied *done of updates (one at
// least).
func (d *Daemon) applyCluster(ctx context.Context, updates []cluster.Update, done *int) map[string]int {
	res := map[string]int{}
	start := time.Now()
	now := d.now()
	d.ledger.Forget(now)
	pending := map[string]*bans.Usage{}
	nbans := 0
	for i, u := range updates {
		if i > 0 && (d.localWaiting() || i%16 == 0 && time.Since(start)+d.peerFlush.estimate(nbans) > applyTurn) {
			break
		}
		*done = i + 1
		switch u.Kind {
		case cluster.UpdateBan:
			nbans++
			p := pending[u.Ban.Origin]
			if p == nil {
				p = &bans.Usage{}
				pending[u.Ban.Origin] = p
			}
			_, renew := d.ledger.Of(u.Ban.Target, bans.FromPeer(u.Ban.Origin))
			why := d.peerBan(u.Ban, *p, now)
			res[why]++
			if queued := why == "applied" || why == "known"; queued && !renew {
				p.Records++
				v4, v6 := bans.Space(u.Ban.Target)
				p.Space4, p.Space6 = p.Space4+v4, p.Space6+v6
				if !bans.IsHost(u.Ban.Target) {
					p.Networks++
				}
			}
		case cluster.UpdateLifted:
			res[d.peerLifted(ctx, u.Ban)]++
		case cluster.UpdateUnban:
			res[d.peerUnban(ctx, u.Unban, now)]++
		}
	}
	flushed := time.Now()
	d.flush(ctx)
	d.peerFlush.observe(time.Since(flushed), nbans)
	return res
}

// peerBan queues another node's ban as that node's record of its target,
// unless this node allows the address, it is special-purpose
// (bans.Special), or a cluster unban lifted it. The record joins this
// node's own and other peers' (the ban in force is their union): it
// never replaces them, and its origin's lift removes it alone. "known":
// the target is banned here for at least as long already.
func (d *Daemon) peerBan(b cluster.Ban, pending bans.Usage, now time.Time) string {
	if !b.Expires.After(now) {
		return "expired"
	}
	if b.Since.After(now.Add(maxSkew)) {
		// A start in the future would escape cluster unbans.
		d.log.Warn().Str(fieldPrefix, b.Target.String()).Str(fieldNode, b.Origin).Time("since", b.Since).
			Msg("cluster ban ignored: it starts in the future (clock of its origin?)")
		return "future"
	}
	if a := d.allowed(b.Target); a.IsValid() {
		d.log.Info().Str(fieldPrefix, b.Target.String()).Str(fieldNode, b.Origin).Str("allow", a.String()).
			Msg("cluster ban ignored: allowlisted here")
		return "allowlisted"
	}
	if why, bad := bans.Special(b.Target); bad {
		d.log.Warn().Str(fieldPrefix, b.Target.String()).Str(fieldNode, b.Origin).Str(fieldReason, why).
			Msg("cluster ban ignored: special-purpose addresses are never banned")
		return "special"
	}
	if d.cluster != nil {
		for _, s := range d.cluster.Servers() {
			if b.Target.Contains(s) {
				d.log.Warn().Str(fieldPrefix, b.Target.String()).Str(fieldNode, b.Origin).Str("server", s.String()).
					Msg("cluster ban ignored: it would cut this node off the cluster's server")
				return "server"
			}
		}
	}
	if d.ledger.Lifted(b.Target, b.Since) {
		return "unbanned"
	}
	if longest := now.Add(d.longestBan()); b.Expires.After(longest) {
		d.warnPeer(b.Origin, "ban too long", now, "cluster ban shortened to this node's longest ban (rules, manual_ban_time)")
		b.Expires = longest
	}
	// Covered by a wider ban in force: recorded all the same (flush), so
	// that it is enforced when that one goes, whoever made it.
	_, covered := d.ledger.Covering(b.Target, "", now)
	if d.othersInside(b.Target, bans.FromPeer(b.Origin), now) {
		// The kernel holds no overlapping networks: the wider ban would
		// take their place there, and when it ended they would come back
		// only after it (coverSlack): a gap that a node could open again
		// and again.
		d.warnPeer(b.Origin, "overlaps", now, "cluster ban ignored: a network ban of this node or another node lies inside it")
		return "overlaps"
	}
	if why := d.overLimit(b, pending, now); why != "" {
		d.warnLimit(b.Origin, why, now)
		return "limit"
	}
	result := "applied"
	if covered || !d.ledger.UntilIn(b.Target, "", now).Before(b.Expires) {
		result = "known"
	}
	var addr netip.Addr
	if bans.IsHost(b.Target) {
		addr = b.Target.Addr()
	}
	timeout := b.Expires.Sub(now)
	held, _ := d.ledger.Of(b.Target, bans.FromPeer(b.Origin))
	renewal := held != nil && held.InForce(now)
	d.pending = append(d.pending, decision{
		ban: engine.Ban{
			Prefix: b.Target, Addr: addr, Rule: b.Rule, Count: b.Count, Offences: b.Offences,
			First: b.Since, Last: b.Since, Duration: b.Expires.Sub(b.Since),
		},
		origin: bans.FromPeer(b.Origin), at: now, timeout: timeout, reason: bans.CleanReason(b.Reason),
	})
	if d.clusterEscalate && !renewal {
		// One offence per ban, not per message: a node that sends its ban
		// again and again would escalate this node's next ban of the
		// address at will.
		d.eng.Banned(b.Target, now, timeout)
	}
	return result
}

// othersInside reports whether a network ban of the default ports inside
// the network p, in force at now and in the kernel (not covered), holds a
// record of another origin than o: a ban of p would replace it.
// Addresses are never replaced (they live in sets of their own), nor bans
// of a rule's own ports.
func (d *Daemon) othersInside(p netip.Prefix, o bans.Origin, now time.Time) bool {
	for _, q := range d.ledger.Inside(p) {
		if _, covered := d.ledger.Covering(q, "", now); covered {
			continue // not in the kernel, not replaced: it stays covered (Plan)
		}
		for _, r := range d.ledger.RecordsOf(q) {
			if r.Ports == "" && r.Origin != o && r.InForce(now) {
				return true
			}
		}
	}
	return false
}

// peerLifted lifts the record of its target a peer lifted: its own only.
// The target stays banned as long as another origin's record (this
// node's, another peer's) wants it.
func (d *Daemon) peerLifted(ctx context.Context, b cluster.Ban) string {
	origin := bans.FromPeer(b.Origin)
	r, ok := d.ledger.Of(b.Target, origin)
	if !ok || r.Since.After(b.Since) {
		return "not_held"
	}
	if _, err := d.liftRecords(ctx, b.Target, func(r *bans.Record) bool { return r.Origin == origin }, UnbanCluster, "lifted by "+b.Origin); err != nil {
		d.log.Error().Err(err).Str(fieldPrefix, b.Target.String()).Msg("cluster unban failed")
		return "failed"
	}
	if d.clusterEscalate {
		// The engine was told of the ban (peerBan): it ends now, or with
		// the records left.
		now := d.now()
		d.eng.Lifted(b.Target, later(now, d.ledger.Until(b.Target, now)))
	}
	return "applied"
}

// peerUnban lifts the bans overlapping u.Target made before it, this
// node's own ones included, and forgets their offences. A peer's unbans
// are bounded as its bans are: in time (none in the future, none
// remembered longer than this node's longest ban), in width (no wider
// than a manual ban may be without --force) and in number (PeerLimits.Unbans).
func (d *Daemon) peerUnban(ctx context.Context, u cluster.Unban, now time.Time) string {
	switch {
	case u.Time.After(now.Add(maxSkew)):
		// It would lift bans made after it, until then: an immunity.
		d.warnPeer(u.Origin, "future unban", now, "cluster unban refused: it is dated in the future (clock of its origin?)")
		return "future"
	case bans.TooWide(u.Target):
		d.warnPeer(u.Origin, "wide unban", now, "cluster unban refused: its network is too wide")
		return "too_wide"
	case d.peerLimits.Unbans > 0 && d.ledger.LiftsOf(u.Origin) >= d.peerLimits.Unbans:
		if _, known := d.ledger.Remembered(u.Target); !known {
			d.warnPeer(u.Origin, "unbans", now, fmt.Sprintf(
				"cluster unban refused: the node has %d unbans in force ([cluster] max_peer_unbans); a compromised node?", d.peerLimits.Unbans))
			return "limit"
		}
	}
	at := u.Time
	if at.After(now) {
		at = now
	}
	until := u.Until
	if longest := now.Add(d.longestBan()); until.After(longest) {
		until = longest
	}
	if until.After(now) && d.ledger.NumLifts() < maxLifts {
		d.ledger.Remember(u.Target, bans.Lift{At: at, Until: until, Origin: u.Origin})
	}
	lifted, err := d.liftBefore(ctx, u.Target, at, "cluster unban from "+u.Origin)
	if err != nil {
		return "failed"
	}
	if lifted == 0 {
		return "nothing_to_unban"
	}
	return "applied"
}

// liftBefore lifts the records of the bans overlapping target that began
// at or before t, of every origin (a cluster unban is an act of people:
// it lifts this node's own bans too). A record made after t stays. It is
// one firewall transaction, the bans inside a network lifted that go
// back in force included (coveredInside): lifted one target at a time,
// the first put the bans inside it back and each then took one of its
// own to go (4,001 for a /16 holding 4,000 networks).
func (d *Daemon) liftBefore(ctx context.Context, target netip.Prefix, t time.Time, why string) (int, error) {
	before := func(r *bans.Record) bool { return !r.Since.After(t) }
	lift := d.ledger.Overlapping(target, before)
	d.eng.Forget(target)
	if len(lift) == 0 {
		return 0, nil
	}
	now := d.now()
	var l lifts
	rest := make([]*bans.Record, len(lift))
	for i, p := range lift {
		rest[i] = d.ledger.Without(p, before)
		// A target covered by another lifted here is not in the kernel:
		// nothing to lift there; its records left go back (coveredInside).
		d.planLift(&l, p, before, now)
	}
	if len(l.unban) > 0 {
		l.back = d.coveredInside(lift, before, now)
	}
	if err := d.applyLifts(ctx, &l); err != nil {
		d.fwErrors++
		d.log.Error().Err(err).Str(fieldPrefix, target.String()).Msg("cluster unban failed")
		return 0, err
	}
	for i, p := range lift {
		for _, r := range d.liftedRecords(p, before, rest[i], now, UnbanCluster, why) {
			if r.Origin.Local() && d.cluster != nil {
				d.cluster.PublishLifted(clusterBan(r)) // out of the stream too
			}
		}
		d.eng.Forget(p)
	}
	d.putBack(ctx, &l, now, lift...)
	return len(lift), nil
}

// keepLifted remembers the other nodes' bans among lift, lifted here by a
// plain unban, so that reading the cluster's stream again (after a
// restart) does not bring them back. After an unban --all, one entry per
// family covers everything.
func (d *Daemon) keepLifted(lift []netip.Prefix, all bool) {
	now := d.now()
	var until time.Time
	for _, p := range lift {
		for _, r := range d.ledger.RecordsOf(p) {
			if r.Origin.Kind != bans.Peer {
				continue
			}
			if all {
				until = later(until, r.Expires)
				continue
			}
			d.ledger.Remember(p, bans.Lift{At: now, Until: r.Expires})
		}
	}
	if all && !until.IsZero() {
		for _, p := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			d.ledger.Remember(p, bans.Lift{At: now, Until: until})
		}
	}
}

// clusterUnbanFor is how long the cluster must remember an unban of
// target: as long as a ban it lifts could still be in force somewhere,
// which this node judges from the bans it knows and its own longest ban.
func (d *Daemon) clusterUnbanFor(target netip.Prefix, now time.Time) time.Time {
	until := now.Add(d.longestBan())
	for _, p := range d.ledger.Overlapping(target, nil) {
		r, _ := d.ledger.Get(p)
		until = later(until, r.Expires)
	}
	return until
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// share publishes a ban of this node to the cluster.
//
// A ban of a rule's own ports is not shared: the cluster's messages carry
// no ports, and other nodes would drop the address on their default
// ports, which the rule's ports are meant to spare.
func (d *Daemon) share(r *bans.Record) {
	if d.cluster != nil && r.Origin.Local() && r.Ports == "" {
		d.cluster.Publish(clusterBan(r))
	}
}

// clusterUnban lifts the bans of target here, and asks every node of the
// cluster to lift theirs: `sipguard unban --cluster`. It returns what it
// lifted here.
func (d *Daemon) clusterUnban(ctx context.Context, target netip.Prefix, all bool) ([]netip.Prefix, <-chan struct{}, error) {
	if d.cluster == nil {
		return nil, nil, refuse("--cluster: this daemon has no [cluster]")
	}
	if all {
		return nil, nil, refuse("--cluster takes an address or network, not --all")
	}
	if bans.TooWide(target) {
		// The other nodes refuse it (peerUnban).
		return nil, nil, refuse("--cluster: %v is wider than /%d (IPv4) or /%d (IPv6): unban it on each node", target, bans.MinBits4, bans.MinBits6)
	}
	now := d.now()
	u := cluster.Unban{Target: target, Time: now, Until: d.clusterUnbanFor(target, now)}
	if err := d.cluster.PublishUnban(u); err != nil {
		return nil, nil, refuse("--cluster: %v", err)
	}
	lift := d.ledger.Overlapping(target, func(r *bans.Record) bool { return !r.Since.After(now) })
	if _, err := d.liftBefore(ctx, target, now, "cluster unban"); err != nil {
		return nil, nil, fmt.Errorf("unban: %w", err)
	}
	d.ledger.Remember(target, bans.Lift{At: now, Until: u.Until})
	d.log.Info().Str(fieldPrefix, target.String()).Time("until", u.Until).Int("lifted_here", len(lift)).
		Msg("cluster unban queued for the cluster")
	d.bansDirty = true
	return lift, d.durable(), nil
}
