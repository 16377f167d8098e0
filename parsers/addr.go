package parsers

import (
	"bytes"
	"encoding/binary"
	"math/bits"
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
// Each number has 1 to 3 digits, no leading zero and is at most 255; the
// fourth ends after 3 digits or at the first byte that is no digit.
//
// It reads the first 16 bytes at once and finds each number's length in a
// mask of which of them are digits: a branch per digit, as the plain loop
// (ipv4PrefixLoop in the tests, the reference it is checked against) has,
// is mispredicted about once per number, since addresses mix numbers of 1,
// 2 and 3 digits, and that cost more than the rest of reading a line.
func ipv4Prefix(b []byte) (netip.Addr, int, bool) {
	// Zero bytes past b are neither digits nor dots: as if b ended there.
	// b's first 16 bytes, read without a branch on its length from 8 up
	// (the second word ends at the 16th byte or b's end, and is shifted
	// down to start at the 9th): a copy costs a call.
	var lo, hi uint64
	if len(b) >= 8 {
		k := min(len(b), 16)
		lo = binary.LittleEndian.Uint64(b)
		hi = binary.LittleEndian.Uint64(b[k-8:]) >> (8 * (16 - k))
	} else {
		var short [8]byte
		copy(short[:], b)
		lo = binary.LittleEndian.Uint64(short[:])
	}
	var w [16]byte
	binary.LittleEndian.PutUint64(w[:8], lo)
	binary.LittleEndian.PutUint64(w[8:], hi)
	digits := movemask(digitBytes(lo)) | movemask(digitBytes(hi))<<8
	dots := movemask(zeroBytes(lo^dotWord)) | movemask(zeroBytes(hi^dotWord))<<8
	var ip uint32
	i := 0 // where the number starts: at most 12 (3 numbers of 3 digits and 3 dots before)
	for f := range 4 {
		// The digits from i on; the bit above the 16 read stops the count.
		n := bits.TrailingZeros32(^(digits >> (i & 15)))
		if f == 3 {
			n = min(n, 3)
		}
		if uint(n-1) > 2 || f < 3 && dots>>((i+n)&31)&1 == 0 {
			return netip.Addr{}, 0, false
		}
		// The number is the n digits at w[i:], read as 3 with the ones
		// past it weighted 0: no branch on n. i+2 <= 14.
		d0, d1, d2 := uint(w[i&15]-'0'), uint(w[(i+1)&15]-'0'), uint(w[(i+2)&15]-'0')
		m := &octetWeights[n&3]
		v := d0*m[0] + d1*m[1] + d2*m[2]
		if v > 255 || v < m[3] { // too big, or a leading zero
			return netip.Addr{}, 0, false
		}
		ip = ip<<8 | uint32(v)
		i += n + 1
	}
	// Built in a register and stored at once: four stores of a byte, read
	// back as one word by AddrFrom4, stalled the load until they were
	// written (no store forwarding): half of this function's time.
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], ip)
	return netip.AddrFrom4(a), i - 1, true
}

// octetWeights are, for a number of n digits, the weights of the 3 digits
// read and the least it can be without a leading zero.
var octetWeights = [4][4]uint{{}, {1, 0, 0, 0}, {10, 1, 0, 10}, {100, 10, 1, 100}}

const (
	lo7     = 0x7f7f7f7f7f7f7f7f
	hi1     = 0x8080808080808080
	dotWord = 0x2e2e2e2e2e2e2e2e // "........"
)

// digitBytes returns the top bit of each byte of v that is an ASCII digit,
// exactly (no carry from one byte reaches the next).
func digitBytes(v uint64) uint64 {
	low := v & lo7
	atLeast0 := low + 0x5050505050505050 // top bit set from '0' (0x30) up
	above9 := low + 0x4646464646464646   // top bit set from ':' (0x3a) up
	return atLeast0 &^ above9 &^ v & hi1 // and not a byte of 0x80 or more
}

// zeroBytes returns the top bit of each byte of v that is 0, exactly.
func zeroBytes(v uint64) uint64 { return ^((v&lo7 + lo7) | v | lo7) }

// movemask gathers the top bits of the bytes of m, which has no other
// bits set, into the low 8 bits, in memory order.
func movemask(m uint64) uint32 { return uint32((m >> 7) * 0x0102040810204080 >> 56) }
