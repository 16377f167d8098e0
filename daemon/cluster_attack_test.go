package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
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
	r := startWith(t, e.config(), newFW(), joined)
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
	clusterLiftCovered(t, func() firewall.Backend { return nil })
}

func clusterLiftCovered(t *testing.T, newFW func() firewall.Backend) {
	e := newEnv(t)
	r := startWith(t, e.config(), newFW(), joined)
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
	inStep(t, r)
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
	r := startWith(t, cfg, fw, joined)
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
	r = startWith(t, e.config(), fw, joined)
	if _, ok := banned(fw, "100.80.0.0/16"); ok {
		t.Fatalf("the entry of a feed no longer configured stays:\n%s", r.logs)
	}
	if !eventually(func() bool { _, ok := banned(fw, "100.80.1.0/24"); return ok }) {
		t.Errorf("pbx-n's 100.80.1.0/24 not in force after the feed around it was dropped")
	}
}

// inStep checks that the ledger (the list) and the firewall agree: each
// element of the firewall is a target listed, until the same time (a ban
// no record wants is none), and each network listed is in the firewall or
// covered there by a wider one listed.
func inStep(t *testing.T, r *running) {
	t.Helper()
	for _, p := range outOfStep(t, r) {
		t.Error(p)
	}
}

// outOfStep returns where the ledger and the firewall disagree (inStep).
func outOfStep(t *testing.T, r *running) []string {
	t.Helper()
	list, err := r.client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Each ports profile apart: a ban covers only in its own.
	type key struct {
		ports string
		p     netip.Prefix
	}
	var out []string
	listed := map[key]time.Time{}
	for _, b := range list {
		p, err := netip.ParsePrefix(b.Target)
		if err != nil {
			p = netip.PrefixFrom(netip.MustParseAddr(b.Target), netip.MustParseAddr(b.Target).BitLen())
		}
		if time.Until(b.Expires) > 0 {
			listed[key{b.Ports, p}] = b.Expires
		}
	}
	held := map[key]time.Time{}
	es, _ := r.fw.List(context.Background())
	for _, e := range es {
		k := key{e.Ports, e.Prefix}
		held[k] = e.Expires
		exp, ok := listed[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s (ports %q) in the firewall, %v left, and no record wants it", e.Prefix, e.Ports, time.Until(e.Expires).Round(time.Millisecond)))
		} else if d := e.Expires.Sub(exp); d > 2*time.Second || d < -2*time.Second {
			out = append(out, fmt.Sprintf("%s (ports %q): the firewall holds it until %v, its records until %v", e.Prefix, e.Ports, e.Expires, exp))
		}
	}
	for k := range listed {
		if _, ok := held[k]; ok {
			continue
		}
		covered := false
		for q := range held {
			if q.ports == k.ports && q.p.Bits() < k.p.Bits() && q.p.Contains(k.p.Addr()) {
				covered = true
			}
		}
		if !covered {
			out = append(out, fmt.Sprintf("%s (ports %q) listed, not in the firewall, and no ban in force covers it", k.p, k.ports))
		}
	}
	return out
}

// TestClusterCoveredAttacks (issue 20, item 1): a node tries to make
// this one lose, shorten or keep the bans inside its network bans; the
// ledger and the firewall stay in step throughout.
func TestClusterCoveredAttacks(t *testing.T) {
	clusterCoveredAttacks(t, func() firewall.Backend { return nil })
}

