package bans

import (
	"net/netip"
	"time"
)

// MaxDuration is the longest ban a person may ask for (`sipguard ban
// --for`, an import, [daemon] manual_ban_time): ten years, the engine's
// own cap on escalation. Anything longer ("100000d") is a typo, or a ban
// meant for ever, which an allowlist or a firewall rule says better.
const MaxDuration = 10 * 365 * 24 * time.Hour

// special is the address space no ban may touch, whoever asks: a ban
// there would cut the host off itself (loopback) or off its own link (an
// IPv6 host reaches its router and neighbours from fe80::/10; DHCP and
// cloud metadata use 169.254.0.0/16), or names no sender at all
// (unspecified, multicast, broadcast: packets never come from those). The documentation ranges (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not special: they
// are the attackers of every example and test.
//
// Loopback comes before the unspecified address and ::/96, so that ::/64
// is refused for holding ::1.
var special = []struct {
	net  netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address (255.255.255.255)"},
	{netip.MustParsePrefix("::1/128"), "loopback (::1)"},
	{netip.MustParsePrefix("::/128"), "the unspecified address (::)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (::/96)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped (::ffff:0:0/96)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// Special reports whether p must never be banned, by any origin: it lies
// in, or holds, special-purpose address space (loopback, link-local,
// unspecified, multicast, broadcast, 0.0.0.0/8, IPv4-mapped and
// IPv4-compatible IPv6). An IPv4-mapped address or network is judged as
// the IPv4 one it denotes, as the firewall reads it. why says which, to
// follow "p is ": "link-local (fe80::/10)", or "a network holding
// loopback (::1)" for ::/64. An invalid prefix is special too.
//
// It is the one rule: the engine drops the events of such addresses,
// manual bans and imports refuse them, feeds skip them, the cluster's
// bans are ignored, and the daemon refuses any that reaches the firewall.
func Special(p netip.Prefix) (why string, bad bool) {
	if !p.IsValid() {
		return "not an address or network", true
	}
	p = unmap(p.Masked())
	for _, s := range special {
		if !s.net.Overlaps(p) {
			continue
		}
		if p.Bits() < s.net.Bits() {
			return "a network holding " + s.what, true
		}
		return s.what, true
	}
	return "", false
}
