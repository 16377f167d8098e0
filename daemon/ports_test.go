package daemon_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/parsers"
)

const guiPorts = "80/tcp,443/tcp"

// portsConfig has a GUI rule with ports of its own (AMI and web logins)
// and a SIP rule on the default ports.
func (e env) portsConfig() daemon.Config {
	cfg := e.config()
	cfg.Engine.Rules = []engine.Rule{
		{Name: "gui", Kinds: parsers.KindSet(0).With(parsers.AdminAuthFailed), MaxRetry: 3, FindTime: time.Minute, BanTime: time.Hour, Factor: 1},
		{Name: "sip", Kinds: parsers.KindSet(0).With(parsers.AuthFailed), MaxRetry: 5, FindTime: time.Minute, BanTime: 2 * time.Hour, Factor: 1},
	}
	cfg.RulePorts = map[string]string{"gui": guiPorts}
	return cfg
}

// amiFailures are failures' lines (their time stamps) as AMI login
// failures.
func amiFailures(addr string, n int, at time.Time) []string {
	out := failures(addr, n, at)
	for i, l := range out {
		stamp, _, _ := strings.Cut(l, " NOTICE")
		out[i] = stamp + " NOTICE[1] manager.c: " + addr + " failed to authenticate as 'admin'"
	}
	return out
}

// guiBanned starts a daemon with portsConfig and has its GUI rule ban
// host.
func guiBanned(t *testing.T, host netip.Prefix) (env, *fwtest.Fake, *running) {
	t.Helper()
	e := newEnv(t)
	fw := fwtest.New(nil)
	r := start(t, e.portsConfig(), fw)
	appendLines(t, e.log, amiFailures(host.Addr().String(), 3, time.Now())...)
	if !eventually(func() bool { return fw.HasIn(guiPorts, host) }) {
		t.Fatalf("not banned in the GUI profile: %+v\n%s", fw.Entries(), r.logs)
	}
	return e, fw, r
}

// TestDaemonRulePorts: a rule with ports of its own bans in its ports
// profile, another rule's ban of the same address in the default one;
// list and why show both; a restart restores each in its profile (the
// bans file keeps the ports); a restart after the rule lost its ports
// restores its ban in the default profile; an unban lifts both.
func TestDaemonRulePorts(t *testing.T) {
	ctx := context.Background()
	host := netip.MustParsePrefix("198.51.100.7/32")
	e, fw, r := guiBanned(t, host)
	if fw.Has(host) {
		t.Errorf("a GUI rule's ban is in the default profile too: %+v", fw.Entries())
	}
	appendLines(t, e.log, failures("198.51.100.7", 5, time.Now())...)
	if !eventually(func() bool { return fw.Has(host) }) {
		t.Fatalf("the SIP rule's ban is not in the default profile: %+v", fw.Entries())
	}
	if exp, _ := fw.ExpiryIn(guiPorts, host); time.Until(exp) > time.Hour {
		t.Errorf("the SIP ban (2h) lengthened the GUI ban: %v left", time.Until(exp))
	}
	list, _ := r.client.List(ctx)
	var got []string
	for _, b := range list {
		got = append(got, b.Target+" "+b.Rule+" "+b.Ports)
	}
	slices.Sort(got)
	if want := []string{"198.51.100.7 gui " + guiPorts, "198.51.100.7 sip "}; !slices.Equal(got, want) {
		t.Errorf("list: %q; want %q", got, want)
	}
	why, _ := r.client.Why(ctx, "198.51.100.7")
	if len(why.Bans) != 2 || why.Bans[0].Ports == why.Bans[1].Ports {
		t.Errorf("why: %+v; want the ban of each profile", why.Bans)
	}
	st, _ := r.client.Status(ctx)
	if len(st.Rules) != 2 || st.Rules[0].Ports != guiPorts || st.Rules[1].Ports != "" {
		t.Errorf("status rules: %+v", st.Rules)
	}
	r.stop(t)
	data, _ := os.ReadFile(filepath.Join(e.state, "bans.state"))
	if !strings.Contains(string(data), `"`+guiPorts+`"`) {
		t.Errorf("the bans file lacks the GUI ban's ports:\n%s", data)
	}

	// Restart on an empty firewall (a reboot): each ban in its profile.
	fw = fwtest.New(nil)
	r = start(t, e.portsConfig(), fw)
	if !fw.HasIn(guiPorts, host) || !fw.Has(host) {
		t.Errorf("after a restart: %+v; want the ban in both profiles", fw.Entries())
	}
	r.stop(t)

	// The GUI rule without ports of its own now: its ban drops the default
	// ports.
	fw = fwtest.New(nil)
	cfg := e.portsConfig()
	cfg.RulePorts = nil
	r = start(t, cfg, fw)
	if fw.HasIn(guiPorts, host) || !fw.Has(host) {
		t.Errorf("after the rule lost its ports: %+v; want the default profile only", fw.Entries())
	}
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.7"}); err != nil || un.Result != control.Unbanned {
		t.Fatalf("unban: %+v %v", un, err)
	}
	if es := fw.Entries(); len(es) != 0 {
		t.Errorf("after unban: %+v", es)
	}
}

