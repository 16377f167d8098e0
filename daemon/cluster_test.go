package daemon_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/internal/testutil"
)

// peers records what the daemon gives the cluster.
type peers struct {
	mu        sync.Mutex
	published []cluster.Ban
	lifted    []cluster.Ban
	unbans    []cluster.Unban
}

func (f *peers) Publish(b cluster.Ban) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, b)
}

func (f *peers) PublishLifted(b cluster.Ban) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lifted = append(f.lifted, b)
}

func (f *peers) PublishUnban(u cluster.Unban) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unbans = append(f.unbans, u)
	return nil
}

func (f *peers) Stats() cluster.Stats { return cluster.Stats{Node: "here"} }

func (f *peers) Servers() []netip.Addr { return []netip.Addr{netip.MustParseAddr("198.51.100.222")} }

func (f *peers) snapshot() (pub, lifted []cluster.Ban, unbans []cluster.Unban) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cluster.Ban(nil), f.published...), append([]cluster.Ban(nil), f.lifted...), append([]cluster.Unban(nil), f.unbans...)
}

func remote(target, origin string, since time.Time, d time.Duration) cluster.Update {
	return cluster.Update{Kind: cluster.UpdateBan, Ban: cluster.Ban{
		Target: netip.MustParsePrefix(target), Rule: "burst", Reason: "5 events", Origin: origin, Since: since, Expires: since.Add(d), Count: 5,
	}}
}

// joined sets a daemon up as a cluster node that publishes nothing: the
// test plays its peers, through Apply.
func joined(d *daemon.Daemon) { d.Join(&peers{}, false) }

// liftsOf is origin's "lifted" messages of targets, for bans made at since.
func liftsOf(origin string, since time.Time, targets ...string) []cluster.Update {
	var out []cluster.Update
	for _, target := range targets {
		l := remote(target, origin, since, time.Hour)
		l.Kind = cluster.UpdateLifted
		out = append(out, l)
	}
	return out
}

// heldFor checks that fw holds target for about want more (-2 min, +1).
func heldFor(t *testing.T, r *running, target string, want time.Duration) {
	t.Helper()
	ent, ok := banned(r.fw, target)
	if !ok {
		t.Errorf("%s not banned:\n%s", target, r.logs)
		return
	}
	if left := time.Until(ent.Expires); left < want-2*time.Minute || left > want+time.Minute {
		t.Errorf("%s: %v left in the firewall; want %v", target, left, want)
	}
}