func clusterCoveredAttacks(t *testing.T, newFW func() firewall.Backend) {
	e := newEnv(t)
	f := &peers{}
	r := startWith(t, e.config(), newFW(), func(d *daemon.Daemon) { d.Join(f, false) })
	ctx := context.Background()
	now := time.Now()
	apply := func(want map[string]int, us ...cluster.Update) {
		t.Helper()
		res, _ := r.d.Apply(ctx, us)
		for why, n := range want {
			if res[why] != n {
				t.Fatalf("%v; want %s %d", res, why, n)
			}
		}
		inStep(t, r)
	}
	// Three levels: pbx-m's /16 around pbx-n's /20 around pbx-o's /24.
	apply(map[string]int{"applied": 1}, remote("100.70.0.0/16", "pbx-m", now, time.Hour))
	apply(map[string]int{"known": 2},
		remote("100.70.0.0/20", "pbx-n", now, 2*time.Hour),
		remote("100.70.1.0/24", "pbx-o", now, 3*time.Hour))
	// pbx-m renews its /16 over them, then widens it: applied, and they
	// stay, covered (not in the kernel, so not replaced).
	apply(map[string]int{"applied": 1}, remote("100.70.0.0/16", "pbx-m", now, 5*time.Hour))
	heldFor(t, r, "100.70.0.0/16", 5*time.Hour)
	apply(map[string]int{"applied": 1}, remote("100.70.0.0/15", "pbx-m", now, 5*time.Hour))
	// Its /15 lifted, its /16 (not lifted) is in force again; that lifted,
	// pbx-n's /20.
	apply(map[string]int{"applied": 1}, liftsOf("pbx-m", now, "100.70.0.0/15")...)
	heldFor(t, r, "100.70.0.0/16", 5*time.Hour)
	apply(map[string]int{"applied": 1}, liftsOf("pbx-m", now, "100.70.0.0/16")...)
	heldFor(t, r, "100.70.0.0/20", 2*time.Hour)
	apply(map[string]int{"applied": 1}, liftsOf("pbx-n", now, "100.70.0.0/20")...)
	heldFor(t, r, "100.70.1.0/24", 3*time.Hour)

	// A lift in the same batch as a ban inside the lifted one.
	apply(map[string]int{"applied": 1}, remote("100.80.0.0/16", "pbx-m", now, time.Hour))
	apply(map[string]int{"known": 1, "applied": 1},
		remote("100.80.1.0/24", "pbx-n", now, 3*time.Hour),
		liftsOf("pbx-m", now, "100.80.0.0/16")[0])
	heldFor(t, r, "100.80.1.0/24", 3*time.Hour)
	apply(map[string]int{"applied": 1}, remote("100.81.0.0/16", "pbx-m", now, time.Hour))
	apply(map[string]int{"applied": 2},
		liftsOf("pbx-m", now, "100.81.0.0/16")[0],
		remote("100.81.1.0/24", "pbx-n", now, 3*time.Hour))
	heldFor(t, r, "100.81.1.0/24", 3*time.Hour)

	// The same /16 by two nodes: the longer one's lift leaves the shorter.
	apply(map[string]int{"applied": 2},
		remote("100.90.0.0/16", "pbx-m", now, 5*time.Hour),
		remote("100.90.0.0/16", "pbx-n", now, time.Hour))
	apply(map[string]int{"known": 1}, remote("100.90.1.0/24", "pbx-o", now, 3*time.Hour))
	apply(map[string]int{"applied": 1}, liftsOf("pbx-m", now, "100.90.0.0/16")...)
	heldFor(t, r, "100.90.0.0/16", time.Hour)
	if _, ok := banned(r.fw, "100.90.1.0/24"); ok {
		t.Error("100.90.1.0/24 in the firewall beside pbx-n's /16")
	}

	// A cluster unban of an address inside a covered ban made before it,
	// the wider one after it: the covered one goes, from the ledger.
	apply(map[string]int{"known": 1}, remote("100.90.2.0/24", "pbx-o", now.Add(-time.Minute), 3*time.Hour))
	apply(map[string]int{"applied": 1}, cluster.Update{Kind: cluster.UpdateUnban, Unban: cluster.Unban{
		Target: netip.MustParsePrefix("100.90.2.5/32"), Time: now.Add(-30 * time.Second), Until: now.Add(time.Hour), Origin: "pbx-p",
	}})
	heldFor(t, r, "100.90.0.0/16", time.Hour)
	apply(map[string]int{"applied": 1}, liftsOf("pbx-n", now, "100.90.0.0/16")...)
	heldFor(t, r, "100.90.1.0/24", 3*time.Hour)
	if _, ok := banned(r.fw, "100.90.2.0/24"); ok {
		t.Error("100.90.2.0/24 in force after a cluster unban lifted it")
	}
	if _, _, unbans := f.snapshot(); len(unbans) != 0 {
		t.Errorf("unbans published: %v", unbans)
	}
}

// TestClusterCoveredRestart (issue 20, item 1): the wider ban ends while
// the daemon is down, or an allowlist reload lifts it: the bans it
// covered are in force at once (the ones holding the allowlisted address
// lifted too).
func TestClusterCoveredRestart(t *testing.T) {
	clusterCoveredRestart(t, func() firewall.Backend { return nil })
}

func clusterCoveredRestart(t *testing.T, newFW func() firewall.Backend) {
	e := newEnv(t)
	r := startWith(t, e.config(), newFW(), joined)
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{
		remote("100.70.0.0/16", "pbx-m", now, 2*time.Second),
		remote("100.95.0.0/16", "pbx-m", now, time.Hour),
	})
	r.d.Apply(ctx, []cluster.Update{
		remote("100.70.0.0/20", "pbx-n", now, 2*time.Hour),
		remote("100.70.1.0/24", "pbx-o", now, 3*time.Hour),
		remote("100.95.1.0/24", "pbx-n", now, 2*time.Hour),
		remote("100.95.2.0/24", "pbx-n", now, 2*time.Hour),
	})
	inStep(t, r)
	r.stop(t)
	time.Sleep(time.Until(now.Add(2500 * time.Millisecond)))
	r = startWith(t, e.config(), newFW(), joined)
	heldFor(t, r, "100.70.0.0/20", 2*time.Hour)
	inStep(t, r)
	cfg := e.config()
	cfg.Engine.Allow = append(cfg.Engine.Allow, netip.MustParsePrefix("100.95.1.5/32"))
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"100.95.0.0/16", "100.95.1.0/24"} {
		if _, ok := banned(r.fw, target); ok {
			t.Errorf("%s banned: it holds an allowlisted address", target)
		}
	}
	heldFor(t, r, "100.95.2.0/24", 2*time.Hour)
	inStep(t, r)
}

