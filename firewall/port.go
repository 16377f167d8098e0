package firewall

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Port is a transport protocol and destination port.
type Port struct {
	Proto string // "tcp" or "udp"
	Port  uint16
}

// String returns the port as ParsePort reads it, such as "5060/udp".
func (p Port) String() string { return strconv.Itoa(int(p.Port)) + "/" + p.Proto }

// ParsePort reads a destination port as sipguard's configuration writes
// it: a decimal port from 1 to 65535, a slash, and the protocol, tcp or
// udp in any case ("5060/udp", "5061/TCP"; the protocol is returned in
// lower case). Nothing else is accepted: no spaces, no sign, no range, no
// other protocol. It is the one reader of this syntax in sipguard.
//
// Its errors quote s and need no prefix, so that a caller can put them
// after the name of the setting, as in
//
//	rules.toml:12: firewall.ports[0]: "5060" is not a port such as "5060/udp" or "5061/tcp"
//	rules.toml:12: firewall.ports[1]: "5060/sctp": protocol "sctp" is not tcp or udp
//	rules.toml:12: firewall.ports[2]: "70000/udp": port 70000 is out of range 1-65535
func ParsePort(s string) (Port, error) {
	num, proto, ok := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if !ok || errors.Is(err, strconv.ErrSyntax) {
		return Port{}, fmt.Errorf("%q is not a port such as \"5060/udp\" or \"5061/tcp\"", s)
	}
	lower := strings.ToLower(proto)
	if lower != "tcp" && lower != "udp" {
		return Port{}, fmt.Errorf("%q: protocol %q is not tcp or udp", s, proto)
	}
	if err != nil || n == 0 {
		return Port{}, fmt.Errorf("%q: port %s is out of range 1-65535", s, num)
	}
	return Port{Proto: lower, Port: uint16(n)}, nil
}
