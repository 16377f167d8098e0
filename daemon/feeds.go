package daemon

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sipguard/sipguard/control"
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

// feedRulePrefix starts the rule name of a feed's bans: "feed:NAME".
const feedRulePrefix = "feed:"

// feedState is what the daemon knows of one feed: owned by the core
// goroutine, except loader (whose Stats are safe to read anywhere).
type feedState struct {
	cfg       Feed
	loader    *feeds.Loader
	want      []netip.Prefix            // the last good list
	applied   map[netip.Prefix]struct{} // entries in the firewall, as records in d.bans
	skipped   int                       // entries of want not enforced (allowlisted, overlapping another ban)
	excluded  map[netip.Prefix]struct{} // lifted by `sipguard unban`: kept out until a restart or reload
	dirty     bool                      // want and applied differ: apply again
	refreshed time.Time                 // when the entries' timeouts were last set
}

// feedRule is the rule name of a feed's bans.
func feedRule(name string) string { return feedRulePrefix + name }

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
		configured[feedRule(f.Feed.Name)] = true
	}
	var gone []netip.Prefix
	for p, r := range d.bans {
		if strings.HasPrefix(r.Rule, feedRulePrefix) && !configured[r.Rule] {
			gone = append(gone, p)
		}
	}
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
		rule := feedRule(f.Feed.Name)
		for p, r := range d.bans {
			if r.Rule == rule {
				fs.applied[p] = struct{}{}
				fs.want = append(fs.want, p)
			}
		}
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
	rule := feedRule(name)
	want := make(map[netip.Prefix]struct{}, len(fs.want))
	skipped := 0
	others := d.networkBans(rule, now)
	for _, p := range fs.want {
		if _, ex := fs.excluded[p]; ex || d.feedBlocked(p, rule, others) {
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
		if err := d.fw.Ban(ctx, add...); err != nil {
			return err
		}
		for _, b := range add {
			if r, ok := d.bans[b.Prefix]; ok && r.Rule == rule {
				r.Expires = now.Add(b.Timeout)
				continue
			}
			d.bans[b.Prefix] = &banRecord{Target: b.Prefix, Rule: rule, Reason: "blocklist feed " + name, Since: now, Expires: now.Add(b.Timeout)}
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
// it overlaps the allowlist, is banned otherwise already, or is a network
// overlapping a network ban of another rule or feed (others).
func (d *Daemon) feedBlocked(p netip.Prefix, rule string, others *prefixIndex) bool {
	if d.allowed(p).IsValid() {
		return true
	}
	if r, ok := d.bans[p]; ok && r.Rule != rule {
		return true
	}
	// Addresses live in their own sets, apart from networks.
	return !isHost(p) && others.overlaps(p)
}

// networkBans indexes the network bans in force that are not rule's.
func (d *Daemon) networkBans(rule string, now time.Time) *prefixIndex {
	ix := &prefixIndex{set: map[netip.Prefix]struct{}{}}
	lengths := map[int]bool{}
	for q, r := range d.bans {
		if isHost(q) || r.Rule == rule || !r.Expires.After(now) {
			continue
		}
		ix.set[q] = struct{}{}
		ix.sorted = append(ix.sorted, q)
		lengths[q.Bits()] = true
	}
	for b := range lengths {
		ix.lengths = append(ix.lengths, b)
	}
	slices.Sort(ix.lengths)
	slices.SortFunc(ix.sorted, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ix
}

// prefixIndex answers "does p overlap any of these networks?" in
// O(distinct lengths + log n), for feeds of 100,000 entries.
type prefixIndex struct {
	set     map[netip.Prefix]struct{}
	sorted  []netip.Prefix // by address
	lengths []int          // distinct prefix lengths, ascending
}

func (ix *prefixIndex) overlaps(p netip.Prefix) bool {
	if len(ix.sorted) == 0 {
		return false
	}
	// A network containing p (or equal to it).
	for _, b := range ix.lengths {
		if b > p.Bits() {
			break
		}
		if q, err := p.Addr().Prefix(b); err == nil {
			if _, ok := ix.set[q]; ok {
				return true
			}
		}
	}
	// A network inside p: the first one at or after p's address.
	i, _ := slices.BinarySearchFunc(ix.sorted, p.Addr(), func(q netip.Prefix, a netip.Addr) int { return q.Addr().Compare(a) })
	return i < len(ix.sorted) && p.Contains(ix.sorted[i].Addr())
}

// feedStatus reports the feeds for `status`.
func (d *Daemon) feedStatus() []control.FeedStatus {
	var out []control.FeedStatus
	for _, f := range d.cfg.Feeds {
		fs, ok := d.feeds[f.Feed.Name]
		if !ok {
			out = append(out, control.FeedStatus{Name: f.Feed.Name, Error: "not started (see the log)"})
			continue
		}
		st := fs.loader.Stats()
		out = append(out, control.FeedStatus{
			Name: st.Name, Location: st.Location, Listed: len(fs.want), Enforced: len(fs.applied), Skipped: fs.skipped,
			Invalid: st.Invalid, TooWide: st.TooWide, LastLoad: st.LastLoad, LastOK: st.LastOK,
			Loads: st.Loads, Failures: st.Failures, Error: st.LastError,
		})
	}
	return out
}
