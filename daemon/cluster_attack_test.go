package daemon_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
)

// TestClusterShortenedRenewal (issue 20, item 1): a peer sends its ban
// again, ending sooner (alone, or after the longer one in the same
// batch). Its record is replaced, so the kernel must end the ban then
// too: held for the old, longer time, it is a ban no origin wants, that
// no list shows; and a network ban inside it, of this node, waits for it
// in the ledger while the kernel refuses it beside the phantom.
func TestClusterShortenedRenewal(t *testing.T) {
	clusterShortenedRenewal(t, func() firewall.Backend { return nil })
}

func clusterShortenedRenewal(t *testing.T, newFW func() firewall.Backend) {
	e := newEnv(t)
	r := startWith(t, e.config(), newFW(), func(d *daemon.Daemon) { d.Join(&peers{}, false) })
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{
		remote("198.51.100.50/32", "pbx-m", now, 3*time.Hour),
		remote("100.70.0.0/16", "pbx-m", now, 3*time.Hour),
		remote("2001:db8:5::/48", "pbx-m", now, 3*time.Hour),
	})
	r.d.Apply(ctx, []cluster.Update{
		remote("198.51.100.50/32", "pbx-m", now, 2*time.Second),
		remote("100.70.0.0/16", "pbx-m", now, 2*time.Second),
		remote("2001:db8:5::/48", "pbx-m", now, 2*time.Second),
		remote("100.71.0.0/16", "pbx-m", now, 3*time.Hour), // then shorter, in the same batch
		remote("100.71.0.0/16", "pbx-m", now, 2*time.Second),
	})
	for _, target := range []string{"198.51.100.50/32", "100.70.0.0/16", "2001:db8:5::/48", "100.71.0.0/16"} {
		if ent, ok := banned(r.fw, target); ok && time.Until(ent.Expires) > time.Minute {
			t.Errorf("%s: %v left in the firewall; its only origin wants 2s", target, time.Until(ent.Expires))
		}
	}
	// Bans inside them, covered while they last: another peer's, and
	// this node's own IPv6 /64 (its rule's ban, 1h).
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("100.70.1.0/24", "pbx-n", now, 2*time.Hour)}); res["known"] != 1 {
		t.Fatalf("pbx-n's ban inside the /16: %v; want known (covered)", res)
	}
	appendLines(t, e.log, failures("2001:db8:5:0:1::7", 5, time.Now())...)
	handled(t, r, 5)
	for target, want := range map[string]time.Duration{"100.70.1.0/24": 2 * time.Hour, "2001:db8:5::/64": time.Hour} {
		if !eventually(func() bool { _, ok := banned(r.fw, target); return ok }) {
			t.Errorf("%s not in force after the peer's ban around it ended:\n%s", target, r.logs)
			continue
		}
		heldFor(t, r, target, want)
	}
	for _, target := range []string{"100.70.0.0/16", "2001:db8:5::/48"} {
		if _, ok := banned(r.fw, target); ok {
			t.Errorf("%s still in the firewall after its only record ended", target)
		}
	}
}

// TestClusterLiftCovered (issue 20, item 1): a covered ban (inside a
// wider one in force, so not in the kernel) held by two origins; the one
// lasting longer lifts its record. Shortening the kernel's ban of a
// target the kernel does not hold fails (overlaps the wider one), so the
// lift failed and the lifted record stayed: in force for its origin's
// time once the wider ban goes, a ban no origin wants.
func TestClusterLiftCovered(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, func(d *daemon.Daemon) { d.Join(&peers{}, false) })
	ctx := context.Background()
	now := time.Now()
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("100.70.0.0/16", "pbx-m", now, time.Hour)}); res["applied"] != 1 {
		t.Fatalf("the /16: %v", res)
	}
	r.d.Apply(ctx, []cluster.Update{
		remote("100.70.1.0/24", "pbx-n", now, 2*time.Hour),
		remote("100.70.1.0/24", "pbx-o", now, 5*time.Hour),
	})
	if res, _ := r.d.Apply(ctx, liftsOf("pbx-o", now, "100.70.1.0/24")); res["applied"] != 1 {
		t.Errorf("pbx-o's lift of its covered record: %v", res)
	}
	if res, _ := r.d.Apply(ctx, liftsOf("pbx-m", now, "100.70.0.0/16")); res["applied"] != 1 {
		t.Fatalf("pbx-m's lift: %v", res)
	}
	heldFor(t, r, "100.70.1.0/24", 2*time.Hour) // pbx-n's, not pbx-o's 5h
}

// TestClusterCoveredByFeed (issue 20, item 1): a peer's ban inside a
// blocklist feed's network is covered by it; when the entry leaves the
// feed, or the feed the configuration, the peer's ban goes in force.
func TestClusterCoveredByFeed(t *testing.T) {
	e := newEnv(t)
	feed := filepath.Join(e.dir, "drop.txt")
	writeFeed(t, feed, "100.70.0.0/16\n100.80.0.0/16\n")
	cfg := e.config()
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: time.Hour}, Expire: time.Hour}}
	fw := firewall.NewDryRun(zerolog.Nop(), nil)
	join := func(d *daemon.Daemon) { d.Join(&peers{}, false) }
	r := startWith(t, cfg, fw, join)
	ctx := context.Background()
	if !eventually(func() bool { return feedStatus(t, r).Enforced == 2 }) {
		t.Fatalf("feed not enforced: %+v\n%s", feedStatus(t, r), r.logs)
	}
	now := time.Now()
	res, _ := r.d.Apply(ctx, []cluster.Update{
		remote("100.70.1.0/24", "pbx-n", now, 3*time.Hour),
		remote("100.80.1.0/24", "pbx-n", now, 3*time.Hour),
	})
	if res["known"] != 2 {
		t.Fatalf("bans inside the feed's networks: %v; want 2 known (covered)", res)
	}
	// The entry leaves the feed.
	writeFeed(t, feed, "100.80.0.0/16\n")
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: 2 * time.Hour}, Expire: time.Hour}} // a changed interval loads at once
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { _, ok := banned(fw, "100.70.0.0/16"); return !ok }) {
		t.Fatalf("entry gone from the feed still banned:\n%s", r.logs)
	}
	if !eventually(func() bool { _, ok := banned(fw, "100.70.1.0/24"); return ok }) {
		t.Errorf("pbx-n's 100.70.1.0/24 not in force after the feed's network around it was lifted")
	}
	// The feed leaves the configuration: its entries are lifted at start.
	r.stop(t)
	r = startWith(t, e.config(), fw, join)
	if _, ok := banned(fw, "100.80.0.0/16"); ok {
		t.Fatalf("the entry of a feed no longer configured stays:\n%s", r.logs)
	}
	if !eventually(func() bool { _, ok := banned(fw, "100.80.1.0/24"); return ok }) {
		t.Errorf("pbx-n's 100.80.1.0/24 not in force after the feed around it was dropped")
	}
}