func TestCluster(t *testing.T) {
	e := newEnv(t)
	f := &peers{}
	r := startWith(t, e.config(), nil, func(d *daemon.Daemon) { d.Join(f, true) })
	ctx := context.Background()

	// This node's bans go to the cluster: rule bans and manual ones.
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { pub, _, _ := f.snapshot(); return len(pub) == 1 }) {
		t.Fatalf("rule ban not published:\n%s", r.logs)
	}
	r.client.Ban(ctx, control.BanRequest{Target: "203.0.113.0/24", For: "2h"})
	pub, _, _ := f.snapshot()
	if len(pub) != 2 || pub[0].Target.String() != "198.51.100.7/32" || pub[0].Rule != "burst" || pub[0].Origin != "" ||
		pub[1].Rule != "manual" || time.Until(pub[1].Expires) < 119*time.Minute {
		t.Fatalf("published: %+v", pub)
	}

	// Other nodes' bans: enforced unless allowed here, known for longer,
	// or over; never published again.
	now := time.Now()
	res, err := r.d.Apply(ctx, []cluster.Update{
		remote("198.51.100.50/32", "pbx-a", now, time.Hour),
		remote("2001:db8:5::/64", "pbx-a", now, time.Hour),
		remote("192.0.2.7/32", "pbx-a", now, time.Hour),      // allowlisted here
		remote("198.51.100.7/32", "pbx-b", now, time.Minute), // banned here for longer
		remote("198.51.100.51/32", "pbx-a", now.Add(-2*time.Hour), time.Hour),
		remote("198.51.100.0/24", "pbx-a", now, time.Hour),                 // holds the cluster's server
		remote("198.51.100.52/32", "pbx-a", now.Add(time.Hour), time.Hour), // starts in an hour
	})
	if err != nil || res["applied"] != 2 || res["allowlisted"] != 1 || res["known"] != 1 || res["expired"] != 1 || res["server"] != 1 || res["future"] != 1 {
		t.Fatalf("apply: %v %v", res, err)
	}
	for _, target := range []string{"198.51.100.50/32", "2001:db8:5::/64"} {
		if ent, ok := banned(r.fw, target); !ok || time.Until(ent.Expires) < 59*time.Minute {
			t.Errorf("%s not enforced: %v", target, ent)
		}
	}
	if _, ok := banned(r.fw, "192.0.2.7/32"); ok {
		t.Error("an allowlisted address was banned for another node")
	}
	if pub, _, _ := f.snapshot(); len(pub) != 2 {
		t.Errorf("a peer's ban was published again: %+v", pub[2:])
	}
	bans, _ := r.client.List(ctx)
	origins := map[string]string{}
	for _, b := range bans {
		origins[b.Target] = b.Origin
	}
	if origins["198.51.100.50"] != "pbx-a" || origins["198.51.100.7"] != "" {
		t.Errorf("list origins: %v", origins)
	}
	st, _ := r.client.Status(ctx)
	if st.Cluster == nil || st.Cluster.Node != "here" || st.Rules[0].Bans != 1 {
		t.Errorf("status: cluster %+v, rule bans %d (peers' bans are not this node's rule's)", st.Cluster, st.Rules[0].Bans)
	}
	own, _ := r.d.Own(ctx)
	if len(own) != 2 {
		t.Errorf("own bans: %+v", own)
	}

	// escalate: a peer's ban counts as an offence here, so this node's
	// next ban of that address is longer (factor 2).
	r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.50"})
	r.d.Apply(ctx, []cluster.Update{remote("198.51.100.60/32", "pbx-a", time.Now(), time.Minute)})
	r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.60"}) // a plain unban forgets offences too
	r.d.Apply(ctx, []cluster.Update{remote("198.51.100.61/32", "pbx-a", time.Now(), time.Second)})
	time.Sleep(1100 * time.Millisecond)
	appendLines(t, e.log, failures("198.51.100.61", 5, time.Now().Add(time.Second))...) // log times are whole seconds
	var ent struct {
		ok  bool
		exp time.Time
	}
	if !eventually(func() bool {
		bans, _ := r.client.List(ctx)
		for _, b := range bans {
			if b.Target == "198.51.100.61" && b.Origin == "" {
				ent.ok, ent.exp = true, b.Expires
			}
		}
		return ent.ok
	}) {
		st, _ := r.client.Status(ctx)
		t.Fatalf("198.51.100.61 not banned here: %+v %+v\n%s", st.Engine, st.Sources, r.logs)
	}
	if left := time.Until(ent.exp); left < 119*time.Minute {
		t.Errorf("ban after a peers offence lasts %v; want 2h (escalated)", left)
	}

	// A cluster unban from another node lifts this node's own ban too,
	// tells the peers so, and keeps an older ban of it from coming back.
	unbanAt := time.Now()
	res, _ = r.d.Apply(ctx, []cluster.Update{{Kind: cluster.UpdateUnban, Unban: cluster.Unban{
		Target: netip.MustParsePrefix("198.51.100.7/32"), Origin: "pbx-c", Time: unbanAt, Until: unbanAt.Add(time.Hour),
	}}})
	if res["applied"] != 1 {
		t.Fatalf("cluster unban: %v", res)
	}
	if _, ok := banned(r.fw, "198.51.100.7/32"); ok {
		t.Fatal("cluster unban did not lift the ban here")
	}
	if _, lifted, _ := f.snapshot(); len(lifted) != 1 || lifted[0].Target.String() != "198.51.100.7/32" {
		t.Errorf("lifted: %+v", lifted)
	}
	res, _ = r.d.Apply(ctx, []cluster.Update{remote("198.51.100.7/32", "pbx-b", unbanAt.Add(-time.Second), time.Hour)})
	if res["unbanned"] != 1 {
		t.Errorf("an older ban came back after a cluster unban: %v", res)
	}
	res, _ = r.d.Apply(ctx, []cluster.Update{remote("198.51.100.7/32", "pbx-b", time.Now(), time.Hour)})
	if res["applied"] != 1 {
		t.Errorf("a newer ban was refused: %v", res)
	}

	// Its origin lifting a ban lifts it here; another node cannot.
	lift := remote("2001:db8:5::/64", "pbx-b", now, time.Hour)
	lift.Kind = cluster.UpdateLifted
	if res, _ := r.d.Apply(ctx, []cluster.Update{lift}); res["not_held"] != 1 {
		t.Errorf("pbx-b lifted pbx-a's ban: %v", res)
	}
	lift.Ban.Origin = "pbx-a"
	if res, _ := r.d.Apply(ctx, []cluster.Update{lift}); res["applied"] != 1 {
		t.Errorf("pbx-a could not lift its ban: %v", res)
	}
	if _, ok := banned(r.fw, "2001:db8:5::/64"); ok {
		t.Error("lifted ban still enforced")
	}

	// unban --cluster: lifted here, and sent.
	un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "203.0.113.0/24", Cluster: true})
	if err != nil || !un.Cluster || un.Result != control.Unbanned {
		t.Fatalf("unban --cluster: %+v %v", un, err)
	}
	if _, _, unbans := f.snapshot(); len(unbans) != 1 || unbans[0].Target.String() != "203.0.113.0/24" || time.Until(unbans[0].Until) < 23*time.Hour {
		t.Errorf("unban sent: %+v (until: at least the longest ban, 24h)", unbans)
	}
	if _, err := r.client.Unban(ctx, control.UnbanRequest{All: true, Cluster: true}); err == nil {
		t.Error("unban --all --cluster accepted")
	}

	// Cluster bans survive a restart with their origin.
	r.stop(t)
	r = start(t, e.config(), nil)
	bans, _ = r.client.List(ctx)
	found := false
	for _, b := range bans {
		found = found || b.Target == "198.51.100.7" && b.Origin == "pbx-b"
	}
	if !found {
		t.Errorf("peers ban lost its origin across a restart: %+v", bans)
	}
	// A peers ban lifted here by a plain unban stays lifted when the
	// stream is read again after the restart; a newer one of it does not.
	res, _ = r.d.Apply(ctx, []cluster.Update{remote("198.51.100.50/32", "pbx-a", now, time.Hour)})
	if res["unbanned"] != 1 {
		t.Errorf("a peer's ban unbanned here came back after a restart: %v", res)
	}
	if _, err := r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.7", Cluster: true}); err == nil || !strings.Contains(err.Error(), "no [cluster]") {
		t.Errorf("unban --cluster without a cluster: %v", err)
	}
}

