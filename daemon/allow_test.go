package daemon_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
)

// The trusted peer and the attackers of these tests share one /64.
var (
	trunk   = netip.MustParsePrefix("2001:db8:bad::1/128")
	trunk64 = netip.MustParsePrefix("2001:db8:bad::/64")
)

// withTrunk returns cfg with the trunk allowlisted too.
func withTrunk(cfg daemon.Config) daemon.Config {
	cfg.Engine.Allow = append(append([]netip.Prefix(nil), cfg.Engine.Allow...), trunk)
	return cfg
}

// coversAllow fails the test if a ban in fw covers an address of allow.
func coversAllow(t *testing.T, fw *fwtest.Fake, allow []netip.Prefix) {
	t.Helper()
	for _, e := range fw.Entries() {
		for _, a := range allow {
			if e.Prefix.Overlaps(a) {
				t.Errorf("ban %v in the firewall covers allowlisted %v", e.Prefix, a)
			}
		}
	}
}

func status(t *testing.T, r *running) control.Status {
	t.Helper()
	st, err := r.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func listed(t *testing.T, r *running) map[string]control.Ban {
	t.Helper()
	bs, err := r.client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]control.Ban{}
	for _, b := range bs {
		out[b.Target] = b
	}
	return out
}

// trunk64Banned runs a daemon without the trunk allowlisted, until the
// failures of 2001:db8:bad::2 have banned the trunk's /64.
func trunk64Banned(t *testing.T) (env, *fwtest.Fake, *running) {
	t.Helper()
	e := newEnv(t)
	fw := fwtest.New(nil)
	r := start(t, e.config(), fw)
	appendLines(t, e.log, failures("[2001:db8:bad::2]", 5, time.Now())...)
	if !eventually(func() bool { return fw.Has(trunk64) }) {
		t.Fatalf("/64 not banned: %v\n%s", fw.Entries(), r.logs)
	}
	return e, fw, r
}

// TestAllowNarrowed: the case. [allow] holds 2001:db8:bad::1 and
// 2001:db8:bad::2 fails five times: the ban is 2001:db8:bad::2 alone, not
// the /64 that holds the trusted peer; the /64's other addresses are
// banned one by one; the firewall has the allowlist.
func TestAllowNarrowed(t *testing.T) {
	e := newEnv(t)
	cfg := withTrunk(e.config())
	fw := fwtest.New(nil)
	r := start(t, cfg, fw)
	if got := fw.Allowlist(); len(got) != len(cfg.Engine.Allow) || got[len(got)-1] != trunk {
		t.Errorf("firewall allowlist %v; want %v", got, cfg.Engine.Allow)
	}
	now := time.Now()
	appendLines(t, e.log, failures("[2001:db8:bad::2]", 5, now)...)
	appendLines(t, e.log, failures("[2001:db8:bad::1]", 5, now)...)
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("2001:db8:bad::2/128")) }) {
		t.Fatalf("2001:db8:bad::2 not banned: %v\n%s", fw.Entries(), r.logs)
	}
	appendLines(t, e.log, failures("[2001:db8:bad::3]", 4, now)...)
	appendLines(t, e.log, failures("[2001:db8:bad::4]", 1, now)...) // the /64's fifth: not a ban
	appendLines(t, e.log, failures("[2001:db8:bad::3]", 1, now.Add(5*time.Second))...)
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("2001:db8:bad::3/128")) }) {
		t.Fatalf("2001:db8:bad::3 not banned: %v\n%s", fw.Entries(), r.logs)
	}
	// Another /64 is banned whole, as ever.
	appendLines(t, e.log, failures("[2001:db8:beef::2]", 5, now)...)
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("2001:db8:beef::/64")) }) {
		t.Fatalf("2001:db8:beef::/64 not banned: %v\n%s", fw.Entries(), r.logs)
	}
	if got := len(fw.Entries()); got != 3 {
		t.Errorf("firewall holds %v; want ::2, ::3 and the other /64", fw.Entries())
	}
	coversAllow(t, fw, cfg.Engine.Allow)
	bans := listed(t, r)
	b, ok := bans["2001:db8:bad::2"]
	if !ok || !strings.Contains(b.Reason, "the address alone: 2001:db8:bad::/64 holds an allowlisted address") {
		t.Errorf("list: %+v; want 2001:db8:bad::2 saying why it is alone", bans)
	}
	if _, ok := bans["2001:db8:bad::/64"]; ok {
		t.Error("list shows the /64")
	}
	st := status(t, r)
	if st.Engine.Narrowed != 2 || st.Engine.Allowed != 5 || st.Engine.Bans != 3 {
		t.Errorf("engine status %+v; want 2 narrowed, 5 allowlisted, 3 bans", st.Engine)
	}
	if got := strings.Count(r.logs.String(), "ban narrowed to the address"); got != 2 {
		t.Errorf("%d narrowing logged; want 2:\n%s", got, r.logs)
	}
}

