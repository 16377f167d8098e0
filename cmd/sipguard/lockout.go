package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// lockoutWarnings names the addresses that, banned, would cut the admin
// off the host, when [allow] does not hold them: the SSH client this
// command runs under ($SSH_CONNECTION, $SSH_CLIENT) and the default
// gateways. A phone behind the admin's NAT with a stale password, or the
// gateway relaying traffic, is all it takes.
func (m *Main) lockoutWarnings(allow []netip.Prefix) []string {
	allowed := func(a netip.Addr) bool {
		for _, p := range allow {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	var out []string
	if m.Getenv == nil || m.Gateways == nil {
		return nil // a Main made by a test, without a host
	}
	if a, ok := sshClient(m.Getenv); ok && !allowed(a) {
		out = append(out, fmt.Sprintf("your SSH client %s is not in [allow] addresses: a few failed logins from its network "+
			"(a phone behind the same NAT with a stale password) would lock you out; add it, or its network", a))
	}
	gws, err := m.Gateways()
	if err != nil {
		out = append(out, fmt.Sprintf("default gateways not checked against [allow]: %v", err))
	}
	for _, g := range gws {
		if !allowed(g) {
			out = append(out, fmt.Sprintf("the default gateway %s is not in [allow] addresses: if it relays traffic (NAT, a SIP ALG), "+
				"a ban of it cuts this host off; add it", g))
		}
	}
	return out
}

// sshClient reads the SSH client's address from the environment sshd
// gives a session: SSH_CONNECTION "client port server port", or the older
// SSH_CLIENT "client port port".
func sshClient(getenv func(string) string) (netip.Addr, bool) {
	for _, v := range []string{"SSH_CONNECTION", "SSH_CLIENT"} {
		if f := strings.Fields(getenv(v)); len(f) > 0 {
			if a, err := netip.ParseAddr(f[0]); err == nil {
				return a.Unmap().WithZone(""), true
			}
		}
	}
	return netip.Addr{}, false
}

// Gateways returns this host's default gateways, IPv4 and IPv6, from the
// kernel's routing tables in /proc.
func Gateways() ([]netip.Addr, error) {
	var out []netip.Addr
	for _, read := range []func() ([]netip.Addr, error){gateways4, gateways6} {
		gws, err := read()
		if err != nil {
			return out, err
		}
		out = append(out, gws...)
	}
	return out, nil
}

// gateways4 reads /proc/net/route: default routes (destination and mask
// 0) with a gateway, in hexadecimal, little-endian.
func gateways4() ([]netip.Addr, error) {
	return procRoutes("/proc/net/route", func(f []string) (netip.Addr, bool) {
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			return netip.Addr{}, false
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			return netip.Addr{}, false
		}
		a := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
		return a, !a.IsUnspecified()
	})
}

// gateways6 reads /proc/net/ipv6_route: routes to ::/0 with a next hop.
func gateways6() ([]netip.Addr, error) {
	return procRoutes("/proc/net/ipv6_route", func(f []string) (netip.Addr, bool) {
		if len(f) < 5 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			return netip.Addr{}, false
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			return netip.Addr{}, false
		}
		a := netip.AddrFrom16([16]byte(b))
		return a, !a.IsUnspecified()
	})
}

func procRoutes(path string, gateway func([]string) (netip.Addr, bool)) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no IPv6, or not Linux
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if a, ok := gateway(strings.Fields(sc.Text())); ok {
			out = append(out, a)
		}
	}
	return out, sc.Err()
}