// TestClusterLiftedEscalate (issue 20, item 1): with escalation, a
// peer's ban tells the engine its address is banned, so that its events
// are not counted meanwhile. A peer that bans an address for long and
// lifts it at once must not blind this node to it: the address attacks
// here, and is banned here.
func TestClusterLiftedEscalate(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, func(d *daemon.Daemon) { d.Join(&peers{}, true) })
	ctx := context.Background()
	now := time.Now()
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("198.51.100.77/32", "pbx-m", now, 5*time.Hour)}); res["applied"] != 1 {
		t.Fatalf("the ban: %v", res)
	}
	if res, _ := r.d.Apply(ctx, liftsOf("pbx-m", now, "198.51.100.77/32")); res["applied"] != 1 {
		t.Fatalf("its lift: %v", res)
	}
	// From the next second: the log's times are whole seconds.
	appendLines(t, e.log, failures("198.51.100.77", 5, time.Now().Add(time.Second))...)
	handled(t, r, 5)
	if _, ok := banned(r.fw, "198.51.100.77/32"); !ok {
		t.Errorf("198.51.100.77 not banned for its attack here after a peer's ban of it was lifted:\n%s", r.logs)
	}
}

// TestClusterRenewEscalate (issue 20, item 1): with escalation, a node
// that sends its ban again and again counts one offence here, not one
// per message: it cannot escalate this node's next ban of the address.
func TestClusterRenewEscalate(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, func(d *daemon.Daemon) { d.Join(&peers{}, true) })
	ctx := context.Background()
	now := time.Now()
	for i := range 5 {
		if res, _ := r.d.Apply(ctx, []cluster.Update{remote("198.51.100.78/32", "pbx-m", now, time.Duration(i+1)*time.Minute)}); res["applied"] != 1 {
			t.Fatalf("ban %d: %v", i, res)
		}
	}
	r.d.Apply(ctx, liftsOf("pbx-m", now, "198.51.100.78/32"))
	appendLines(t, e.log, failures("198.51.100.78", 5, time.Now().Add(time.Second))...)
	handled(t, r, 5)
	if _, ok := banned(r.fw, "198.51.100.78/32"); !ok {
		t.Fatalf("198.51.100.78 not banned here:\n%s", r.logs)
	}
	why, err := r.client.Why(ctx, "198.51.100.78")
	if err != nil || why.Offences != 2 {
		t.Errorf("after 5 messages of one peer's ban and this node's ban: %d offences (%v); want 2 (the peer's, this one)", why.Offences, err)
	}
}

// TestClusterManualWider: a person's ban of a network wider than other
// nodes' bans takes their place in the kernel, not in the ledger: when
// it is lifted (an unban of an address it holds), theirs are in force
// again for their own time.
func TestClusterManualWider(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, joined)
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{remote("100.72.1.0/24", "pbx-n", now, 3*time.Hour)})
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "100.72.0.0/16", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := banned(r.fw, "100.72.1.0/24"); ok {
		t.Error("100.72.1.0/24 in the firewall beside the /16 that holds it")
	}
	inStep(t, r)
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "100.72.5.5"}); err != nil || un.Result != control.Unbanned {
		t.Fatalf("unban: %+v %v", un, err)
	}
	heldFor(t, r, "100.72.1.0/24", 3*time.Hour)
	inStep(t, r)
}

// TestClusterManualKept (issue 20, item 1): a person bans an address a
// peer bans already, for longer. The peer's lift must not take the
// person's ban with it: the ban is kept for the person's time.
func TestClusterManualKept(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, joined)
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{remote("203.0.113.9/32", "pbx-m", now, 5*time.Hour)})
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "203.0.113.9", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	if res, _ := r.d.Apply(ctx, liftsOf("pbx-m", now, "203.0.113.9/32")); res["applied"] != 1 {
		t.Fatalf("pbx-m's lift: %v", res)
	}
	heldFor(t, r, "203.0.113.9/32", time.Hour)
	inStep(t, r)
}

// failingFW returns a fake firewall whose bans fail while *down is set,
// and the switch.
func failingFW() (*fwtest.Fake, *atomic.Bool) {
	fw := fwtest.New(nil)
	var down atomic.Bool
	fw.BanFunc = func([]firewall.Ban) error {
		if down.Load() {
			return errors.New("netlink: busy")
		}
		return nil
	}
	return fw, &down
}

// TestClusterManualWiderFails (issue 20, item 1): a person's ban of a
// range takes the bans inside it out of the kernel; when the firewall
// refuses the range, the person is told it failed, and the bans inside
// must not be out of the kernel, in force in the ledger, not even until
// the firewall works again: they leave it in the range's own
// transaction (firewall.Backend.Change).
func TestClusterManualWiderFails(t *testing.T) {
	e := newEnv(t)
	fw, down := failingFW()
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	r.d.Apply(ctx, []cluster.Update{remote("100.72.1.0/24", "pbx-n", time.Now(), 3*time.Hour)})
	inStep(t, r)
	down.Store(true)
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "100.72.0.0/16", For: "1h"}); err == nil {
		t.Fatal("the ban of 100.72.0.0/16 succeeded with the firewall down")
	}
	// Never out of the kernel meanwhile: the /24 leaves it in the /16's
	// own transaction, which failed as a whole.
	if _, ok := banned(r.fw, "100.72.1.0/24"); !ok {
		t.Error("100.72.1.0/24 out of the kernel while the firewall fails")
	}
	down.Store(false)
	if !eventually(func() bool { _, ok := banned(r.fw, "100.72.1.0/24"); return ok }) {
		t.Errorf("100.72.1.0/24 out of the kernel after the failed ban of its /16; firewall %v", fw.Entries())
	}
	inStep(t, r)
	// An import alike.
	down.Store(true)
	if _, err := r.client.Import(ctx, control.ImportRequest{Bans: []control.BanRequest{{Target: "100.72.0.0/16", For: "1h"}}}); err == nil {
		t.Fatal("the import of 100.72.0.0/16 succeeded with the firewall down")
	}
	if _, ok := banned(r.fw, "100.72.1.0/24"); !ok {
		t.Error("100.72.1.0/24 out of the kernel while the firewall fails")
	}
	down.Store(false)
	if !eventually(func() bool { _, ok := banned(r.fw, "100.72.1.0/24"); return ok }) {
		t.Errorf("100.72.1.0/24 out of the kernel after the failed import of its /16; firewall %v", fw.Entries())
	}
	inStep(t, r)
}

