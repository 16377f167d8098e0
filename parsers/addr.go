package parsers

import (
	"bytes"
	"net/netip"
)

// ParseAddr parses a literal IPv4 or IPv6 address, nothing else: no port, no
// brackets, no host name. IPv4-mapped IPv6 addresses are unmapped and an
// IPv6 zone is removed. Addresses that cannot be the source of a packet
// (unspecified, multicast, limited broadcast) are refused.
func ParseAddr(b []byte) (netip.Addr, bool) {
	if a, ok := parseIPv4(b); ok {
		return a, usable(a)
	}
	if bytes.IndexByte(b, ':') < 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap().WithZone("")
	return a, usable(a)
}

func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// ParseAddrPort parses an address with an optional port, as Asterisk and
// pjsip print them: "192.0.2.1", "192.0.2.1:5060", "[2001:db8::1]:5060",
// "[2001:db8::1]" and "2001:db8::1" (and "[192.0.2.1]:5060").
//
// An unbracketed IPv6 address is ambiguous: its last group may be a port.
// When v6Port is false it is taken whole, without a port; when v6Port is
// true the producer is known to always append ":port" (pjsip before 13.24
// printed "%s:%d" with the bare address), so the last colon separates a
// port, which is then required.
func ParseAddrPort(b []byte, v6Port bool) (netip.Addr, uint16, bool) {
	if len(b) == 0 {
		return netip.Addr{}, 0, false
	}
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, 0, false
		}
		// Brackets normally hold IPv6 (possibly IPv4-mapped, which pjsip
		// prints as is); "[192.0.2.1]" is accepted too, as fail2ban does.
		a, ok := ParseAddr(b[1:end])
		if !ok {
			return netip.Addr{}, 0, false
		}
		rest := b[end+1:]
		if len(rest) == 0 {
			return a, 0, true
		}
		if rest[0] != ':' {
			return netip.Addr{}, 0, false
		}
		p, ok := parsePort(rest[1:])
		return a, p, ok
	}
	// The usual "ip:port" in one pass; anything else the long way.
	if a, n, ok := ipv4Prefix(b); ok && n < len(b) && b[n] == ':' && usable(a) {
		if p, ok := parsePort(b[n+1:]); ok {
			return a, p, true
		}
	}
	colons := bytes.Count(b, []byte{':'})
	switch {
	case colons == 0:
		a, ok := ParseAddr(b)
		return a, 0, ok && a.Is4()
	case colons == 1:
		i := bytes.IndexByte(b, ':')
		a, ok := parseIPv4(b[:i])
		if !ok || !usable(a) {
			return netip.Addr{}, 0, false
		}
		p, ok := parsePort(b[i+1:])
		return a, p, ok
	case v6Port:
		i := bytes.LastIndexByte(b, ':')
		a, ok := ParseAddr(b[:i])
		if !ok {
			return netip.Addr{}, 0, false
		}
		p, ok := parsePort(b[i+1:])
		return a, p, ok
	default:
		a, ok := ParseAddr(b)
		return a, 0, ok
	}
}

// parsePort parses a decimal port 1-65535 without sign or leading zero.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || b[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseIPv4 parses dotted-decimal IPv4 without allocating. Like
// netip.ParseAddr it refuses leading zeros, which Asterisk never prints.
func parseIPv4(b []byte) (netip.Addr, bool) {
	a, n, ok := ipv4Prefix(b)
	return a, ok && n == len(b)
}

// ipv4Prefix reads the dotted-decimal IPv4 address at the start of b (as
// parseIPv4 reads a whole one) and returns how many bytes it took: at most
// 15, so that the caller sees what follows without looking for it first.
func ipv4Prefix(b []byte) (netip.Addr, int, bool) {
	var ip [4]byte
	i := 0
	for f := range 4 {
		if f > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, 0, false
			}
			i++
		}
		v, next, ok := octet(b, i)
		if !ok {
			return netip.Addr{}, 0, false
		}
		ip[f], i = v, next
	}
	return netip.AddrFrom4(ip), i, true
}

// octet reads the decimal number of 1 to 3 digits at b[i:], without a
// leading zero, up to 255, and returns it with where it ends. It is
// unrolled: the loop it replaced spent more on its own tests than on the
// digits.
func octet(b []byte, i int) (byte, int, bool) {
	if i >= len(b) || b[i]-'0' > 9 {
		return 0, 0, false
	}
	v := uint(b[i] - '0')
	if i+1 >= len(b) || b[i+1]-'0' > 9 {
		return byte(v), i + 1, true
	}
	if v == 0 {
		return 0, 0, false // a leading zero
	}
	v = v*10 + uint(b[i+1]-'0')
	if i+2 >= len(b) || b[i+2]-'0' > 9 {
		return byte(v), i + 2, true
	}
	v = v*10 + uint(b[i+2]-'0')
	return byte(v), i + 3, v <= 255
}
