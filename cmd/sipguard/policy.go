package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
)

var learnedCommand = command{"learned", "list the learned phones admitted to the SIP ports, or forget one", (*Main).learned}

const learnedSynopsis = `learned [-c FILE] [--json] [forget ADDR]

Lists the addresses the running daemon learned: phones that logged in
successfully, admitted to the SIP ports ([policy] sip_ports) in strict and
responsive mode until their time runs out (learn_for after their last
login). The account is the one of the last login, as the log wrote it
(attacker-written text: shown quoted).

"learned forget ADDR" removes one at once, from the kernel too; its next
successful login learns it again.`

func (m *Main) learned(ctx context.Context, args []string) error {
	fs := m.flagSet("learned", learnedSynopsis)
	client := m.daemonFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	forget := len(rest) == 2 && rest[0] == "forget"
	if len(rest) != 0 && !forget {
		return usagef("learned takes no arguments, or forget ADDR")
	}
	c, err := client()
	if err != nil {
		return err
	}
	if forget {
		res, err := c.Forget(ctx, rest[1])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(m.Stdout, res)
		}
		if res.Result == control.NotLearned {
			fmt.Fprintf(m.Stdout, "%s: not learned\n", rest[1])
			return nil
		}
		fmt.Fprintf(m.Stdout, "%s: forgotten\n", rest[1])
		return nil
	}
	res, err := c.Learned(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, res)
	}
	fmt.Fprintf(m.Stdout, "%d learned (mode %s, learn_for %s)\n", len(res.Learned), res.Mode, seconds(res.LearnForSeconds))
	if len(res.Learned) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "address\tuntil\taccount\tsource\tsince")
	for _, l := range res.Learned {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Addr, l.Until.Local().Format(time.DateTime), strconv.Quote(l.Account), l.Source,
			l.Since.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

var policyCommand = command{"policy", "explain what happens to a packet from an address to a port", (*Main).policy}

const policySynopsis = `policy [-c FILE] [--json] explain ADDR PORT/PROTO

Says what sipguard's chain does with a packet from ADDR to PORT/PROTO
("5060/udp") now, and why, in the chain's order: allowlisted (accepted
ahead of every drop), banned (by which rule, until when), and on a SIP
port under [policy] strict or responsive: learned (until when, by which
login), or dropped (strict) or limited to the rate (responsive); any
other packet sipguard leaves alone. The rule is the comment of the
nftables rule that decides, without "sipguard ".`

func (m *Main) policy(ctx context.Context, args []string) error {
	fs := m.flagSet("policy", policySynopsis)
	client := m.daemonFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 3 || rest[0] != "explain" {
		return usagef("policy takes: explain ADDR PORT/PROTO")
	}
	c, err := client()
	if err != nil {
		return err
	}
	res, err := c.Explain(ctx, rest[1], rest[2])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, res)
	}
	rule := ""
	if res.Rule != "" {
		rule = " (rule \"sipguard " + res.Rule + "\")"
	}
	fmt.Fprintf(m.Stdout, "%s to %s: %s%s: %s\n", res.Addr, res.Port, res.Verdict, rule, res.Why)
	return nil
}

// policyConfig is the daemon's part of [policy].
func policyConfig(cfg *config.Config) (daemon.Policy, error) {
	fp, err := cfg.FirewallPolicy()
	if err != nil {
		return daemon.Policy{}, err
	}
	ports, _, _, err := cfg.PortProfiles()
	if err != nil {
		return daemon.Policy{}, err
	}
	return daemon.Policy{Firewall: fp, LearnFor: time.Duration(cfg.Policy.LearnFor), BanPorts: ports, AllowCountries: cfg.Policy.AllowCountries}, nil
}