// TestClusterTakeover (issue 20, item 1): a peer bans an address this node
// bans already, for longer, then lifts it: this node's ban stays, in the
// ledger and in the kernel, for its own time; another peer's lift of it is
// refused; a plain unban here lifts all of them.
func TestClusterTakeover(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, joined)
	ctx := context.Background()
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("not banned:\n%s", r.logs)
	}
	own, _ := banned(r.fw, "198.51.100.7/32")
	if _, err := r.client.Ban(ctx, control.BanRequest{Target: "203.0.113.9", For: "1h"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	res, _ := r.d.Apply(ctx, []cluster.Update{
		remote("198.51.100.7/32", "pbx-a", now, 3*time.Hour),
		remote("203.0.113.9/32", "pbx-a", now, 5*time.Hour),
	})
	if res["applied"] != 2 {
		t.Fatalf("the longer remote bans: %v", res)
	}
	if ent, _ := banned(r.fw, "198.51.100.7/32"); time.Until(ent.Expires) < 179*time.Minute {
		t.Errorf("the kernel holds the union: %v left; want the peer's 3h", time.Until(ent.Expires))
	}
	// Another peer cannot lift pbx-a's record.
	forged := remote("198.51.100.7/32", "pbx-b", now, 3*time.Hour)
	forged.Kind = cluster.UpdateLifted
	if res, _ := r.d.Apply(ctx, []cluster.Update{forged}); res["not_held"] != 1 {
		t.Errorf("pbx-b lifted pbx-a's record: %v", res)
	}
	// pbx-a lifts its own: this node's bans stay, for their own time.
	lifts := liftsOf("pbx-a", now, "198.51.100.7/32", "203.0.113.9/32")
	if res, _ := r.d.Apply(ctx, lifts); res["applied"] != 2 {
		t.Fatalf("pbx-a's lifts: %v", res)
	}
	for target, want := range map[string]time.Duration{"198.51.100.7/32": time.Until(own.Expires), "203.0.113.9/32": time.Hour} {
		ent, ok := banned(r.fw, target)
		if !ok {
			t.Fatalf("%s lifted by a peer's lift: this node's own ban went with it", target)
		}
		if left := time.Until(ent.Expires); left > want+time.Minute || left < want-2*time.Minute {
			t.Errorf("%s: %v left in the kernel; want this node's %v", target, left, want)
		}
	}
	list, _ := r.client.List(ctx)
	rules := map[string]string{}
	for _, b := range list {
		rules[b.Target] = b.Rule + "/" + b.Origin
	}
	if rules["198.51.100.7"] != "burst/" || rules["203.0.113.9"] != "manual/" {
		t.Errorf("list after the lift: %v", rules)
	}
	// A plain unban here lifts every origin's record.
	r.d.Apply(ctx, []cluster.Update{remote("203.0.113.9/32", "pbx-c", time.Now(), 5*time.Hour)})
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "203.0.113.9"}); err != nil || un.Result != control.Unbanned {
		t.Fatalf("unban: %+v %v", un, err)
	}
	if _, ok := banned(r.fw, "203.0.113.9/32"); ok {
		t.Error("still banned after a plain unban: a peer's record stayed")
	}
}