// TestClusterWiderDropped (issue 20, item 1): a peer's wider ban took the
// narrower ones out of the kernel, then the firewall refused it; an
// allowlist reload drops it from the queue before the firewall is back.
// The narrower ones must come back into the kernel.
func TestClusterWiderDropped(t *testing.T) {
	e := newEnv(t)
	fw, down := failingFW()
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	if res, err := r.d.Apply(ctx, []cluster.Update{remote("10.1.0.0/16", "node2", time.Now(), time.Hour)}); err != nil || res["applied"] != 1 {
		t.Fatalf("cluster ban: %v %v", res, err)
	}
	down.Store(true)
	if res, err := r.d.Apply(ctx, []cluster.Update{remote("10.0.0.0/8", "node2", time.Now(), time.Hour)}); err != nil || res["applied"] != 1 {
		t.Fatalf("cluster ban: %v %v", res, err)
	}
	cfg := e.config()
	cfg.Engine.Allow = append(cfg.Engine.Allow, netip.MustParsePrefix("10.200.0.1/32"))
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	if !eventually(func() bool { _, ok := banned(r.fw, "10.1.0.0/16"); return ok }) {
		t.Errorf("10.1.0.0/16 out of the kernel after its /8 was dropped; firewall %v\n%s", fw.Entries(), r.logs)
	}
	inStep(t, r)
}

// TestClusterUncoverFails (issue 20, item 1): the firewall fails when a
// wider ban is lifted and the bans it covered are put back in force. They
// go in the lift's own transaction, which fails as a whole: the person is
// told, and nothing changed, the wider ban still holds the narrower one
// (before, the lift went through and the bans it covered were out of the
// kernel until a retry worked). Once the firewall works, the unban does.
func TestClusterUncoverFails(t *testing.T) {
	e := newEnv(t)
	fw, down := failingFW()
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	r.d.Apply(ctx, []cluster.Update{remote("100.72.1.0/24", "pbx-n", time.Now(), 3*time.Hour)})
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "100.72.0.0/16", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "100.72.5.5"}); err == nil {
		t.Fatalf("unban with the firewall down: %+v; want an error", un)
	}
	if _, ok := banned(r.fw, "100.72.0.0/16"); !ok {
		t.Errorf("100.72.0.0/16 lifted by an unban that failed; firewall %v", fw.Entries())
	}
	inStep(t, r)
	down.Store(false)
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "100.72.5.5"}); err != nil || un.Result != control.Unbanned {
		t.Fatalf("unban: %+v %v", un, err)
	}
	if _, ok := banned(r.fw, "100.72.1.0/24"); !ok {
		t.Errorf("100.72.1.0/24 out of the kernel after its /16 was lifted; firewall %v", fw.Entries())
	}
	inStep(t, r)
}

// TestClusterFeedRefreshCovered (issue 20, item 1): a peer's ban inside a
// feed's network is covered by it; the feed's next refresh must not take
// its network out of force for it (one /24 of a node would end a /16 of
// the blocklist).
func TestClusterFeedRefreshCovered(t *testing.T) {
	e := newEnv(t)
	feed := filepath.Join(e.dir, "drop.txt")
	writeFeed(t, feed, "100.70.0.0/16\n")
	cfg := e.config()
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: time.Hour}, Expire: time.Hour}}
	r := startWith(t, cfg, nil, joined)
	ctx := context.Background()
	if !eventually(func() bool { return feedStatus(t, r).Enforced == 1 }) {
		t.Fatalf("feed not enforced: %+v\n%s", feedStatus(t, r), r.logs)
	}
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("100.70.1.0/24", "pbx-n", time.Now(), 3*time.Hour)}); res["known"] != 1 {
		t.Fatalf("ban inside the feed's network: %v; want known (covered)", res)
	}
	writeFeed(t, feed, "100.70.0.0/16\n100.90.0.0/16\n")
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: 2 * time.Hour}, Expire: time.Hour}} // a changed interval loads at once
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return feedStatus(t, r).Listed == 2 }) {
		t.Fatalf("feed not loaded again: %+v", feedStatus(t, r))
	}
	time.Sleep(1500 * time.Millisecond) // the tick that applies it
	if _, ok := banned(r.fw, "100.70.0.0/16"); !ok {
		t.Errorf("the feed's 100.70.0.0/16 out of force after its refresh, for pbx-n's /24 inside it\n%s", r.logs)
	}
	inStep(t, r)
}

