package daemon

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/feeds"
)

// Feed is a blocklist feed to enforce.
type Feed struct {
	Feed feeds.Feed
	// Expire is the kernel timeout of the feed's entries. The daemon
	// refreshes them while it runs, so they lapse only if it stops for
	// that long: a feed's bans hold through a restart but do not outlive
	// the daemon for ever.
	Expire time.Duration
}

// feedState is what the daemon knows of one feed: owned by the core
// goroutine, except loader (whose Stats are safe to read anywhere).
type feedState struct {
	cfg       Feed
	loader    *feeds.Loader
	want      []netip.Prefix            // the last good list
	applied   map[netip.Prefix]struct{} // entries in the firewall, as records in the ledger
	skipped   int                       // entries of want not enforced (allowlisted, overlapping another ban)
	excluded  map[netip.Prefix]struct{} // lifted by `sipguard unban`: kept out until a restart or reload
	dirty     bool                      // want and applied differ: apply again
	refreshed time.Time                 // when the entries' timeouts were last set
}

// startFeeds starts a loader per feed. The entries restored from the state
// belong to their feeds at once, so a feed that fails to load keeps them;
// the entries of feeds no longer configured are lifted.
func (d *Daemon) startFeeds(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	d.stopFeeds = func() { cancel(); wg.Wait() }
	d.feeds = map[string]*feedState{}
	configured := map[string]bool{}
	for _, f := range d.cfg.Feeds {
		configured[f.Feed.Name] = true
	}
	gone := map[bans.Origin][]netip.Prefix{}
	d.ledger.All(func(r *bans.Record) bool {
		if r.Origin.Kind == bans.Feed && !configured[r.Origin.Name] {
			gone[r.Origin] = append(gone[r.Origin], r.Target)
		}
		return true
	})
	for origin, targets := range gone {
		if err := d.liftFeedEntries(ctx, origin, targets, d.now()); err != nil {
			d.fwErrors++
			d.log.Error().Err(err).Str("feed", origin.Name).Int("entries", len(targets)).
				Msg("entries of a feed no longer configured not lifted; they expire on their own")
			continue
		}
		d.log.Info().Str("feed", origin.Name).Int("entries", len(targets)).Msg("lifted the entries of a feed no longer configured")
	}
	for _, f := range d.cfg.Feeds {
		l, err := feeds.NewLoader(f.Feed, nil, d.log.With().Str("feed", f.Feed.Name).Logger())
		if err != nil {
			d.log.Error().Err(err).Str("feed", f.Feed.Name).Msg("feed not started")
			continue
		}
		fs := &feedState{cfg: f, loader: l, applied: map[netip.Prefix]struct{}{}, excluded: map[netip.Prefix]struct{}{}}
		origin := bans.FromFeed(f.Feed.Name)
		d.ledger.All(func(r *bans.Record) bool {
			if r.Origin == origin {
				fs.applied[r.Target] = struct{}{}
				fs.want = append(fs.want, r.Target)
			}
			return true
		})
		fs.refreshed = d.now() // restored with their kernel timeouts
		d.feeds[f.Feed.Name] = fs
		wg.Go(func() {
			l.Run(ctx, func(r feeds.Result) {
				d.call(ctx, func() { d.feedLoaded(r) })
			})
		})
	}
}

// feedLoaded takes a feed's new list.
func (d *Daemon) feedLoaded(r feeds.Result) {
	fs, ok := d.feeds[r.Feed]
	if !ok {
		return
	}
	fs.want = r.List.Prefixes
	fs.dirty = true
	d.applyFeeds(d.runCtx)
}

// applyFeeds brings every feed's entries in the firewall in line with its
// list, and refreshes the timeouts of those due. Entries that overlap the
// allowlist or another ban in force are skipped (and counted): nftables
// interval sets hold no overlapping elements, and a feed never overrides
// a decision made otherwise. Skipped entries are tried again whenever a
// feed changes.
func (d *Daemon) applyFeeds(ctx context.Context) {
	now := d.now()
	anyDirty := false
	for _, fs := range d.feeds {
		anyDirty = anyDirty || fs.dirty
	}
	for name, fs := range d.feeds {
		// Half the timeout, less a tick of the loop that calls this: a
		// refresh is never a tick late.
		refresh := now.Sub(fs.refreshed) >= fs.cfg.Expire/2-time.Second
		if !anyDirty && !refresh {
			continue
		}
		if err := d.applyFeed(ctx, name, fs, refresh, now); err != nil {
			d.fwErrors++
			d.log.Error().Err(err).Str("feed", name).Msg("feed entries not applied; retrying")
			fs.dirty = true
			continue
		}
	}
}