// TestClusterTakeoverWider (issue 20, item 1, through a network): the
// kernel holds no overlapping networks, so a wider network ban replaces
// the ones inside it, records and all. A peer's network ban that holds
// another origin's network ban (this node's, another peer's) is refused:
// replaced, that ban would have ended with the peer's lift, or with the
// peer's shorter time. Over its own narrower bans it is applied.
func TestClusterTakeoverWider(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, joined)
	ctx := context.Background()
	for _, target := range []string{"203.0.113.0/25", "198.51.100.0/26"} {
		if _, err := r.client.Ban(ctx, control.BanRequest{Target: target, For: "2h"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	res, _ := r.d.Apply(ctx, []cluster.Update{
		remote("203.0.113.0/24", "pbx-a", now, 3*time.Hour),     // then lifted
		remote("198.51.100.0/25", "pbx-a", now, 10*time.Minute), // ends first
		remote("100.70.0.0/26", "pbx-b", now, 3*time.Hour),      // another peer's
		remote("100.80.0.0/26", "pbx-a", now, 3*time.Hour),      // its own
	})
	if res["overlaps"] != 2 || res["applied"] != 2 {
		t.Fatalf("the remote bans: %v; want 2 applied, then 2 refused over this node's", res)
	}
	res, _ = r.d.Apply(ctx, []cluster.Update{
		remote("100.70.0.0/24", "pbx-a", now, 5*time.Hour), // over pbx-b's
		remote("100.80.0.0/24", "pbx-a", now, 5*time.Hour), // over its own
	})
	if res["overlaps"] != 1 || res["applied"] != 1 {
		t.Fatalf("wider bans over a peer's: %v; want the one over pbx-b's refused, the one over its own applied", res)
	}
	lifts := liftsOf("pbx-a", now, "203.0.113.0/24", "100.70.0.0/24", "100.80.0.0/24")
	if res, _ := r.d.Apply(ctx, lifts); res["not_held"] != 2 || res["applied"] != 1 {
		t.Fatalf("pbx-a's lifts: %v; want its own /24 lifted, nothing else held", res)
	}
	// Not taken over: each for its own time; pbx-a's own /26, under its
	// /24 while that was in force, too (it lifted only the /24).
	heldFor(t, r, "203.0.113.0/25", 2*time.Hour)
	heldFor(t, r, "198.51.100.0/26", 2*time.Hour)
	heldFor(t, r, "100.70.0.0/26", 3*time.Hour)
	heldFor(t, r, "100.80.0.0/26", 3*time.Hour)
	for _, target := range []string{"203.0.113.0/24", "198.51.100.0/25", "100.70.0.0/24", "100.80.0.0/24"} {
		if _, ok := banned(r.fw, target); ok {
			t.Errorf("%s banned", target)
		}
	}
	list, _ := r.client.List(ctx)
	got := map[string]string{}
	for _, b := range list {
		got[b.Target] = b.Rule + "/" + b.Origin
	}
	if got["203.0.113.0/25"] != "manual/" || got["198.51.100.0/26"] != "manual/" || got["100.70.0.0/26"] != "burst/pbx-b" ||
		got["100.80.0.0/26"] != "burst/pbx-a" || len(got) != 4 {
		t.Errorf("list: %v; want this node's two manual bans, pbx-b's and pbx-a's /26", got)
	}
}

// TestClusterCovered (issue 20, item 1): a ban that comes inside a wider
// ban in force is recorded beside it, and put in force when the wider
// one goes, lifted by its origin or ended: a node's wide ban and its lift
// do not blind another node's ban, nor this node's own.
func TestClusterCovered(t *testing.T) {
	clusterCovered(t, func() firewall.Backend { return nil })
}

// clusterCovered runs TestClusterCovered with a firewall from newFW, a new
// one at each start of the daemon (nil: a dry run).
func clusterCovered(t *testing.T, newFW func() firewall.Backend) {
	e := newEnv(t)
	r := startWith(t, e.config(), newFW(), joined)
	ctx := context.Background()
	now := time.Now()
	res, _ := r.d.Apply(ctx, []cluster.Update{
		remote("100.70.0.0/16", "pbx-m", now, time.Hour),     // lifted
		remote("100.90.0.0/16", "pbx-m", now, 3*time.Second), // ends
	})
	if res["applied"] != 2 {
		t.Fatalf("the wide bans: %v", res)
	}
	res, _ = r.d.Apply(ctx, []cluster.Update{
		remote("100.70.1.0/24", "pbx-n", now, 3*time.Hour),
		remote("100.90.1.0/24", "pbx-n", now, 3*time.Hour),
	})
	if res["known"] != 2 {
		t.Fatalf("bans inside the wide ones: %v; want 2 known (covered)", res)
	}
	// In one batch, the wider first or last: the narrower one waits for
	// the wider one all the same (the kernel would refuse the later).
	for _, batch := range [][]cluster.Update{
		{remote("100.50.0.0/16", "pbx-m", now, time.Hour), remote("100.50.1.0/24", "pbx-n", now, 3*time.Hour)},
		{remote("100.40.1.0/24", "pbx-n", now, 3*time.Hour), remote("100.40.0.0/16", "pbx-m", now, time.Hour)},
	} {
		if res, _ := r.d.Apply(ctx, batch); res["applied"] != 2 {
			t.Fatalf("a wide ban and one inside it in one batch: %v", res)
		}
	}
	// This node's own: an IPv6 attacker, banned by its /64, inside a
	// peer's /48.
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("2001:db8:5::/48", "pbx-m", now, time.Hour)}); res["applied"] != 1 {
		t.Fatalf("the /48: %v", res)
	}
	appendLines(t, e.log, failures("2001:db8:5:0:1::7", 5, time.Now())...)
	handled(t, r, 5)
	for _, target := range []string{"100.70.1.0/24", "2001:db8:5::/64", "100.90.1.0/24"} {
		if _, ok := banned(r.fw, target); ok {
			t.Errorf("%s in the firewall beside the /16 that covers it", target)
		}
	}
	// list and why name the wider ban that holds a covered one.
	list, _ := r.client.List(ctx)
	covered := map[string]string{}
	for _, b := range list {
		covered[b.Target] = b.CoveredBy
	}
	if covered["100.70.1.0/24"] != "100.70.0.0/16" || covered["2001:db8:5::/64"] != "2001:db8:5::/48" || covered["100.70.0.0/16"] != "" {
		t.Errorf("list's covered_by: %v", covered)
	}
	if why, err := r.client.Why(ctx, "100.70.1.9"); err != nil || len(why.Bans) != 2 {
		t.Errorf("why 100.70.1.9: %+v %v; want the /16 and the /24", why.Bans, err)
	} else {
		for _, b := range why.Bans {
			if want := map[string]string{"100.70.0.0/16": "", "100.70.1.0/24": "100.70.0.0/16"}[b.Target]; b.CoveredBy != want {
				t.Errorf("why: %s covered by %q; want %q", b.Target, b.CoveredBy, want)
			}
		}
	}
	// Restarted, the daemon restores the wide bans, and the ones inside
	// them stay covered (the kernel would refuse them as overlapping).
	r.stop(t)
	r = startWith(t, e.config(), newFW(), joined)
	if _, ok := banned(r.fw, "100.70.0.0/16"); !ok {
		t.Fatalf("100.70.0.0/16 not restored:\n%s", r.logs)
	}
	for _, target := range []string{"100.70.1.0/24", "2001:db8:5::/64"} {
		if _, ok := banned(r.fw, target); ok {
			t.Errorf("%s restored beside the wider ban that covers it", target)
		}
	}
	lifts := liftsOf("pbx-m", now, "100.70.0.0/16", "2001:db8:5::/48", "100.50.0.0/16", "100.40.0.0/16")
	if res, _ := r.d.Apply(ctx, lifts); res["applied"] != 4 {
		t.Fatalf("pbx-m's lift: %v", res)
	}
	if _, ok := banned(r.fw, "100.70.0.0/16"); ok {
		t.Error("100.70.0.0/16 banned after its lift")
	}
	// A person's unban of an address inside a wide ban lifts the wide
	// ban; the bans inside it that hold other addresses stay.
	r.d.Apply(ctx, []cluster.Update{remote("100.60.0.0/16", "pbx-m", now, time.Hour)})
	r.d.Apply(ctx, []cluster.Update{remote("100.60.1.0/24", "pbx-n", now, 3*time.Hour)})
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "100.60.5.5"}); err != nil || un.Result != control.Unbanned {
		t.Fatalf("unban: %+v %v", un, err)
	}
	if _, ok := banned(r.fw, "100.60.0.0/16"); ok {
		t.Error("100.60.0.0/16 banned after an unban of an address inside it")
	}
	heldFor(t, r, "100.60.1.0/24", 3*time.Hour)
	heldFor(t, r, "100.70.1.0/24", 3*time.Hour) // pbx-n's
	heldFor(t, r, "100.50.1.0/24", 3*time.Hour)
	heldFor(t, r, "100.40.1.0/24", 3*time.Hour)
	if ent, ok := banned(r.fw, "2001:db8:5::/64"); !ok || time.Until(ent.Expires) < 50*time.Minute {
		t.Errorf("this node's own /64 after the /48 around it was lifted: %v, %v left", ok, time.Until(ent.Expires))
	}
	// The other /16 ends by itself: the /24 inside it comes back once the
	// kernel has let the /16 go (TestCoverEndsGap measures how soon).
	if !eventually(func() bool { _, ok := banned(r.fw, "100.90.1.0/24"); return ok }) {
		t.Fatalf("100.90.1.0/24 not in force after the /16 around it ended:\n%s", r.logs)
	}
	heldFor(t, r, "100.90.1.0/24", 3*time.Hour)
	if _, ok := banned(r.fw, "100.90.0.0/16"); ok {
		t.Error("100.90.0.0/16 banned after its end")
	}
}