// TestClusterIPv6PrefixWider (issue 20, item 1): after ipv6_prefix goes
// from 64 to 48, a rule's /48 takes the place of its /64 inside in the
// kernel; a peer's /64 inside stays covered; a person's unban of an
// address of the /48 outside both /64s puts them back in force; a
// restart in between keeps the /48 alone in the kernel.
func TestClusterIPv6PrefixWider(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Engine.IPv6Prefix = 64
	r := startWith(t, cfg, nil, joined)
	ctx := context.Background()
	appendLines(t, e.log, failures("2001:db8:1:1::5", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "2001:db8:1:1::/64"); return ok }) {
		t.Fatalf("no /64 ban:\n%s", r.logs)
	}
	r.d.Apply(ctx, []cluster.Update{remote("2001:db8:1:3::/64", "pbx-n", time.Now(), 3*time.Hour)})
	cfg.Engine.IPv6Prefix = 48
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.log, failures("2001:db8:1:2::5", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "2001:db8:1::/48"); return ok }) {
		t.Fatalf("no /48 ban:\n%s", r.logs)
	}
	inStep(t, r)
	fw := r.fw
	r.stop(t)
	r = startWith(t, cfg, fw, joined)
	inStep(t, r)
	if _, ok := banned(r.fw, "2001:db8:1:1::/64"); ok {
		t.Error("the /64 in the kernel beside the /48 after a restart")
	}
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "2001:db8:1:2::5"}); err != nil || un.Result != control.Unbanned {
		t.Fatalf("unban: %+v %v", un, err)
	}
	for _, p := range []string{"2001:db8:1:1::/64", "2001:db8:1:3::/64"} {
		if _, ok := banned(r.fw, p); !ok {
			t.Errorf("%s not back in force after the /48 was lifted", p)
		}
	}
	inStep(t, r)
}

// TestClusterManualRangeParts (issue 20, item 1): a person bans a range
// over the bans of two nodes, then unbans parts of it, then all: the
// ledger and the firewall agree at each step, and a node's ban the
// person did not unban comes back in force.
func TestClusterManualRangeParts(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, joined)
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{
		remote("100.72.1.0/24", "pbx-n", now, 3*time.Hour),
		remote("100.72.2.0/24", "pbx-m", now, 2*time.Hour),
		remote("100.72.3.3/32", "pbx-m", now, 2*time.Hour),
	})
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "100.72.0.0/16", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	inStep(t, r)
	if _, err := r.client.Unban(ctx, control.UnbanRequest{Target: "100.72.1.5"}); err != nil {
		t.Fatal(err)
	}
	inStep(t, r)
	if _, ok := banned(r.fw, "100.72.1.0/24"); ok {
		t.Error("100.72.1.0/24 banned after the person unbanned an address of it")
	}
	heldFor(t, r, "100.72.2.0/24", 2*time.Hour)
	heldFor(t, r, "100.72.3.3/32", 2*time.Hour)
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "100.72.0.0/16", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	inStep(t, r)
	if _, err := r.client.Unban(ctx, control.UnbanRequest{All: true}); err != nil {
		t.Fatal(err)
	}
	inStep(t, r)
	if es, _ := r.fw.List(ctx); len(es) != 0 {
		t.Errorf("firewall after unban --all: %v", es)
	}
}

// TestManualInsideWider: a person's ban of a network inside a wider ban
// in force (another node's, a feed's, this node's own) is recorded
// beside it, out of the kernel while the wider one holds it, and
// enforced for its own time when that one goes; it used to be refused
// ("unban that first"), so that a peer's 10-minute /16 made a person's
// week-long ban of a /24 inside it impossible. An import alike.
func TestManualInsideWider(t *testing.T) { manualInsideWider(t, nil) }