func (d *Daemon) applyFeed(ctx context.Context, name string, fs *feedState, refresh bool, now time.Time) error {
	origin := bans.FromFeed(name)
	want := make(map[netip.Prefix]struct{}, len(fs.want))
	skipped := 0
	others := d.networkBans(origin, now)
	for _, p := range fs.want {
		if _, ex := fs.excluded[p]; ex || d.feedBlocked(p, origin, others) {
			skipped++
			continue
		}
		want[p] = struct{}{}
	}
	var lift []netip.Prefix
	for p := range fs.applied {
		if _, ok := want[p]; !ok {
			lift = append(lift, p)
		}
	}
	var add []netip.Prefix
	for p := range want {
		if _, ok := fs.applied[p]; !ok || refresh {
			add = append(add, p)
		}
	}
	if len(lift) > 0 {
		if err := d.liftFeedEntries(ctx, origin, lift, now); err != nil {
			return err
		}
	}
	if len(add) > 0 {
		reason := bans.CleanReason("blocklist feed " + name)
		recs := make([]*bans.Record, len(add))
		for i, p := range add {
			recs[i] = &bans.Record{Target: p, Origin: origin, Reason: reason, Since: now, Expires: now.Add(fs.cfg.Expire)}
			if old, ok := d.ledger.Of(p, origin); ok {
				recs[i].Since = old.Since // a refresh: records are replaced, never changed
			}
		}
		if err := d.ban(ctx, d.firewallBans(recs, now)...); err != nil {
			return err
		}
		for _, r := range recs {
			d.ledger.Put(r)
			fs.applied[r.Target] = struct{}{}
		}
		d.bansDirty = true
	}
	if fs.dirty || len(lift) > 0 || len(add) > 0 && !refresh {
		d.log.Info().Str("feed", name).Int("entries", len(fs.applied)).Int("listed", len(fs.want)).
			Int("skipped", skipped).Int("removed", len(lift)).Msg("feed applied")
	}
	fs.skipped, fs.dirty = skipped, false
	if refresh {
		fs.refreshed = now
	}
	return nil
}

// liftFeedEntries lifts a feed's records of targets, in one firewall
// transaction for those no other origin holds. A target another origin
// holds stays banned, for as long as that origin's record (shorter than
// the feed's, the kernel's timeout is set anew).
func (d *Daemon) liftFeedEntries(ctx context.Context, origin bans.Origin, targets []netip.Prefix, now time.Time) error {
	isFeed := func(r *bans.Record) bool { return r.Origin == origin }
	var l lifts
	for _, p := range targets {
		d.planLift(&l, p, isFeed, now)
	}
	// The bans inside a network entry, of other origins, go back in force
	// in the same transaction.
	if len(l.unban) > 0 {
		l.back = d.coveredInside(targets, isFeed, now)
	}
	if err := d.applyLifts(ctx, &l); err != nil {
		return err
	}
	for _, p := range targets {
		gone := d.ledger.RemoveIf(p, isFeed)
		_, held := d.ledger.Get(p)
		d.lifted(p, gone, !held, UnbanFeed, "gone from its feed")
	}
	d.putBack(ctx, &l, now, targets...)
	return nil
}

// feedBlocked reports whether a feed entry must stay out of the firewall:
// it overlaps the allowlist or special-purpose addresses (restored from
// an older sipguard's state: feeds.Parse skips them), is banned otherwise
// already, or is a network overlapping a network ban of another origin
// (others).
func (d *Daemon) feedBlocked(p netip.Prefix, origin bans.Origin, others *bans.Index) bool {
	if _, bad := bans.Special(p); bad || d.allowed(p).IsValid() {
		return true
	}
	for _, r := range d.ledger.RecordsOf(p) {
		if r.Origin != origin && r.InForce(d.now()) {
			return true
		}
	}
	// Addresses live in their own sets, apart from networks.
	return !bans.IsHost(p) && others.Overlaps(p)
}

// networkBans indexes the network bans in force not of origin, in the
// kernel: one covered by a wider ban (Plan.Covered) is not, and blocks
// nothing: the feed's own entry around it would be lifted for it, the
// wider ban of another origin blocks the entry itself.
func (d *Daemon) networkBans(origin bans.Origin, now time.Time) *bans.Index {
	ix := bans.NewIndex()
	d.ledger.All(func(r *bans.Record) bool {
		if bans.IsHost(r.Target) || r.Origin == origin || !r.InForce(now) {
			return true
		}
		if _, covered := d.ledger.Covering(r.Target, r.Ports, now); !covered {
			ix.Add(r.Target)
		}
		return true
	})
	return ix
}

// feedEntryLifted keeps a feed's books when one of its entries is lifted.
// A feed's entries come and go by the thousand: the feed's own log line
// reports them, and no one is notified of each.
func (d *Daemon) feedEntryLifted(r *bans.Record, reason, why string) {
	fs := d.feeds[r.Origin.Name]
	if fs == nil {
		return
	}
	delete(fs.applied, r.Target)
	switch reason {
	case UnbanManual:
		fs.excluded[r.Target] = struct{}{}
		d.log.Info().Str(fieldPrefix, r.Target.String()).Str(fieldRule, r.Label()).Str(fieldReason, why).
			Msg("unban of a feed entry: kept out until restart; [allow] it for good")
	case UnbanExpired:
		fs.dirty = true // try again (a wider ban keeps it out)
	}
}