// TestPeerLimits (issue 20, item 2): a peer's bans beyond its limits are
// refused and counted; other peers and this node are not affected.
func TestPeerLimits(t *testing.T) {
	e := newEnv(t)
	r := startWith(t, e.config(), nil, func(d *daemon.Daemon) {
		d.Join(&peers{}, false)
		d.LimitPeers(daemon.PeerLimits{Bans: 100, Networks: 3, Space4: 1 << 17, PerMinute: 150})
	})
	ctx := context.Background()
	old := time.Now().Add(-time.Hour) // made an hour ago: a catch-up, not a flood
	var flood []cluster.Update
	for i := range 300 {
		flood = append(flood, remote(fmt.Sprintf("198.18.%d.%d/32", i/250, i%250+1), "pbx-x", old, 2*time.Hour))
	}
	res, _ := r.d.Apply(ctx, flood)
	if res["applied"] != 100 || res["limit"] != 200 {
		t.Errorf("300 bans over a limit of 100: %v", res)
	}
	// Networks: 3 at most, and 2^17 IPv4 addresses: two /16s fill it.
	res, _ = r.d.Apply(ctx, []cluster.Update{
		remote("10.1.0.0/16", "pbx-y", old, 2*time.Hour), remote("10.2.0.0/16", "pbx-y", old, 2*time.Hour),
		remote("10.3.0.0/24", "pbx-y", old, 2*time.Hour), remote("10.4.0.0/24", "pbx-y", old, 2*time.Hour),
		remote("10.5.0.0/24", "pbx-y", old, 2*time.Hour),
	})
	if res["applied"] != 2 || res["limit"] != 3 {
		t.Errorf("networks and address space: %v", res)
	}
	// A renewal is never refused.
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("198.18.0.1/32", "pbx-x", time.Now(), 3*time.Hour)}); res["applied"] != 1 {
		t.Errorf("renewal over the limit: %v", res)
	}
	// Rate: bans made within the last minute, 150 at most.
	var fresh []cluster.Update
	for i := range 200 {
		fresh = append(fresh, remote(fmt.Sprintf("198.19.0.%d/32", i+1), "pbx-z", time.Now(), time.Hour))
	}
	if res, _ := r.d.Apply(ctx, fresh); res["applied"] != 100 || res["limit"] != 100 {
		t.Errorf("200 fresh bans, rate 150 a minute and 100 bans: %v", res)
	}
	// This node and other peers still ban.
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Error("a local ban after the peers' floods")
	}
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("198.51.100.9/32", "pbx-ok", time.Now(), time.Hour)}); res["applied"] != 1 {
		t.Errorf("another peer: %v", res)
	}
	if n := strings.Count(r.logs.String(), "over its limit"); n < 3 || n > 6 {
		t.Errorf("%d limit warnings; want one per peer and limit", n)
	}
}

// TestPeerFloodLocalLatency (issue 20, item 2): local bans never wait
// behind other nodes' work. Attackers come to the log one a millisecond
// before, during and after a flood of 100,000 peers' bans applied 5,000
// at a time (the cluster node's batch); the latency is the daemon's own,
// the line read to the ban in the firewall (Notice.Latency). A turn of
// peers' bans ends as soon as a local batch waits and lasts 125 µs at
// most, and the core rests from them four times as long as each turn
// took (peerRest), so most local bans find the core and the firewall
// idle: their p50 and p90 during the flood stay those without it (p90
// within twice its value, or a floor) and their p99 within four times,
// or a floor; after it, with the 100,000 bans held (their expiry, the
// state file's snapshot and the firewall's checks do not stop the core
// or the firewall for a walk of every ban), p99 within four times, or
// 3 ms. The floors are a 2-core machine's scheduling and the collector's
// while 100,000 bans join the heap (all checked when the test has the
// machine to itself: SIPGUARD_ALONE, test.sh's section of its own; in
// go test ./..., a flood of 10,000 checks that local bans are not queued
// behind it). Measured on 2 cores, alone, four runs (2026-12-04):
// p50/p90/p99 13-19/54-63/116-156 µs during the flood, 10-20/18-38/60-84
// µs without it, the flood at 28,000-33,000 bans a second; without the
// rest (turns of 250 µs one after another), 182-199/224-277/358-1373 µs
// at 230,000-320,000 a second. On a machine whose cores other processes
// keep busy, the flood's figures are the scheduler's: tens of
// milliseconds, and the test fails.
func TestPeerFloodLocalLatency(t *testing.T) {
	peerFloodLatency(t, firewall.NewDryRun(zerolog.Nop(), nil), floodFloor{p90: 200 * time.Microsecond, p99: time.Millisecond})
}