// manualInsideWider runs TestManualInsideWider with fw (nil: the fake).
func manualInsideWider(t *testing.T, fw firewall.Backend) {
	e := newEnv(t)
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{remote("100.73.0.0/16", "pbx-m", now, 10*time.Minute)})
	res, err := r.client.Ban(ctx, control.BanRequest{Target: "100.73.5.0/24", For: "2h"})
	if err != nil {
		t.Fatalf("ban inside a peer's wider ban: %v", err)
	}
	if res.Result != control.Banned || res.Ban.CoveredBy != "100.73.0.0/16" {
		t.Errorf("ban inside 100.73.0.0/16: %+v; want banned, covered by it", res)
	}
	if _, ok := banned(r.fw, "100.73.5.0/24"); ok {
		t.Error("100.73.5.0/24 in the kernel beside the /16 that holds it")
	}
	inStep(t, r)
	imp, err := r.client.Import(ctx, control.ImportRequest{Bans: []control.BanRequest{
		{Target: "100.73.6.0/24", For: "3h"}, {Target: "100.73.7.9", For: "3h"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if imp.Banned != 2 || imp.Covered != 1 || len(imp.Refused) != 0 {
		t.Errorf("import inside 100.73.0.0/16: %+v; want 2 banned, 1 of them covered", imp)
	}
	inStep(t, r)
	if res, _ := r.d.Apply(ctx, liftsOf("pbx-m", now, "100.73.0.0/16")); res["applied"] != 1 {
		t.Fatalf("pbx-m's lift: %v", res)
	}
	heldFor(t, r, "100.73.5.0/24", 2*time.Hour)
	heldFor(t, r, "100.73.6.0/24", 3*time.Hour)
	heldFor(t, r, "100.73.7.9/32", 3*time.Hour)
	inStep(t, r)
}

// TestCoverEndsGap (issue 20, item 1): when a network ban that holds
// others ends by itself, in the kernel, the bans inside it go in at once
// (coverSlack after), not at the core's next tick: that was a gap of up
// to a second, on every node, for a wider ban's origin to time. Three
// /16s end 300 ms apart, so that a tick cannot fall just before each.
func TestCoverEndsGap(t *testing.T) { coverEndsGap(t, nil, gapEnds, 250*time.Millisecond) }

// gapEnds are coverEndsGap's /16s' lengths.
var gapEnds = []time.Duration{1200 * time.Millisecond, 1500 * time.Millisecond, 1800 * time.Millisecond}

// coverEndsGap runs TestCoverEndsGap with fw (nil: the fake), each /24
// due within want of its /16's end, and returns the daemon.
func coverEndsGap(t *testing.T, fw firewall.Backend, ends []time.Duration, want time.Duration) *running {
	e := newEnv(t)
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	now := time.Now()
	var narrow []cluster.Update
	for i, d := range ends {
		// One call each: a slow firewall (TestCoverEndsSlowFirewall) is
		// late by one call's length, not three.
		if res, _ := r.d.Apply(ctx, []cluster.Update{remote(fmt.Sprintf("100.%d.0.0/16", 91+i), "pbx-m", now, d)}); res["applied"] != 1 {
			t.Fatalf("the /16s: %v", res)
		}
		narrow = append(narrow, remote(fmt.Sprintf("100.%d.1.0/24", 91+i), "pbx-n", now, 3*time.Hour))
	}
	if res, _ := r.d.Apply(ctx, narrow); res["known"] != len(ends) {
		t.Fatalf("the /24s inside them: %v; want all known (covered)", res)
	}
	for i, d := range ends {
		target := fmt.Sprintf("100.%d.1.0/24", 91+i)
		inForceWithin(t, r, target, now.Add(d), want)
		heldFor(t, r, target, 3*time.Hour)
	}
	if strings.Contains(r.logs.String(), "not put back") {
		t.Errorf("a return failed (the kernel still held the /16?):\n%s", r.logs)
	}
	inStep(t, r)
	return r
}

// inForceWithin waits for target to be in the firewall, and checks that
// it is within want of end, when the wider ban that held it ended.
func inForceWithin(t *testing.T, r *running, target string, end time.Time, want time.Duration) {
	t.Helper()
	for {
		if _, ok := banned(r.fw, target); ok {
			break
		}
		if time.Since(end) > 3*time.Second {
			t.Fatalf("%s not in force 3 s after the ban around it ended:\n%s", target, r.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	gap := time.Since(end)
	t.Logf("%s in force %v after the ban around it ended", target, gap.Round(100*time.Microsecond))
	if gap < 0 || gap > want {
		t.Errorf("%s in force %v after the ban around it ended; want within %v", target, gap.Round(time.Millisecond), want)
	}
}

// TestCoverEndsSlowFirewall (issue 20, item 1): the firewall's ban of a
// network ends after its record, by as long as the call that set it took
// (the kernel counts from its transaction, which a large batch, a
// restore, the read-back's lock delay): at coverSlack it still refuses
// the bans inside as overlapping. They must be tried again soon, not at
// the core's next tick, up to a second later.
func TestCoverEndsSlowFirewall(t *testing.T) {
	r := coverEndsGap(t, lateNetworks(80*time.Millisecond), gapEnds, 300*time.Millisecond)
	// Refused for those 80 ms, as the firewall said: no error, neither
	// logged nor counted (an operator would look for a broken firewall).
	if st, _ := r.client.Status(context.Background()); st.Firewall.Errors != 0 || strings.Contains(r.logs.String(), "not put back") {
		t.Errorf("%d firewall errors counted, logs:\n%s", st.Firewall.Errors, r.logs)
	}
	if !strings.Contains(r.logs.String(), "still holds a network ban that ended") {
		t.Errorf("the refusals were not logged at debug level:\n%s", r.logs)
	}
}

// TestCoverEndsLateFirewall: the firewall's ban of a network ends 700 ms
// after its record (a restore of 20,000 bans lags as much): the bans
// inside go in when the firewall says it lets the network go
// (OverlapError.Until), not at the retries' next doubling step or the
// tick, which put them back up to 1.26 s late.
func TestCoverEndsLateFirewall(t *testing.T) {
	fw := lateNetworks(700 * time.Millisecond)
	// The /16s applied one after the other (0.7 s each) all hold their
	// /24 when those come. 0.7 s lies between two doubling steps (0.62
	// and 1.26 s after the end): the old retries were 0.7-1.26 s late.
	coverEndsGap(t, fw, []time.Duration{2600 * time.Millisecond, 2900 * time.Millisecond, 3200 * time.Millisecond}, 800*time.Millisecond)
}

// lateNetworks is a fake firewall whose calls that ban a /16 take late
// longer: its ban of it ends late after its record.
func lateNetworks(late time.Duration) *fwtest.Fake {
	fw := fwtest.New(nil)
	fw.BanFunc = func(bs []firewall.Ban) error {
		for _, b := range bs {
			if b.Prefix.Bits() == 16 {
				time.Sleep(late)
			}
		}
		return nil
	}
	return fw
}

// TestCoverEndsFollowsOrigin (issue 20, item 1): the cover timer follows
// what the wider ban's origin does to it: shortened, the bans inside it
// (a person's here) go in when it now ends; renewed, they stay out, not
// tried at the old end; three deep, each level goes in as the one around
// it ends.
func TestCoverEndsFollowsOrigin(t *testing.T) { coverEndsFollowsOrigin(t, nil) }

func coverEndsFollowsOrigin(t *testing.T, fw firewall.Backend) {
	e := newEnv(t)
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	now := time.Now()
	r.d.Apply(ctx, []cluster.Update{
		remote("100.81.0.0/16", "pbx-m", now, time.Hour),
		remote("100.82.0.0/16", "pbx-m", now, 1800*time.Millisecond),
		remote("100.83.0.0/16", "pbx-m", now, 1500*time.Millisecond),
	})
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "100.81.1.0/24", For: "3h"}); err != nil || res.Ban.CoveredBy != "100.81.0.0/16" {
		t.Fatalf("a person's ban inside pbx-m's /16: %+v %v", res, err)
	}
	if res, _ := r.d.Apply(ctx, []cluster.Update{
		remote("100.82.0.0/20", "pbx-o", now, 2100*time.Millisecond),
		remote("100.82.1.0/24", "pbx-n", now, 3*time.Hour),
		remote("100.83.1.0/24", "pbx-n", now, 3*time.Hour),
	}); res["known"] != 3 {
		t.Fatalf("the bans inside: %v; want 3 known (covered)", res)
	}
	// Shortened to end first; the one about to end renewed for long.
	r.d.Apply(ctx, []cluster.Update{
		remote("100.81.0.0/16", "pbx-m", now, 1200*time.Millisecond),
		remote("100.83.0.0/16", "pbx-m", now, time.Hour),
	})
	inForceWithin(t, r, "100.81.1.0/24", now.Add(1200*time.Millisecond), 250*time.Millisecond)
	inForceWithin(t, r, "100.82.0.0/20", now.Add(1800*time.Millisecond), 250*time.Millisecond)
	if _, ok := banned(r.fw, "100.82.1.0/24"); ok {
		t.Error("100.82.1.0/24 in force beside the /20 around it")
	}
	inForceWithin(t, r, "100.82.1.0/24", now.Add(2100*time.Millisecond), 250*time.Millisecond)
	heldFor(t, r, "100.81.1.0/24", 3*time.Hour)
	heldFor(t, r, "100.83.0.0/16", time.Hour)
	if _, ok := banned(r.fw, "100.83.1.0/24"); ok {
		t.Error("100.83.1.0/24 in force beside the /16 around it, renewed")
	}
	if strings.Contains(r.logs.String(), "not put back") {
		t.Errorf("a return failed:\n%s", r.logs)
	}
	inStep(t, r)
}

// holdWatch is a backend that checks, after each call that changes the
// bans, that every address of watch is still dropped by a ban held, and
// keeps the calls that left one out.
type holdWatch struct {
	firewall.Backend
	watch []netip.Addr
	mu    sync.Mutex
	gaps  []string
}

func (h *holdWatch) check(call string, err error) error {
	if err != nil {
		return err
	}
	es, _ := h.Backend.List(context.Background())
	for _, a := range h.watch {
		if !slices.ContainsFunc(es, func(e firewall.Entry) bool { return e.Prefix.Contains(a) }) {
			h.mu.Lock()
			h.gaps = append(h.gaps, fmt.Sprintf("%s left %v out of the firewall", call, a))
			h.mu.Unlock()
		}
	}
	return nil
}

func (h *holdWatch) Change(ctx context.Context, lift []firewall.Lift, bs ...firewall.Ban) error {
	return h.check(fmt.Sprintf("Change(lift %v, ban %v)", lift, bs), h.Backend.Change(ctx, lift, bs...))
}

func (h *holdWatch) Ban(ctx context.Context, bs ...firewall.Ban) error {
	return h.check(fmt.Sprintf("Ban(%v)", bs), h.Backend.Ban(ctx, bs...))
}

func (h *holdWatch) Unban(ctx context.Context, ps ...netip.Prefix) error {
	return h.check(fmt.Sprintf("Unban(%v)", ps), h.Backend.Unban(ctx, ps...))
}

func (h *holdWatch) UnbanIn(ctx context.Context, ports string, ps ...netip.Prefix) error {
	return h.check(fmt.Sprintf("UnbanIn(%q, %v)", ports, ps), h.Backend.UnbanIn(ctx, ports, ps...))
}

func (h *holdWatch) Gaps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.gaps)
}

// TestLiftPutsBackAtOnce (issue 20): a network ban inside a wider one is
// out of the kernel (it holds no overlapping networks) until the wider one
// goes; when it goes, lifted by a person's unban of an address inside it,
// by its origin, gone from its feed, or covering an address newly
// allowlisted, the narrower one goes in in the same transaction. As a second one, the narrower ban was out of the
// firewall in between, and for as long as that second one failed. Three
// deep, only the level right inside the one lifted goes in, though the
// origin of the one lifted made it too: the level inside that one is
// still covered.
func TestLiftPutsBackAtOnce(t *testing.T) {
	liftPutsBackAtOnce(t, func() firewall.Backend { return fwtest.New(nil) })
}

func liftPutsBackAtOnce(t *testing.T, newFW func() firewall.Backend) {
	for _, how := range []string{"unban", "lifted", "feed", "three deep", "allowlisted"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			fw := &holdWatch{Backend: newFW(), watch: []netip.Addr{netip.MustParseAddr("100.73.5.9")}}
			cfg := e.config()
			feed := filepath.Join(e.dir, "drop.txt")
			if how == "feed" {
				writeFeed(t, feed, "100.73.0.0/16\n")
				cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: time.Hour}, Expire: time.Hour}}
			}
			r := startWith(t, cfg, fw, joined)
			ctx := context.Background()
			now := time.Now()
			switch how {
			case "feed":
				if !eventually(func() bool { _, ok := banned(r.fw, "100.73.0.0/16"); return ok }) {
					t.Fatalf("the feed's /16 not enforced:\n%s", r.logs)
				}
			case "three deep":
				r.d.Apply(ctx, []cluster.Update{remote("100.73.0.0/16", "pbx-m", now, 10*time.Minute), remote("100.73.0.0/20", "pbx-m", now, time.Hour)})
			default:
				r.d.Apply(ctx, []cluster.Update{remote("100.73.0.0/16", "pbx-m", now, 10*time.Minute)})
			}
			res, err := r.client.Ban(ctx, control.BanRequest{Target: "100.73.5.0/24", For: "2h"})
			if err != nil || res.Ban.CoveredBy == "" {
				t.Fatalf("ban inside the /16: %+v %v", res, err)
			}
			switch how {
			case "unban":
				if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "100.73.200.1"}); err != nil || un.Result != control.Unbanned {
					t.Fatalf("unban of an address of the /16: %+v %v", un, err)
				}
			case "lifted", "three deep":
				if res, _ := r.d.Apply(ctx, liftsOf("pbx-m", now, "100.73.0.0/16")); res["applied"] != 1 {
					t.Fatalf("pbx-m's lift: %v", res)
				}
			case "allowlisted":
				allow := cfg
				allow.Engine.Allow = append(slices.Clone(cfg.Engine.Allow), netip.MustParsePrefix("100.73.200.1/32"))
				if err := r.d.Reload(ctx, allow); err != nil {
					t.Fatal(err)
				}
			case "feed":
				writeFeed(t, feed, "198.51.100.0/24\n")
				// A new interval: a new loader, which loads at once.
				cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: 2 * time.Hour}, Expire: time.Hour}}
				if err := r.d.Reload(ctx, cfg); err != nil {
					t.Fatal(err)
				}
				if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.0/24"); return ok }) {
					t.Fatalf("the feed's new list not enforced:\n%s", r.logs)
				}
			}
			if _, ok := banned(r.fw, "100.73.0.0/16"); ok {
				t.Error("the /16 is still banned")
			}
			if how == "three deep" {
				heldFor(t, r, "100.73.0.0/20", time.Hour)
				if _, ok := banned(r.fw, "100.73.5.0/24"); ok {
					t.Error("the /24 in the kernel beside the /20 that holds it")
				}
			} else {
				heldFor(t, r, "100.73.5.0/24", 2*time.Hour)
			}
			for _, g := range fw.Gaps() {
				t.Error(g)
			}
			inStep(t, r)
		})
	}
}

