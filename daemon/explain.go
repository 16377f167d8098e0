package daemon

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/firewall"
)

// explanation is what `policy explain` says of a packet (see explain).
type explanation struct {
	Mode    string
	Verdict string // one of the verdicts below
	Rule    string // the comment of the deciding rule, without "sipguard "
	Why     string
}

// Verdicts of explain.
const (
	verdictAccepted  = "accepted"
	verdictDropped   = "dropped"
	verdictLimited   = "limited"
	verdictUntouched = "untouched"
)

// explain follows the chain's order (see firewall.NFT): the allowlist's
// accepts, the bans' drops, then on the SIP ports the policy: replies to
// the host's own requests, learned addresses, allowed countries, and
// strict's drop or
// responsive's meter. It runs on the core goroutine.
func (d *Daemon) explain(a netip.Addr, port firewall.Port) explanation {
	now := d.now()
	pol := d.cfg.Policy.Firewall
	fam := "4"
	if a.Is6() {
		fam = "6"
	}
	res := explanation{Mode: cmpMode(pol.Mode)}
	host := netip.PrefixFrom(a, a.BitLen())
	if p := d.allowed(host); p.IsValid() {
		res.Verdict, res.Rule = verdictAccepted, "allow"+fam
		by := bans.String(p)
		if t := d.trunkOf(p); t != "" {
			by += " (trunk " + t + ")"
		}
		res.Why = fmt.Sprintf("allowlisted by %s: accepted ahead of every drop", by)
		return res
	}
	for _, q := range d.ledger.Overlapping(host, func(r *bans.Record) bool { return r.InForce(now) }) {
		for _, r := range d.profileTops(q, now) {
			if !d.banDrops(r.Ports, port) {
				continue
			}
			set := "ban" + fam
			if !bans.IsHost(r.Target) {
				set = "net" + fam
			}
			res.Verdict, res.Rule = verdictDropped, set
			res.Why = fmt.Sprintf("banned: %s by %s until %s", bans.String(r.Target), r.Label(), r.Expires.UTC().Format(time.RFC3339))
			if r.Reason != "" {
				res.Why += " (" + r.Reason + ")"
			}
			return res
		}
	}
	if _, sip := firewall.PortOf(pol.SIPPorts, port.Port, port.Proto); !sip || !pol.Enforced() {
		res.Verdict = verdictUntouched
		res.Why = "not banned, and not a SIP port under a policy: sipguard lets it through (other firewalls may not)"
		if !pol.Enforced() {
			res.Why = "not banned; [policy] mode is open: sipguard lets it through (other firewalls may not)"
		}
		return res
	}
	if l := d.learned[a]; l != nil && l.Until.After(now) {
		res.Verdict, res.Rule = verdictAccepted, "learn"+fam+" "+port.Proto
		res.Why = fmt.Sprintf("learned until %s: account %q logged in on %s", l.Until.UTC().Format(time.RFC3339), l.Account, l.Source)
		return res
	}
	if c := d.allowedCountry(a); c != "" {
		res.Verdict, res.Rule = verdictAccepted, "country"+fam+" "+port.Proto
		res.Why = fmt.Sprintf("country %s admitted ([policy] allow_countries)", c)
		return res
	}
	replies := "; replies to this host's own requests (ct state established,related) are accepted before"
	if pol.Early {
		replies = "; [firewall] early: before conntrack, replies to this host's own requests are dropped too"
	}
	if pol.Mode == firewall.PolicyStrict {
		res.Verdict, res.Rule = verdictDropped, "policy drop "+portEntry(pol.SIPPorts, port)
		res.Why = "strict: neither allowlisted nor learned, dropped and counted" + replies
		return res
	}
	entry := port
	if p, ok := firewall.PortOf(pol.SIPPorts, port.Port, port.Proto); ok {
		entry = p
	}
	from := "this address"
	if a.Is6() {
		from = fmt.Sprintf("this address's /%d", pol.MeterPrefix())
	}
	res.Verdict, res.Rule = verdictLimited, firewall.LimitRule(pol, a.Is6(), entry)
	res.Why = fmt.Sprintf("responsive: neither allowlisted nor learned, at most %s from %s; the rest is dropped and counted", pol.Rate, from)
	return res
}

// banDrops reports whether a ban of ports profile key drops traffic to
// port: the default profile drops [firewall] ports (all when empty), a
// rule's profile its own ports.
func (d *Daemon) banDrops(key string, port firewall.Port) bool {
	ports := d.cfg.Policy.BanPorts
	if key != "" {
		ports = nil
		for _, s := range strings.Split(key, ",") {
			if p, err := firewall.ParsePort(s); err == nil {
				ports = append(ports, p)
			}
		}
	}
	if len(ports) == 0 {
		return key == ""
	}
	_, ok := firewall.PortOf(ports, port.Port, port.Proto)
	return ok
}

// portEntry is the SIP ports entry holding port, as the rule names it.
func portEntry(ports []firewall.Port, port firewall.Port) string {
	if p, ok := firewall.PortOf(ports, port.Port, port.Proto); ok {
		return p.String()
	}
	return port.String()
}