// floodFloor is the least a local ban's p90 and p99 during the flood are
// allowed, whatever they were without it: below it, the difference is a
// 2-core machine's scheduling and the collector's, not a wait behind the
// flood.
type floodFloor struct{ p90, p99 time.Duration }

// floodLatency is what peerFloodLatency measures: local bans' latencies,
// sorted, before, during and after a flood of peers' bans, and the flood's
// length.
type floodLatency struct {
	quiet, flood, after []time.Duration
	took                time.Duration
}

func p90(d []time.Duration) time.Duration { return d[len(d)*9/10] }
func p99(d []time.Duration) time.Duration { return d[len(d)*99/100] }

// peerFloodLatency runs TestPeerFloodLocalLatency's measurement with fw:
// 200 attackers first, then as many as come while 100,000 peers' bans
// (10,000 but in test.sh's section: SIPGUARD_ALONE) are applied, then those
// of two windows of 2 s with the bans held (the core's ticks: expiry, the
// state file; the better window is judged). Local bans never wait
// behind the flood: queued behind it, their p90 and p99 would be half of
// its length.
func peerFloodLatency(t *testing.T, fw firewall.Backend, floor floodFloor) {
	e := newEnv(t)
	seen := make(chan daemon.Notice, 1<<16)
	// The daemon's log at info as in production: the latency measured is
	// the daemon's, not the test's log buffer growing.
	r := startLevel(t, e.config(), fw, nil, zerolog.InfoLevel, func(d *daemon.Daemon) {
		d.Join(&peers{}, false)
		d.Observe(observerFunc(func(n daemon.Notice) {
			if n.Type == daemon.NoticeBan && n.Node == "" {
				seen <- n
			}
		}))
	})
	ctx := context.Background()
	// measure bans a new attacker every interval, until stop is closed
	// or n are banned, and returns their latencies, sorted. Attackers come
	// as they come, not once the one before is banned: right after a
	// local ban, the core is idle more often than when a line comes.
	measure := func(prefix string, stop <-chan struct{}, n int, every time.Duration) []time.Duration {
		tick := time.NewTicker(every)
		defer tick.Stop()
		want := map[string]bool{}
		for i := 0; i < n; i++ {
			select {
			case <-stop:
				n = 0
				continue
			case <-tick.C:
			}
			addr := fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250+1)
			want[addr] = true
			appendLines(t, e.log, failures(addr, 5, time.Now())...)
		}
		var out []time.Duration
		for len(want) > 0 {
			select {
			case ev := <-seen:
				if !want[ev.Addr.String()] {
					t.Fatalf("ban of %v: not an attacker of %s.x.y, or banned twice", ev.Addr, prefix)
				}
				delete(want, ev.Addr.String())
				out = append(out, ev.Latency)
			case <-time.After(10 * time.Second):
				t.Fatalf("%d attackers not banned, such as %v:\n%s", len(want), slices.Collect(maps.Keys(want))[0], r.logs)
			}
		}
		slices.Sort(out)
		return out
	}
	var f floodLatency
	f.quiet = measure("198.18", nil, 200, time.Millisecond)
	// The flood: 100,000 bans, 5,000 per Apply (the cluster node's batch),
	// when the test has the machine to itself (SIPGUARD_ALONE: test.sh's
	// section of its own), which the latency claims need. Elsewhere a
	// tenth: in go test ./..., other packages' tests share the 2 cores
	// (the full flood keeps both busy for 10 s: a SIP tool of another
	// package's test timed out), and under -short (test.sh's -race pass,
	// where every step costs 5 to 10 times as much) the same interleaving
	// of peers' bans and local ones serves the race detector.
	alone := os.Getenv("SIPGUARD_ALONE") != "" && !testing.Short()
	flood := 10_000
	if alone {
		flood = 100_000
	}
	done := make(chan struct{})
	var applied int
	go func() {
		defer close(done)
		start := time.Now()
		for i := range flood / 5000 {
			batch := make([]cluster.Update, 5000)
			for j := range batch {
				k := i*5000 + j
				batch[j] = remote(fmt.Sprintf("100.%d.%d.%d/32", 64+k/65536, k/256%256, k%256), fmt.Sprintf("pbx-%d", k/25000), time.Now().Add(-time.Hour), 2*time.Hour)
			}
			res, _ := r.d.Apply(ctx, batch)
			applied += res["applied"]
		}
		f.took = time.Since(start)
	}()
	// An attacker a millisecond during the flood, which lasts 3-10 s:
	// thousands of local bans. (When it lasted 0.3-1 s, one a half
	// millisecond; at one a millisecond its p99 was the 3rd or 4th slowest
	// of ~250 bans, often of one batch of lines that waited together for
	// one stall of the machine.)
	f.flood = measure("198.19", done, 50_000, time.Millisecond)
	if applied != flood || len(f.flood) < 20 {
		t.Fatalf("%d of %d peers' bans applied, %d local bans measured during the flood", applied, flood, len(f.flood))
	}
	// With the bans held: two windows of 2 s, and the one with the lower
	// p99 is judged (both are logged). Each holds the core's and the
	// saver's periodic work with 100,000 bans (the bans file is rewritten
	// every 1-2 s), so the daemon's own stalls show in both; a single
	// stall of the machine shows in one: in CI on 2026-12-04, one of
	// ~17 ms queued the ~20 bans that came meanwhile behind it and made
	// the p99 of one window 3.74 ms.
	held := func() <-chan struct{} {
		c := make(chan struct{})
		time.AfterFunc(2*time.Second, func() { close(c) })
		return c
	}
	after1 := measure("198.20", held(), 50_000, time.Millisecond)
	after2 := measure("198.21", held(), 50_000, time.Millisecond)
	t.Logf("with the bans held, two windows of 2 s: p50/p90/p99 (max) %v/%v/%v (%v) and %v/%v/%v (%v)",
		after1[len(after1)/2], p90(after1), p99(after1), after1[len(after1)-1],
		after2[len(after2)/2], p90(after2), p99(after2), after2[len(after2)-1])
	f.after = after1
	if p99(after2) < p99(after1) {
		f.after = after2
	}
	t.Logf("local ban latency, line read to firewall, p50/p90/p99 (max): quiet %v/%v/%v (%v); "+
		"during a flood of %d peers' bans (%v, %.0f bans/s) %v/%v/%v (%v) over %d bans; after it (the better window) %v/%v/%v (%v)",
		f.quiet[len(f.quiet)/2], p90(f.quiet), p99(f.quiet), f.quiet[len(f.quiet)-1],
		applied, f.took.Round(time.Millisecond), float64(applied)/f.took.Seconds(),
		f.flood[len(f.flood)/2], p90(f.flood), p99(f.flood), f.flood[len(f.flood)-1], len(f.flood),
		f.after[len(f.after)/2], p90(f.after), p99(f.after), f.after[len(f.after)-1])
	if testing.Short() {
		return
	}
	if p90(f.flood) > f.took/20 || p99(f.flood) > f.took/10 {
		t.Errorf("local bans during a flood of %v: p90 %v, p99 %v; waiting behind it", f.took, p90(f.flood), p99(f.flood))
	}
	limit90, limit99 := max(2*p90(f.quiet), floor.p90), max(4*p99(f.quiet), floor.p99)
	// The ratios hold on a machine that runs nothing else: test.sh runs
	// them in a section of their own. In go test ./..., another package's
	// tests share the 2 cores, and a local ban waits for the CPU as much
	// as for the core goroutine (with the bans held, 3.0 ms for the p99
	// once, when the firewall's read-back of the sets came at the same time).
	t.Run("alone", func(t *testing.T) {
		testutil.OptIn(t, "SIPGUARD_ALONE", "the flood's ratios need the machine to themselves (test.sh's section)")
		if limit := max(4*p99(f.quiet), 3*time.Millisecond); p99(f.after) > limit {
			t.Errorf("local bans with 100,000 bans held: p99 %v; want at most %v (4 times %v without them, or 3 ms)",
				p99(f.after), limit, p99(f.quiet))
		}
		if p90(f.flood) > limit90 || p99(f.flood) > limit99 {
			t.Errorf("local bans during the flood: p90 %v, p99 %v; want at most %v and %v (2 and 4 times %v and %v without it, or %v and %v)",
				p90(f.flood), p99(f.flood), limit90, limit99, p90(f.quiet), p99(f.quiet), floor.p90, floor.p99)
		}
	})
}

