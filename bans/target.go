package bans

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrNotTarget is wrapped by every error of ParseTarget.
var ErrNotTarget = errors.New("not an IP address or CIDR")

// HostBitsError is a network written with host bits set: "10.1.2.3/8" is a
// typo for 10.0.0.0/8 or for 10.1.2.3, and a ban or an allowlist entry
// must not guess which. Readers of foreign lists (blocklist feeds,
// fail2ban's output) take Masked instead.
type HostBitsError struct {
	Input  string
	Masked netip.Prefix
}

func (e *HostBitsError) Error() string {
	return fmt.Sprintf("%q has host bits set (did you mean %s?)", e.Input, e.Masked)
}

func (e *HostBitsError) Unwrap() error { return ErrNotTarget }

// ParseTarget reads what a ban, an unban or an allowlist entry names: an
// address ("192.0.2.7", "2001:db8::1") or a network ("203.0.113.0/24",
// "2001:db8::/64"). Surrounding blanks are ignored. An address comes back
// as a host prefix (/32, /128); IPv4-mapped IPv6 addresses and networks
// come back in IPv4 form, so that one address has one key. Zones and
// networks with host bits set are refused (the latter with a
// *HostBitsError that holds the masked network).
//
// It is the one reader of addresses and networks typed by people or read
// from lists: the config, the control socket, import and feeds all use it.
func ParseTarget(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: %w", s, ErrNotTarget)
		}
		return Host(a), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: %w", s, ErrNotTarget)
	}
	m := unmap(p.Masked())
	if p.Masked() != p {
		return netip.Prefix{}, &HostBitsError{Input: s, Masked: m}
	}
	return m, nil
}

// Host returns the prefix of one address: a /32 or a /128, unmapped.
func Host(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen())
}

// IsHost reports whether p is a single address rather than a network.
func IsHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

// String shows a target as people write it: an address without /32 or
// /128, a network with its length.
func String(p netip.Prefix) string {
	if IsHost(p) {
		return p.Addr().String()
	}
	return p.String()
}

// unmap turns an IPv4-mapped IPv6 network (::ffff:192.0.2.0/120) into its
// IPv4 form (192.0.2.0/24).
func unmap(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// The widest networks a list (a feed, an import) may ban, and a person
// without --force: an IPv4 /8 and an IPv6 /19 (the smallest block a
// regional registry allocates). Anything wider is far more likely a typo
// ("0.0.0.0/2") than an attacker.
const (
	MinBits4 = 8
	MinBits6 = 19
)

// TooWide reports whether p is wider than MinBits4 or MinBits6.
func TooWide(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() < MinBits4
	}
	return p.Bits() < MinBits6
}