// policyProblems checks [policy] against what it would cut off: strict
// mode with no [allow] entry but loopback (nor a trunk) admits no
// provider at all, an error; the SSH session this command runs under
// ($SSH_CONNECTION), when its server port is a SIP port and its client is
// not allowlisted, would be dropped (strict) or throttled (responsive), a
// warning. allow_countries do not count as providers: a country is no
// provider's address (its signalling may come from elsewhere), and strict
// mode with countries only would be a country filter that also shuts the
// providers out; in open mode they do nothing, a warning.
func policyProblems(cfg *config.Config, allow []netip.Prefix, getenv func(string) string) (warnings []string, err error) {
	pol, perr := cfg.FirewallPolicy()
	if perr == nil && !pol.Enforced() && len(cfg.Policy.AllowCountries) > 0 {
		return []string{"[policy] allow_countries has no effect in mode \"open\": everyone reaches the SIP ports"}, nil
	}
	if perr != nil || !pol.Enforced() {
		return nil, perr
	}
	if pol.Mode == firewall.PolicyStrict && providers(cfg) == 0 {
		return nil, fmt.Errorf("[policy] mode = \"strict\" with no [allow] entry but loopback and no [[trunk]]: no provider or office could reach the SIP ports %s; add your providers as [[trunk]] or to [allow] (or run mode = \"responsive\")",
			strings.Join(cfg.Policy.SIPPorts, ", "))
	}
	if getenv == nil {
		return nil, nil
	}
	client, port, ok := sshSession(getenv)
	if !ok || slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(client) }) {
		return nil, nil
	}
	if p, sip := firewall.PortOf(pol.SIPPorts, port, "tcp"); sip {
		warnings = append(warnings, fmt.Sprintf("your SSH session (%s to port %d/tcp) goes to a SIP port of [policy] (%s): in mode %q it would be cut off; add %s to [allow] or take the port out of sip_ports",
			client, port, p, pol.Mode, client))
	}
	return warnings, nil
}

// providers counts the [allow] entries that are not loopback (addresses,
// networks, host names) and the [[trunk]]s: who may reach the SIP ports in
// strict mode besides learned phones.
func providers(cfg *config.Config) int {
	n := len(cfg.Trunks)
	for _, s := range cfg.Allow.Addresses {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().IsLoopback() {
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil && a.IsLoopback() {
			continue
		}
		n++
	}
	return n
}

// wideAllow warns of the [allow] entries and trunk networks wider than
// the widest ban (bans.TooWide): everything in one is never banned and
// passes the policy, most likely a typo ("0.0.0.0/1") or a form that
// means more than it looks ("::ffff:0:0/96" is every IPv4 address).
// IPv6 link-local (fe80::/10, where a router's address lies) and unique
// local (fc00::/7) networks are not warned of: nothing from the Internet
// comes from them.
func wideAllow(cfg *config.Config) []string {
	var out []string
	warn := func(where, s string) {
		p, err := bans.ParseTarget(s)
		if err != nil || !bans.TooWide(p) || notRouted(p) {
			return
		}
		shown := s
		if p.String() != s {
			shown += " (" + p.String() + ")"
		}
		out = append(out, fmt.Sprintf("%s %s is wider than /%d (IPv4) or /%d (IPv6): everything in it is never banned and passes [policy]",
			where, shown, bans.MinBits4, bans.MinBits6))
	}
	for _, s := range cfg.Allow.Addresses {
		warn("[allow]", s)
	}
	for _, t := range cfg.Trunks {
		for _, s := range t.Networks {
			warn("trunk "+t.Name+":", s)
		}
	}
	return out
}

// notRouted reports whether p lies inside IPv6's link-local or unique
// local addresses.
func notRouted(p netip.Prefix) bool {
	for _, n := range []netip.Prefix{netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("fc00::/7")} {
		if n.Bits() <= p.Bits() && n.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// sshSession reads $SSH_CONNECTION "client port server port": the client
// and the server port it is connected to.
func sshSession(getenv func(string) string) (netip.Addr, uint16, bool) {
	f := strings.Fields(getenv("SSH_CONNECTION"))
	if len(f) != 4 {
		return netip.Addr{}, 0, false
	}
	a, err := netip.ParseAddr(f[0])
	port, perr := strconv.ParseUint(f[3], 10, 16)
	if err != nil || perr != nil {
		return netip.Addr{}, 0, false
	}
	return a.Unmap().WithZone(""), uint16(port), true
}