// observerFunc is a function as a daemon.Observer.
type observerFunc func(daemon.Notice)

func (f observerFunc) Notice(n daemon.Notice) { f(n) }

// TestPeerBounds (issue 20, items 4 and 6): another node's bans and
// unbans are bounded in time, width and number: a ban lasts no longer
// than this node's longest; an unban from the future, or of a network
// wider than /8, is refused; a node's unbans remembered are bounded.
func TestPeerBounds(t *testing.T) {
	e := newEnv(t)
	cfg := e.config() // longest ban: the burst rule's max_ban_time, 24h
	r := startWith(t, cfg, nil, func(d *daemon.Daemon) {
		d.Join(&peers{}, false)
		d.LimitPeers(daemon.PeerLimits{Unbans: 3})
	})
	ctx := context.Background()
	now := time.Now()
	forever := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	ban := remote("198.51.100.7/32", "pbx-x", time.Unix(0, 0), 0)
	ban.Ban.Expires = forever
	if res, _ := r.d.Apply(ctx, []cluster.Update{ban}); res["applied"] != 1 {
		t.Fatalf("a ban until 9999: %v", res)
	}
	ent, ok := banned(r.fw, "198.51.100.7/32")
	if left := time.Until(ent.Expires); !ok || left > 24*time.Hour || left < 23*time.Hour {
		t.Errorf("a ban until 9999 is held for %v; want this node's longest, 24h", left)
	}

	unban := func(target, origin string, at, until time.Time) cluster.Update {
		return cluster.Update{Kind: cluster.UpdateUnban, Unban: cluster.Unban{
			Target: netip.MustParsePrefix(target), Origin: origin, Time: at, Until: until}}
	}
	// From the future: refused; bans made before it stay and later ones
	// are enforced.
	appendLines(t, e.log, failures("203.0.113.50", 5, now)...)
	if !eventually(func() bool { _, ok := banned(r.fw, "203.0.113.50/32"); return ok }) {
		t.Fatalf("local ban:\n%s", r.logs)
	}
	future := unban("203.0.113.0/24", "pbx-x", time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), forever)
	if res, _ := r.d.Apply(ctx, []cluster.Update{future}); res["future"] != 1 {
		t.Errorf("an unban dated 2200: %v", res)
	}
	if _, ok := banned(r.fw, "203.0.113.50/32"); !ok {
		t.Error("an unban from the future lifted a ban here")
	}
	if res, _ := r.d.Apply(ctx, []cluster.Update{remote("203.0.113.51/32", "pbx-y", time.Now(), time.Hour)}); res["applied"] != 1 {
		t.Errorf("a ban after a refused unban from the future: %v", res)
	}
	// Too wide: refused, even from this node's CLI.
	if res, _ := r.d.Apply(ctx, []cluster.Update{unban("192.0.0.0/2", "pbx-x", time.Now(), time.Now().Add(time.Hour))}); res["too_wide"] != 1 {
		t.Errorf("an unban of a /2: %v", res)
	}
	if _, ok := banned(r.fw, "203.0.113.50/32"); !ok {
		t.Error("a /2 unban lifted a ban here")
	}
	if _, err := r.client.Unban(ctx, control.UnbanRequest{Target: "0.0.0.0/0", Cluster: true}); err == nil || !strings.Contains(err.Error(), "wider") {
		t.Errorf("unban --cluster 0.0.0.0/0: %v", err)
	}
	// In number: pbx-x's fourth unban remembered is refused; its renewal
	// of one it made, and another node's, are not.
	var us []cluster.Update
	for i := range 4 {
		us = append(us, unban(fmt.Sprintf("198.18.%d.0/24", i), "pbx-x", time.Now(), forever))
	}
	us = append(us, unban("198.18.0.0/24", "pbx-x", time.Now(), forever), unban("198.18.9.0/24", "pbx-y", time.Now(), forever))
	res, _ := r.d.Apply(ctx, us)
	if res["limit"] != 1 || res["nothing_to_unban"] != 5 {
		t.Errorf("pbx-x's unbans over a limit of 3, a renewal, and pbx-y's: %v", res)
	}
	// Remembered no longer than this node's longest ban: read the state
	// this node saves at stop.
	r.stop(t)
	data, err := os.ReadFile(filepath.Join(e.state, "bans.state"))
	if err != nil {
		t.Fatal(err)
	}
	saved, _, err := bans.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	byOrigin := map[string]int{}
	for p, u := range saved.Lifts {
		byOrigin[u.Origin]++
		if u.Until.After(time.Now().Add(24*time.Hour)) || u.At.After(time.Now()) {
			t.Errorf("unban of %v remembered %v to %v: past this node's longest ban (24h)", p, u.At, u.Until)
		}
	}
	if byOrigin["pbx-x"] != 3 || byOrigin["pbx-y"] != 1 {
		t.Errorf("unbans remembered per node: %v", byOrigin)
	}
	for _, b := range saved.Bans {
		if b.Expires.After(time.Now().Add(24 * time.Hour)) {
			t.Errorf("%v saved until %v", b.Target, b.Expires)
		}
	}
	if n := strings.Count(r.logs.String(), `"message":"cluster unban refused`); n != 3 {
		t.Errorf("%d warnings of refused unbans; want 3 (future, wide, limit):\n%s", n, r.logs)
	}
}