// TestAllowWinsFirewallFailing: an address newly allowlisted inside a
// network ban that holds a narrower one, with the firewall refusing bans:
// the one transaction (TestLiftPutsBackAtOnce) fails, and the network is
// lifted on its own all the same, the allowlist first; the narrower ban
// goes back in once the firewall works.
func TestAllowWinsFirewallFailing(t *testing.T) {
	e := newEnv(t)
	fw, down := failingFW()
	cfg := e.config()
	r := startWith(t, cfg, fw, joined)
	ctx := context.Background()
	r.d.Apply(ctx, []cluster.Update{remote("100.73.0.0/16", "pbx-m", time.Now(), 10*time.Minute)})
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "100.73.5.0/24", For: "2h"}); err != nil || res.Ban.CoveredBy == "" {
		t.Fatalf("ban inside the /16: %+v %v", res, err)
	}
	down.Store(true)
	cfg.Engine.Allow = append(slices.Clone(cfg.Engine.Allow), netip.MustParsePrefix("100.73.200.1/32"))
	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := banned(r.fw, "100.73.0.0/16"); ok {
		t.Errorf("the /16 holding a newly allowlisted address is still banned: %v", fw.Entries())
	}
	if st, _ := r.client.Status(ctx); st.Firewall.Errors == 0 {
		t.Error("the firewall's refusals not counted")
	}
	down.Store(false)
	if !eventually(func() bool { _, ok := banned(r.fw, "100.73.5.0/24"); return ok }) {
		t.Errorf("100.73.5.0/24 not back in force once the firewall works: %v\n%s", fw.Entries(), r.logs)
	}
	inStep(t, r)
}
