package daemon

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
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
	var gone []netip.Prefix
	d.ledger.All(func(r *bans.Record) bool {
		if r.Origin.Kind == bans.Feed && !configured[r.Origin.Name] {
			gone = append(gone, r.Target)
		}
		return true
	})
	if len(gone) > 0 {
		if err := d.fw.Unban(ctx, gone...); err != nil {
			d.fwErrors++
			d.log.Error().Err(err).Int("entries", len(gone)).Msg("entries of feeds no longer configured not lifted; they expire on their own")
		} else {
			for _, p := range gone {
				d.unbanned(p, UnbanFeed, "its feed is no longer configured")
			}
			d.log.Info().Int("entries", len(gone)).Msg("lifted the entries of feeds no longer configured")
		}
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
	var add []firewall.Ban
	for p := range want {
		if _, ok := fs.applied[p]; !ok || refresh {
			add = append(add, firewall.Ban{Prefix: p, Timeout: fs.cfg.Expire})
		}
	}
	if len(lift) > 0 {
		if err := d.fw.Unban(ctx, lift...); err != nil {
			return err
		}
		for _, p := range lift {
			d.unbanned(p, UnbanFeed, "gone from its feed")
		}
	}
	if len(add) > 0 {
		if err := d.ban(ctx, add...); err != nil {
			return err
		}
		reason := bans.CleanReason("blocklist feed " + name)
		for _, b := range add {
			r := &bans.Record{Target: b.Prefix, Origin: origin, Reason: reason, Since: now, Expires: now.Add(b.Timeout)}
			if old, ok := d.ledger.Get(b.Prefix); ok && old.Origin == origin {
				r.Since = old.Since // a refresh: records are replaced, never changed
			}
			d.ledger.Put(r)
			fs.applied[b.Prefix] = struct{}{}
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

// feedBlocked reports whether a feed entry must stay out of the firewall:
// it overlaps the allowlist or special-purpose addresses (restored from
// an older sipguard's state: feeds.Parse skips them), is banned otherwise
// already, or is a network overlapping a network ban of another origin
// (others).
func (d *Daemon) feedBlocked(p netip.Prefix, origin bans.Origin, others *bans.Index) bool {
	if _, bad := bans.Special(p); bad || d.allowed(p).IsValid() {
		return true
	}
	if r, ok := d.ledger.Get(p); ok && r.Origin != origin {
		return true
	}
	// Addresses live in their own sets, apart from networks.
	return !bans.IsHost(p) && others.Overlaps(p)
}

// networkBans indexes the network bans in force not of origin.
func (d *Daemon) networkBans(origin bans.Origin, now time.Time) *bans.Index {
	ix := bans.NewIndex()
	d.ledger.All(func(r *bans.Record) bool {
		if !bans.IsHost(r.Target) && r.Origin != origin && r.InForce(now) {
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
	case UnbanExpired, UnbanReplaced:
		fs.dirty = true // try again (a wider ban keeps it out)
	}
}
