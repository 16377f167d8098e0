//go:build linux

package firewall_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/firewall"
)

// allowSet lists an allow set as nft shows its elements: "a.b.c.d",
// "net/len" or "first-last".
func allowSet(t testing.TB, ns, set string) []string {
	t.Helper()
	var out []string
	for _, s := range listJSON[struct{ Elem []json.RawMessage }](t, ns, "set", set, "set") {
		for _, raw := range s.Elem {
			var v struct {
				Prefix *struct {
					Addr string `json:"addr"`
					Len  int    `json:"len"`
				} `json:"prefix"`
				Range []string `json:"range"`
			}
			var addr string
			switch {
			case json.Unmarshal(raw, &addr) == nil:
				out = append(out, addr)
			case json.Unmarshal(raw, &v) == nil && v.Prefix != nil:
				out = append(out, fmt.Sprintf("%s/%d", v.Prefix.Addr, v.Prefix.Len))
			case v.Range != nil:
				out = append(out, strings.Join(v.Range, "-"))
			default:
				t.Fatalf("unexpected element of %s: %s", set, raw)
			}
		}
	}
	slices.Sort(out)
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, pfx(s))
	}
	return out
}

// TestNFT_Allow: the allowlist is loaded into allow4 and allow6, merged,
// with its accepts ahead of every drop; SetAllow replaces it, and an
// invalid one changes nothing; a restart with the same list changes
// nothing.
func TestNFT_Allow(t *testing.T) {
	ns := newNS(t)
	ctx := context.Background()
	p, _ := firewall.ParsePort("5060/udp")
	opts := firewall.NFTOptions{
		Ports: []firewall.Port{p},
		Allow: prefixes("192.0.2.0/24", "192.0.2.7", "10.0.0.0/9", "10.128.0.0/9", "127.0.0.1/8", "2001:db8:bad::1", "::1", "2001:db8:bad::1/128", "::ffff:198.51.100.1"),
	}
	n := newNFT(t, ns, opts)
	if got, want := allowSet(t, ns, "allow4"), []string{"10.0.0.0/8", "127.0.0.0/8", "192.0.2.0/24", "198.51.100.1"}; !slices.Equal(got, want) {
		t.Errorf("allow4: %q; want %q (merged)", got, want)
	}
	if got, want := allowSet(t, ns, "allow6"), []string{"2001:db8:bad::1", "::1"}; !slices.Equal(got, want) {
		t.Errorf("allow6: %q; want %q", got, want)
	}
	for _, set := range []string{"allow4", "allow6"} {
		out := nft(t, ns, "list", "set", "inet", "sipguard", set)
		if !strings.Contains(out, "flags interval") || strings.Contains(out, "timeout") {
			t.Errorf("set %s: want flags interval, no timeout:\n%s", set, out)
		}
	}
	rules := listChain(t, ns, "input")
	if len(rules) < 3 || rules[0].Comment != "sipguard allow4" || rules[1].Comment != "sipguard allow6" {
		t.Fatalf("chain input: %+v; want the accepts first", rules)
	}
	for _, r := range rules[:2] {
		if !strings.Contains(r.Expr, `"accept"`) || !strings.Contains(r.Expr, `"counter"`) {
			t.Errorf("rule %s: %s; want counter accept", r.Comment, r.Expr)
		}
	}
	for _, r := range rules[2:] {
		if !strings.Contains(r.Expr, `"drop"`) {
			t.Errorf("rule %s after the accepts: %s; want a drop", r.Comment, r.Expr)
		}
	}

	t.Run("SetAllow", func(t *testing.T) {
		if err := n.SetAllow(ctx, prefixes("192.0.2.0/25", "192.0.2.128/25", "192.0.3.0", "2001:db8::/32")); err != nil {
			t.Fatal(err)
		}
		if got, want := allowSet(t, ns, "allow4"), []string{"192.0.2.0-192.0.3.0"}; !slices.Equal(got, want) {
			t.Errorf("allow4: %q; want %q", got, want)
		}
		if got, want := allowSet(t, ns, "allow6"), []string{"2001:db8::/32"}; !slices.Equal(got, want) {
			t.Errorf("allow6: %q; want %q", got, want)
		}
		if err := n.SetAllow(ctx, []netip.Prefix{pfx("192.0.2.9"), {}}); !errors.Is(err, firewall.ErrInvalidBan) {
			t.Errorf("invalid entry: got %v; want ErrInvalidBan", err)
		}
		if got := allowSet(t, ns, "allow6"); len(got) != 1 {
			t.Errorf("a refused SetAllow changed allow6: %q", got)
		}
		if err := n.SetAllow(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := append(allowSet(t, ns, "allow4"), allowSet(t, ns, "allow6")...); len(got) != 0 {
			t.Errorf("after SetAllow(nil): %q; want empty sets", got)
		}
		if got := len(listChain(t, ns, "input")); got != len(rules) {
			t.Errorf("an empty allowlist changed the rules: %d; want %d", got, len(rules))
		}
	})

	t.Run("Restart", func(t *testing.T) {
		if err := n.SetAllow(ctx, opts.Allow); err != nil {
			t.Fatal(err)
		}
		banForAnHour(t, n, "198.51.100.9")
		n.Close()
		// The table with its handles, but not the time the ban has left.
		table := func() string {
			return regexp.MustCompile(` expires \S+`).ReplaceAllString(nft(t, ns, "-a", "list", "table", "inet", "sipguard"), "")
		}
		before := table()
		newNFT(t, ns, opts)
		if after := table(); after != before {
			t.Errorf("a restart with the same allowlist changed the table:\n%s\nthen:\n%s", before, after)
		}
		newNFT(t, ns, firewall.NFTOptions{Ports: opts.Ports, Allow: prefixes("203.0.113.5")})
		if got, want := allowSet(t, ns, "allow4"), []string{"203.0.113.5"}; !slices.Equal(got, want) {
			t.Errorf("after a restart with another allowlist, allow4: %q; want %q", got, want)
		}
		if got := len(listSet(t, ns, "ban4")); got != 1 {
			t.Errorf("ban4 holds %d elements; want its ban kept", got)
		}
	})
}

// TestNFT_AllowTraffic: a trusted peer and an attacker in the same network
// (one IPv6 /64, one IPv4 /30). With the peer allowlisted, a ban of the
// attacker and even a ban of the whole network drop only the attacker:
// the peer's packets pass, counted by the accept rule, and the attacker's
// are counted by the drop.
func TestNFT_AllowTraffic(t *testing.T) {
	for _, tc := range []struct {
		name, family            string
		pbx, peer, atk, netw    string
		hostRule, netRule, rule string
	}{
		{"IPv6", "udp6", "2001:db8:bad::100", "2001:db8:bad::1", "2001:db8:bad::2", "2001:db8:bad::/64", "sipguard ban6 udp", "sipguard net6 udp", "sipguard allow6"},
		{"IPv4", "udp4", "198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.0/30", "sipguard ban4 udp", "sipguard net4 udp", "sipguard allow4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pbx, remote := newNS(t), newNS(t)
			bits := "/64"
			if tc.family == "udp4" {
				bits = "/24"
			}
			run(t, "ip", "-n", pbx, "link", "add", "sgfw-pbx", "type", "veth", "peer", "name", "sgfw-remote", "netns", remote)
			run(t, "ip", "-n", pbx, "addr", "add", tc.pbx+bits, "dev", "sgfw-pbx", "nodad")
			run(t, "ip", "-n", remote, "addr", "add", tc.peer+bits, "dev", "sgfw-remote", "nodad")
			run(t, "ip", "-n", remote, "addr", "add", tc.atk+bits, "dev", "sgfw-remote", "nodad")
			run(t, "ip", "-n", pbx, "link", "set", "sgfw-pbx", "up")
			run(t, "ip", "-n", remote, "link", "set", "sgfw-remote", "up")

			var conn *net.UDPConn
			inNS(t, pbx, func() {
				var err error
				conn, err = net.ListenUDP(tc.family, &net.UDPAddr{IP: net.ParseIP(tc.pbx), Port: 5060})
				if err != nil {
					t.Fatal(err)
				}
			})
			defer conn.Close()
			send := func(src string, count int) {
				t.Helper()
				inNS(t, remote, func() {
					c, err := net.DialUDP(tc.family, &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(tc.pbx), Port: 5060})
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					for range count {
						if _, err := c.Write([]byte("OPTIONS sip:pbx SIP/2.0\r\n\r\n")); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
			received := func() map[string]int { return drainUDP(conn, false) }
			counters := func() map[string]uint64 {
				out := map[string]uint64{}
				for _, r := range listChain(t, pbx, "input") {
					out[r.Comment] = r.Packets
				}
				return out
			}

			p, _ := firewall.ParsePort("5060/udp")
			n := newNFT(t, pbx, firewall.NFTOptions{Ports: []firewall.Port{p}, Allow: prefixes(tc.peer, "127.0.0.0/8", "::1")})
			ctx := context.Background()
			// Neighbour discovery or ARP first, so that every packet below
			// leaves at once.
			send(tc.peer, 1)
			send(tc.atk, 1)
			if got := received(); got[tc.peer] != 1 || got[tc.atk] != 1 {
				t.Fatalf("before any ban: received %v; want 1 from each", got)
			}
			// After each ban, the peer's packets pass, counted by the
			// accept, and the attacker's are dropped.
			round := func(ban string, peerN, atkN uint64) map[string]uint64 {
				t.Helper()
				before := counters()
				banForAnHour(t, n, ban)
				send(tc.peer, int(peerN))
				send(tc.atk, int(atkN))
				got, after := received(), counters()
				if got[tc.peer] != int(peerN) || got[tc.atk] != 0 {
					t.Errorf("after banning %s: received %v; want %d from the peer, none from the attacker", ban, got, peerN)
				}
				delta := func(rule string) uint64 { return after[rule] - before[rule] }
				accepted, dropped := delta(tc.rule), delta(tc.hostRule)+delta(tc.netRule)
				if accepted != peerN || dropped != atkN {
					t.Errorf("counters after banning %s: %d accepted, %d dropped; want %d and %d", ban, accepted, dropped, peerN, atkN)
				}
				t.Logf("ban of %s: peer %d received, %d accepted by %q; attacker %d dropped", ban, got[tc.peer], accepted, tc.rule, dropped)
				return after
			}
			// The attacker's own address, as the engine bans it when its
			// network holds an allowlisted address.
			round(tc.atk, 4, 5)
			// A ban of the whole network (which the daemon refuses, but
			// whatever made it): the kernel still lets the peer through.
			c := round(tc.netw, 3, 2)
			st := n.State(ctx)
			if st.Allowed != c[tc.rule] || st.Packets != c[tc.hostRule]+c[tc.netRule] {
				t.Errorf("State: %d allowed, %d dropped; want %d, %d from the rule counters", st.Allowed, st.Packets, c[tc.rule], c[tc.hostRule]+c[tc.netRule])
			}
			t.Logf("State: %d packets allowed, %d dropped", st.Allowed, st.Packets)
		})
	}
}