// TestDaemonRulePortsLift: a manual ban (the default ports) of an address
// a GUI rule banned is a ban of its own, not "kept" as shorter; a manual
// network ban neither replaces nor is covered by the GUI profile's bans;
// an unban of the network lifts both profiles.
func TestDaemonRulePortsLift(t *testing.T) {
	ctx := context.Background()
	host := netip.MustParsePrefix("198.51.100.7/32")
	_, fw, r := guiBanned(t, host)
	// A manual ban shorter than the GUI ban is not "kept": it drops the
	// default ports, which the GUI ban does not.
	res, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.7", For: "10m"})
	if err != nil || res.Result != control.Banned {
		t.Fatalf("manual ban over a GUI ban: %+v %v", res, err)
	}
	if !fw.Has(host) || !fw.HasIn(guiPorts, host) {
		t.Fatalf("after the manual ban: %+v; want both profiles", fw.Entries())
	}
	// A network ban of the default profile does not replace, nor is it
	// covered by, the GUI profile's bans.
	if res, err := r.client.Ban(ctx, control.BanRequest{Target: "198.51.100.0/24", For: "1h"}); err != nil || res.Result != control.Banned {
		t.Fatalf("manual /24: %+v %v", res, err)
	}
	if !fw.HasIn(guiPorts, host) {
		t.Errorf("the default profile's /24 lifted the GUI ban: %+v", fw.Entries())
	}
	if un, err := r.client.Unban(ctx, control.UnbanRequest{Target: "198.51.100.0/24"}); err != nil || len(un.Unbanned) != 2 {
		t.Fatalf("unban of the /24: %+v %v", un, err)
	}
	if es := fw.Entries(); len(es) != 0 {
		t.Errorf("after unban: %+v", es)
	}
}

// TestDaemonRulePortsReload: a reload that changes a rule's ports is
// logged and takes effect on restart: the rule's new bans keep its ports
// meanwhile (the firewall's profiles are set up at start).
func TestDaemonRulePortsReload(t *testing.T) {
	host := netip.MustParsePrefix("198.51.100.7/32")
	e, fw, r := guiBanned(t, host)
	cfg := e.portsConfig()
	cfg.RulePorts = nil
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.logs.String(), "changes of a rule's ports take effect on restart") {
		t.Errorf("no warning:\n%s", r.logs)
	}
	appendLines(t, e.log, amiFailures("198.51.100.9", 3, time.Now())...)
	if !eventually(func() bool { return fw.HasIn(guiPorts, netip.MustParsePrefix("198.51.100.9/32")) }) {
		t.Errorf("after the reload, the GUI rule's ban is not in its profile: %+v", fw.Entries())
	}
}