// TestPeerFloodCost (issue 20, item 7): 100,000 valid bans from other
// nodes with the longest reasons the cluster carries: the memory each
// costs here is bounded, and the bans file, tens of megabytes, is not
// rewritten every second while they come.
func TestPeerFloodCost(t *testing.T) {
	testutil.SkipShort(t, "a flood of 100,000 bans")
	e := newEnv(t)
	fw := firewall.NewDryRun(zerolog.Nop(), nil) // keeps a map of its bans, as small as the kernel's
	r := startWith(t, e.config(), fw, joined)
	ctx := context.Background()
	const flood = 100_000
	reason := strings.Repeat("a reason of four hundred bytes, cut to 256 here. ", 9)[:400]
	// The heap before the messages are made: what the daemon keeps of
	// them counts, the rest is garbage once applied.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	batches := make([][]cluster.Update, flood/5000)
	for i := range batches {
		batches[i] = make([]cluster.Update, 5000)
		for j := range batches[i] {
			k := i*5000 + j
			u := remote(fmt.Sprintf("100.%d.%d.%d/32", 64+k/65536, k/256%256, k%256), fmt.Sprintf("pbx-%d", k/25000), time.Now().Add(-time.Hour), 2*time.Hour)
			u.Ban.Reason = fmt.Sprintf("%d %s", k, reason) // each its own string, as decoded from a message
			batches[i][j] = u
		}
	}
	// Writes of the bans file, seen as new inodes (store.WriteFile renames
	// a new file into place).
	writes := map[uint64]bool{}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if fi, err := os.Stat(filepath.Join(e.state, "bans.state")); err == nil {
				writes[fi.Sys().(*syscall.Stat_t).Ino] = true
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	cpu0 := cpuTime(t)
	start := time.Now()
	applied := 0
	for i := range batches {
		res, _ := r.d.Apply(ctx, batches[i])
		applied += res["applied"]
		batches[i] = nil
	}
	took, cpu := time.Since(start), cpuTime(t)-cpu0
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The flood goes on for a few seconds as far as saving is concerned.
	time.Sleep(3 * time.Second)
	close(stop)
	<-watched
	r.stop(t)
	fi, err := os.Stat(filepath.Join(e.state, "bans.state"))
	if err != nil {
		t.Fatal(err)
	}
	perBan := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / flood
	t.Logf("%d peers' bans applied in %v (CPU %v, the saver's included); heap %d bytes per ban; bans file %d MB, written %d times in %v",
		applied, took.Round(time.Millisecond), cpu.Round(time.Millisecond), perBan, fi.Size()>>20, len(writes), (took + 3*time.Second).Round(time.Second))
	if applied != flood {
		t.Fatalf("%d of %d applied", applied, flood)
	}
	// A record with its reason (256 bytes at most), the ledger's index and
	// the firewall's map: under 1 KiB. Double that is a leak.
	if perBan > 2048 {
		t.Errorf("%d bytes of heap per peer's ban; want at most 2 KiB", perBan)
	}
	// Written at most once a second, and no more than a tenth of the
	// time: fewer writes than seconds.
	if secs := int((took + 3*time.Second) / time.Second); len(writes) > secs {
		t.Errorf("the bans file written %d times in %d s", len(writes), secs)
	}
}
