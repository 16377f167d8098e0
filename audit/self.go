package audit

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/sipguard/sipguard/asteriskconf"
)

// Self is what sipguard audit knows of sipguard's own configuration.
type Self struct {
	// File is the rules.toml read ("" for the built-in defaults).
	File string
	// Unreadable lists the file sources that cannot be read now:
	// "source NAME: PATH: why".
	Unreadable []string
	// Allow lists [allow] addresses.
	Allow []string
	// Trunks counts the [[trunk]] entries (providers admitted by name).
	Trunks int
	// Policy is [policy] mode ("open", "strict", "responsive"), and
	// SIPPorts the ports it guards.
	Policy   string
	SIPPorts []PortRange
	// HostAddrs are the host's own addresses.
	HostAddrs []netip.Addr
}

// PortRange is a port or range of a protocol ("udp", "tcp").
type PortRange struct {
	Proto       string
	First, Last uint16
}

func init() {
	Checks = append(Checks,
		Check{ID: "SIPGUARD-SOURCE-UNREADABLE", Severity: Medium, Title: "sipguard cannot read a log it follows",
			Why: "Attacks logged there are not counted: nothing is banned for them.",
			Fix: "Correct the source's path, or the log's permissions; sipguard check lists the same problems.", Source: "sipguard (docs/configuration.md)"},
		Check{ID: "SIPGUARD-NO-ALLOWLIST", Severity: Low, Title: "no SIP trunk or office in sipguard's allowlist",
			Why: "A trunk or an office behind one address that fails authentication a few times gets banned: calls stop.",
			Fix: "Add your SIP trunks as [[trunk]] (by host name) and your offices' addresses to [allow] addresses in rules.toml.", Source: "sipguard (README: quick start)"},
		Check{ID: "SIPGUARD-POLICY-OPEN", Severity: Medium, Title: "the SIP ports face the Internet with [policy] mode open",
			Why:    "Every address in the world may try passwords on the PBX; bans come only after failures, and a slow guesser stays under every rule. Hardening guides' first advice for a SIP trunk is to admit only trusted sources.",
			Fix:    "Put your providers in [[trunk]] or [allow] and set [policy] mode = \"strict\" (remote phones are learned after a successful login), or \"responsive\" to rate-limit strangers; run sipguard check first.",
			Source: "Asterisk README-SERIOUSLY.bestpractices; FreePBX Responsive Firewall; sipguard README: Admit only your providers"},
	)
	for _, c := range Checks[len(Checks)-3:] {
		checkByID[c.ID] = c
	}
	checkers = append(checkers, checkSelf)
}

func checkSelf(a *audit, _ *dialplan) {
	s := a.h.Self
	if s == nil {
		return
	}
	pos := asteriskconf.Pos{File: s.File}
	for _, u := range s.Unreadable {
		a.add("SIPGUARD-SOURCE-UNREADABLE", pos, "%s", u)
	}
	if len(s.Allow) == 0 && s.Trunks == 0 {
		a.add("SIPGUARD-NO-ALLOWLIST", pos, "[allow] addresses is empty and there is no [[trunk]]: only loopback and the host's own addresses are never banned")
	}
	checkPolicyOpen(a, s, pos)
}

// checkPolicyOpen: policy open, a SIP port listened on beyond loopback,
// and a public address on the host. Behind NAT (no public address here)
// the audit cannot tell whether the router forwards the port, and says
// nothing.
func checkPolicyOpen(a *audit, s *Self, pos asteriskconf.Pos) {
	if s.Policy != "" && s.Policy != "open" {
		return
	}
	var public []netip.Addr
	for _, h := range s.HostAddrs {
		if Public(h) {
			public = append(public, h)
		}
	}
	if len(public) == 0 {
		return
	}
	var open []string
	for _, l := range Listeners(a.h.FS) {
		if l.Addr.IsLoopback() || !sipPort(s.SIPPorts, l) {
			continue
		}
		if !l.Addr.IsUnspecified() && !slices.Contains(public, l.Addr) {
			continue // bound to a private or other address only
		}
		if str := l.String(); !slices.Contains(open, str) {
			open = append(open, str)
		}
	}
	if len(open) == 0 {
		return
	}
	slices.Sort(open)
	pub := make([]string, len(public))
	for i, p := range public {
		pub[i] = p.String()
	}
	a.add("SIPGUARD-POLICY-OPEN", pos, "%s %s listened on, the host has the public %s %s, and [policy] mode is open",
		plural(len(open), "SIP port", "SIP ports"), strings.Join(open, ", "), plural(len(pub), "address", "addresses"), strings.Join(pub, ", "))
}

func sipPort(ports []PortRange, l Listener) bool {
	for _, p := range ports {
		if p.Proto == l.Proto && l.Port >= p.First && l.Port <= p.Last {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
