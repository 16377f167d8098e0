package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Policy modes: who may reach the SIP ports at all ([policy] mode).
const (
	// PolicyOpen leaves the SIP ports alone: only bans drop (the
	// behaviour before policies existed, and the default).
	PolicyOpen = "open"
	// PolicyStrict admits to the SIP ports only the allowlist, learned
	// addresses and replies to the host's own connections; the rest is
	// dropped and counted per port.
	PolicyStrict = "strict"
	// PolicyResponsive admits everyone, but limits each unknown source
	// address to Rate packets in the kernel; the rest is dropped and
	// counted per port.
	PolicyResponsive = "responsive"
)

// Policy says who reaches the SIP ports (see NFT: the policy rules).
type Policy struct {
	Mode     string // PolicyOpen ("" is open too), PolicyStrict or PolicyResponsive
	SIPPorts []Port
	Rate     Rate // responsive: what one unknown source may send
	// Early hooks the policy's drops (and the bans') at prerouting,
	// priority raw, ahead of conntrack: a flood never fills the
	// connection table. Before conntrack there is no ct state: see NFT.
	Early bool
	// IPv6Prefix is the length of the IPv6 prefix one meter covers in
	// responsive mode ([engine] ipv6_prefix, as bans count and cover; 0 is
	// DefaultIPv6Prefix): a host's /64 holds any number of addresses, and
	// a meter per address would give a scanner rotating through them a
	// fresh burst with each, and fill meter6.
	IPv6Prefix int
	// Countries are the networks of [policy] allow_countries (from the
	// country database): in strict and responsive mode, sources in them
	// are admitted like learned addresses. Overlapping and adjacent
	// networks are merged into ranges (sets country4, country6).
	Countries []netip.Prefix
}

// DefaultIPv6Prefix is Policy.IPv6Prefix when it is 0.
const DefaultIPv6Prefix = 64

// MeterPrefix returns the IPv6 prefix length one meter covers.
func (p Policy) MeterPrefix() int {
	if p.IPv6Prefix <= 0 || p.IPv6Prefix > 128 {
		return DefaultIPv6Prefix
	}
	return p.IPv6Prefix
}

// Enforced reports whether the policy filters the SIP ports at all.
func (p Policy) Enforced() bool { return p.Mode == PolicyStrict || p.Mode == PolicyResponsive }

// Rate is a number of packets per unit of time: "20/minute".
type Rate struct {
	Count uint64
	Per   time.Duration // time.Second, time.Minute, time.Hour or 24h
}

// String returns the rate as ParseRate reads it.
func (r Rate) String() string {
	for name, d := range rateUnits {
		if d == r.Per {
			return strconv.FormatUint(r.Count, 10) + "/" + name
		}
	}
	return strconv.FormatUint(r.Count, 10) + "/" + r.Per.String()
}

var rateUnits = map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}

// ParseRate reads a rate as the configuration writes it: a count from 1,
// a slash and a unit, second, minute, hour or day ("20/minute"). Its
// errors quote s and need no prefix (like ParsePort's).
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 32)
	per, known := rateUnits[unit]
	switch {
	case !ok || err != nil:
		return Rate{}, fmt.Errorf("%q is not a rate such as \"20/minute\"", s)
	case n == 0:
		return Rate{}, fmt.Errorf("%q: the count must be at least 1", s)
	case !known:
		return Rate{}, fmt.Errorf("%q: unit %q is not second, minute, hour or day", s, unit)
	}
	return Rate{Count: n, Per: per}, nil
}

// Learned is an address admitted to the SIP ports for a while (a phone
// that logged in): see NFT.Learn.
type Learned struct {
	Addr    netip.Addr
	Timeout time.Duration
}

// LimitRule is the name of the responsive policy's limit rule of family
// v6 on port p (without "sipguard "): "policy limit4 5060/udp 20/minute",
// "policy limit6 5060/udp 20/minute per /64".
func LimitRule(pol Policy, v6 bool, p Port) string {
	if v6 {
		return fmt.Sprintf("policy limit6 %s %s per /%d", p, pol.Rate, pol.MeterPrefix())
	}
	return fmt.Sprintf("policy limit4 %s %s", p, pol.Rate)
}

// PortOf returns the entry of ports that holds port/proto, if any.
func PortOf(ports []Port, port uint16, proto string) (Port, bool) {
	for _, p := range ports {
		if p.Proto == proto && port >= p.Port && port <= max(p.Last, p.Port) {
			return p, true
		}
	}
	return Port{}, false
}