// TestLiftProfilesAtomic: a lift of an address banned in two ports
// profiles (a cluster unban here) is one firewall transaction. It was
// one per profile: the second failing, the first profile's ban was gone
// from the kernel while the ledger kept every record, in force and
// listed, until the address's next ban.
func TestLiftProfilesAtomic(t *testing.T) {
	host := netip.MustParsePrefix("198.51.100.7/32")
	e := newEnv(t)
	fw := fwtest.New(nil)
	var unbans atomic.Int32
	fw.UnbanFunc = func([]netip.Prefix) error {
		if unbans.Add(1) == 2 {
			return errors.New("netlink: busy")
		}
		return nil
	}
	r := startWith(t, e.portsConfig(), fw, joined)
	appendLines(t, e.log, amiFailures(host.Addr().String(), 3, time.Now())...)
	appendLines(t, e.log, failures(host.Addr().String(), 5, time.Now())...)
	if !eventually(func() bool { return fw.HasIn(guiPorts, host) && fw.Has(host) }) {
		t.Fatalf("not banned in both profiles: %+v\n%s", fw.Entries(), r.logs)
	}
	at := time.Now()
	unban := cluster.Update{Kind: cluster.UpdateUnban, Unban: cluster.Unban{Target: host, Origin: "pbx-c", Time: at, Until: at.Add(time.Hour)}}
	for range 2 { // the first attempt fails in the old code's second call
		r.d.Apply(context.Background(), []cluster.Update{unban})
		list, _ := r.client.List(context.Background())
		held := map[string]bool{}
		for _, b := range list {
			held[b.Ports] = true
		}
		if held[guiPorts] != fw.HasIn(guiPorts, host) || held[""] != fw.Has(host) {
			t.Errorf("listed in profiles %v, the firewall holds it in the GUI's %v and the default %v",
				held, fw.HasIn(guiPorts, host), fw.Has(host))
		}
	}
	if fw.HasIn(guiPorts, host) || fw.Has(host) {
		t.Errorf("still banned after the cluster unban: %+v", fw.Entries())
	}
}

// TestUncoverInProfileLeft: a network ban in two ports profiles ends in
// one of them; a narrower ban inside it in the other profile, which the
// network still covers there, stays out of the firewall (the kernel would
// refuse it as overlapping), and nothing fails.
func TestUncoverInProfileLeft(t *testing.T) {
	e := newEnv(t)
	cfg := e.portsConfig()
	cfg.Engine.Rules[0].BanTime = time.Second // gui: its /64 ends soon
	fw := fwtest.New(nil)
	r := start(t, cfg, fw)
	ctx := context.Background()
	net := netip.MustParsePrefix("2001:db8:7:1::/64")
	appendLines(t, e.log, amiFailures("2001:db8:7:1::5", 3, time.Now())...)
	if !eventually(func() bool { return fw.HasIn(guiPorts, net) }) {
		t.Fatalf("the /64 not banned in the GUI profile: %+v\n%s", fw.Entries(), r.logs)
	}
	for _, target := range []string{net.String(), "2001:db8:7:1::/96"} {
		if res, err := r.client.Ban(ctx, control.BanRequest{Target: target, For: "2h"}); err != nil || res.Result != control.Banned {
			t.Fatalf("manual ban of %s: %+v %v", target, res, err)
		}
	}
	if !eventually(func() bool { return !fw.HasIn(guiPorts, net) }) {
		t.Fatalf("the GUI profile's /64 did not end: %+v", fw.Entries())
	}
	ticked(t, r)
	if !fw.Has(net) || fw.Has(netip.MustParsePrefix("2001:db8:7:1::/96")) {
		t.Errorf("firewall %+v; want the /64 in the default profile, holding the /96", fw.Entries())
	}
	if st, _ := r.client.Status(ctx); st.Firewall.Errors != 0 {
		t.Errorf("%d firewall errors:\n%s", st.Firewall.Errors, r.logs)
	}
	inStep(t, r)
}
