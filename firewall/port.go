package firewall

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Port is a transport protocol and a destination port, or a range of
// them (Port to Last, both included; Last is Port for a single port).
type Port struct {
	Proto string // "tcp" or "udp"
	Port  uint16
	Last  uint16
}

// String returns the port as ParsePort reads it: "5060/udp",
// "10000-20000/udp".
func (p Port) String() string {
	if p.Last > p.Port {
		return strconv.Itoa(int(p.Port)) + "-" + strconv.Itoa(int(p.Last)) + "/" + p.Proto
	}
	return strconv.Itoa(int(p.Port)) + "/" + p.Proto
}

// ParsePort reads a destination port as sipguard's configuration writes
// it: a decimal port from 1 to 65535, or a range of them ("10000-20000":
// RTP), a slash, and the protocol, tcp or udp in any case ("5060/udp",
// "5061/TCP"; the protocol is returned in lower case). Nothing else is
// accepted: no spaces, no sign, no other protocol. It is the one reader of
// this syntax in sipguard.
//
// Its errors quote s and need no prefix, so that a caller can put them
// after the name of the setting, as in
//
//	rules.toml:12: firewall.ports[0]: "5060" is not a port such as "5060/udp" or "5061/tcp"
//	rules.toml:12: firewall.ports[1]: "5060/sctp": protocol "sctp" is not tcp or udp
//	rules.toml:12: firewall.ports[2]: "70000/udp": port 70000 is out of range 1-65535
//	rules.toml:12: firewall.ports[3]: "20000-10000/udp": the range ends before it starts
func ParsePort(s string) (Port, error) {
	nums, proto, ok := strings.Cut(s, "/")
	first, last, isRange := strings.Cut(nums, "-")
	if !isRange {
		last = first
	}
	n, err := strconv.ParseUint(first, 10, 16)
	m, err2 := strconv.ParseUint(last, 10, 16)
	if !ok || errors.Is(err, strconv.ErrSyntax) || errors.Is(err2, strconv.ErrSyntax) {
		return Port{}, fmt.Errorf("%q is not a port such as \"5060/udp\" or \"5061/tcp\" (or a range: \"10000-20000/udp\")", s)
	}
	lower := strings.ToLower(proto)
	if lower != "tcp" && lower != "udp" {
		return Port{}, fmt.Errorf("%q: protocol %q is not tcp or udp", s, proto)
	}
	switch {
	case err != nil || n == 0:
		return Port{}, fmt.Errorf("%q: port %s is out of range 1-65535", s, first)
	case err2 != nil || m == 0:
		return Port{}, fmt.Errorf("%q: port %s is out of range 1-65535", s, last)
	case m < n:
		return Port{}, fmt.Errorf("%q: the range ends before it starts", s)
	}
	return Port{Proto: lower, Port: uint16(n), Last: uint16(m)}, nil
}

// portRanges merges ports into sorted, disjoint ranges per protocol
// (ports that overlap or touch become one range: an interval set refuses
// overlaps). It checks what ParsePort would have refused.
func portRanges(ports []Port) (map[string][][2]uint16, error) {
	out := map[string][][2]uint16{}
	for _, p := range ports {
		last := max(p.Last, p.Port)
		if (p.Proto != "tcp" && p.Proto != "udp") || p.Port == 0 {
			return nil, fmt.Errorf("port %s: want 1-65535/tcp or udp", p)
		}
		out[p.Proto] = append(out[p.Proto], [2]uint16{p.Port, last})
	}
	for proto, rs := range out {
		slices.SortFunc(rs, func(a, b [2]uint16) int { return int(a[0]) - int(b[0]) })
		merged := rs[:1]
		for _, r := range rs[1:] {
			top := &merged[len(merged)-1]
			if int(r[0]) <= int(top[1])+1 {
				top[1] = max(top[1], r[1])
				continue
			}
			merged = append(merged, r)
		}
		out[proto] = merged
	}
	return out, nil
}

// PortsKey returns the canonical name of a list of ports, the key of its
// ports profile (Ban.Ports, NFTOptions.Profiles): the merged ranges, tcp
// then udp, in order, joined by commas ("80/tcp,443/tcp,5060/udp"). Lists
// that drop the same traffic have the same key; an empty list has "".
func PortsKey(ports []Port) (string, error) {
	ranges, err := portRanges(ports)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, proto := range []string{"tcp", "udp"} {
		for _, r := range ranges[proto] {
			parts = append(parts, Port{Proto: proto, Port: r[0], Last: r[1]}.String())
		}
	}
	return strings.Join(parts, ","), nil
}