// TestAllowEveryOrigin: no origin puts a ban covering the allowlist in the
// firewall: manual bans, imports, feeds and the cluster's bans are refused
// with their reason.
func TestAllowEveryOrigin(t *testing.T) {
	e := newEnv(t)
	feed := filepath.Join(e.dir, "drop.txt")
	writeFeed(t, feed, "2001:db8:bad::/56\n203.0.113.7\n")
	cfg := withTrunk(e.config())
	cfg.Feeds = []daemon.Feed{{Feed: feeds.Feed{Name: "drop", Path: feed, Interval: time.Hour}, Expire: time.Hour}}
	fw := fwtest.New(nil)
	r := startWith(t, cfg, fw, joined)
	ctx := context.Background()

	t.Run("manual", func(t *testing.T) {
		for _, target := range []string{"2001:db8:bad::/64", "2001:db8:bad::1", "2001:db8::/32"} {
			_, err := r.client.Ban(ctx, control.BanRequest{Target: target})
			if err == nil || !strings.Contains(err.Error(), "allowlisted") {
				t.Errorf("ban %s: got %v; want refused as allowlisted", target, err)
			}
		}
	})
	t.Run("import", func(t *testing.T) {
		res, err := r.client.Import(ctx, control.ImportRequest{Bans: []control.BanRequest{{Target: "2001:db8:bad::/64"}, {Target: "2001:db8:bad::2"}}})
		if err != nil || res.Banned != 1 || len(res.Refused) != 1 || !strings.Contains(res.Refused[0], "allowlisted") {
			t.Errorf("import: %+v, %v; want the /64 refused, ::2 banned", res, err)
		}
	})
	t.Run("feed", func(t *testing.T) {
		if !eventually(func() bool { return feedStatus(t, r).Enforced == 1 }) {
			t.Fatalf("feed: %+v", feedStatus(t, r))
		}
		if fs := feedStatus(t, r); fs.Skipped != 1 {
			t.Errorf("feed: %+v; want its entry covering the trunk skipped", fs)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		now := time.Now()
		res, err := r.d.Apply(ctx, []cluster.Update{remote("2001:db8:bad::/64", "node2", now, time.Hour), remote("2001:db8:bad::1/128", "node2", now, time.Hour)})
		if err != nil || res["allowlisted"] != 2 {
			t.Errorf("cluster: %v, %v; want both ignored as allowlisted", res, err)
		}
	})
	if !fw.Has(netip.MustParsePrefix("2001:db8:bad::2/128")) || !fw.Has(netip.MustParsePrefix("203.0.113.7/32")) {
		t.Errorf("firewall %v; want the imported ::2 and the feed's 203.0.113.7", fw.Entries())
	}
	coversAllow(t, fw, cfg.Engine.Allow)
}

// TestAllowRestart: bans made before their address was allowlisted are
// not restored over it: a rule's /64 becomes the ban of its attacker
// alone, a manual ban is lifted; the firewall gets the allowlist before
// any ban.
func TestAllowRestart(t *testing.T) {
	e, fw, r := trunk64Banned(t)
	if _, err := r.client.Ban(context.Background(), control.BanRequest{Target: "2001:db8:bad::1"}); err != nil {
		t.Fatal(err)
	}
	r.stop(t)

	cfg := withTrunk(e.config())
	var step, allowAt, syncAt atomic.Int32
	fw.AllowFunc = func([]netip.Prefix) error { allowAt.Store(step.Add(1)); return nil }
	fw.SyncFunc = func([]firewall.Entry) error { syncAt.Store(step.Add(1)); return nil }
	r = start(t, cfg, fw)
	if a, s := allowAt.Load(), syncAt.Load(); a == 0 || a > s {
		t.Errorf("allowlist set at step %d, bans restored at step %d; want the allowlist first", a, s)
	}
	if got := fw.Entries(); len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("2001:db8:bad::2/128") || time.Until(got[0].Expires) < 59*time.Minute {
		t.Errorf("firewall after restart: %v; want 2001:db8:bad::2 for what was left of the hour", got)
	}
	coversAllow(t, fw, cfg.Engine.Allow)
	bans := listed(t, r)
	if b, ok := bans["2001:db8:bad::2"]; len(bans) != 1 || !ok || b.Rule != "burst" || !strings.Contains(b.Reason, "the address alone") {
		t.Errorf("list after restart: %+v", bans)
	}
	if st := status(t, r); st.Unbans[daemon.UnbanAllowed] != 2 {
		t.Errorf("unbans %v; want 2 %q", st.Unbans, daemon.UnbanAllowed)
	}
	// The narrowed ban holds in the engine: more failures are not a new ban.
	appendLines(t, e.log, failures("[2001:db8:bad::2]", 5, time.Now())...)
	if !eventually(func() bool { return status(t, r).Engine.WhileBanned == 5 }) {
		t.Errorf("engine %+v; want the failures of the banned address ignored", status(t, r).Engine)
	}
}

// TestAllowReload: a reload that allowlists an address lifts or narrows
// the bans covering it and loads it into the firewall; a firewall that
// refuses the new allowlist fails the reload, which then changes nothing.
func TestAllowReload(t *testing.T) {
	e, fw, r := trunk64Banned(t)
	ctx := context.Background()
	cfg := withTrunk(e.config())

	refused := errors.New("netlink: refused")
	fw.AllowFunc = func([]netip.Prefix) error { return refused }
	if err := r.d.Reload(ctx, cfg); !errors.Is(err, refused) {
		t.Errorf("reload with the firewall refusing: got %v; want its error", err)
	}
	if !fw.Has(trunk64) || len(fw.Allowlist()) != len(e.config().Engine.Allow) {
		t.Errorf("a failed reload changed the firewall: %v, allow %v", fw.Entries(), fw.Allowlist())
	}
	fw.AllowFunc = nil

	if err := r.d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := fw.Allowlist(); len(got) != len(cfg.Engine.Allow) {
		t.Errorf("firewall allowlist %v; want %v", got, cfg.Engine.Allow)
	}
	if got := fw.Entries(); len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("2001:db8:bad::2/128") {
		t.Errorf("firewall after reload: %v; want 2001:db8:bad::2 alone", got)
	}
	coversAllow(t, fw, cfg.Engine.Allow)
	if bans := listed(t, r); len(bans) != 1 {
		t.Errorf("list after reload: %+v", bans)
	}
}

// TestAllowLastGuard: a ban queued while the firewall failed, whose
// address is allowlisted by a reload before the firewall comes back, is
// refused where bans reach the firewall.
func TestAllowLastGuard(t *testing.T) {
	e := newEnv(t)
	fw := fwtest.New(nil)
	var down atomic.Bool
	down.Store(true)
	fw.BanFunc = func([]firewall.Ban) error {
		if down.Load() {
			return errors.New("netlink: busy")
		}
		return nil
	}
	r := start(t, e.config(), fw)
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { return status(t, r).Firewall.Errors > 0 }) {
		t.Fatalf("no firewall error:\n%s", r.logs)
	}
	cfg := e.config()
	cfg.Engine.Allow = append(cfg.Engine.Allow, netip.MustParsePrefix("198.51.100.0/24"))
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	if !eventually(func() bool { return status(t, r).Firewall.Refused == 1 }) {
		t.Fatalf("status %+v; want 1 ban refused\n%s", status(t, r).Firewall, r.logs)
	}
	if got := fw.Entries(); len(got) != 0 {
		t.Errorf("firewall %v; want nothing", got)
	}
	if !strings.Contains(r.logs.String(), "ban refused: it covers an allowlisted address") {
		t.Errorf("refusal not logged:\n%s", r.logs)
	}
	// A wider ban queued during an outage, allowlisted by a reload before
	// the firewall comes back, does not replace the bans inside it. (Of
	// the same node: a peer's ban over another origin's is refused at
	// once, TestClusterTakeoverWider.)
	if res, err := r.d.Apply(context.Background(), []cluster.Update{remote("10.1.0.0/16", "node2", time.Now(), time.Hour)}); err != nil || res["applied"] != 1 {
		t.Fatalf("cluster ban: %v %v", res, err)
	}
	down.Store(true)
	fw.UnbanFunc = func([]netip.Prefix) error {
		if down.Load() {
			return errors.New("netlink: busy")
		}
		return nil
	}
	if res, err := r.d.Apply(context.Background(), []cluster.Update{remote("10.0.0.0/8", "node2", time.Now(), time.Hour)}); err != nil || res["applied"] != 1 {
		t.Fatalf("cluster ban: %v %v", res, err)
	}
	cfg.Engine.Allow = append(cfg.Engine.Allow, netip.MustParsePrefix("10.200.0.1/32"))
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	if !eventually(func() bool { return status(t, r).Firewall.Refused == 2 }) {
		t.Fatalf("status %+v; want 2 bans refused\n%s", status(t, r).Firewall, r.logs)
	}
	if got := fw.Entries(); len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("10.1.0.0/16") {
		t.Errorf("firewall %v; want 10.1.0.0/16 kept", got)
	}
	// The queue goes on: the next ban is enforced.
	appendLines(t, e.log, failures("203.0.113.9", 5, time.Now())...)
	if !eventually(func() bool { return fw.Has(netip.MustParsePrefix("203.0.113.9/32")) }) {
		t.Errorf("later ban not enforced: %v\n%s", fw.Entries(), r.logs)
	}
}
