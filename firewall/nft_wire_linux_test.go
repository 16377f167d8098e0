//go:build linux

package firewall_test

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/firewall"
)

// TestNFT_WireChains: the wire sensor's chains hold log rules only (no
// verdict: fail open), for the ports and PBX addresses asked, with the
// kernel filter on "SIP/2.0 " and the status digit; set up again they
// stay as they are (same rule handles); a change of ports rewrites them;
// a chain deleted by hand comes back with Reconcile; no Wire removes them
// and leaves the ban chains alone.
func TestNFT_WireChains(t *testing.T) {
	ns := newNS(t)
	w := &firewall.Wire{
		Hooks: []string{"output", "forward"}, Group: 5160,
		PBX:   []netip.Prefix{pfx("192.0.2.10/32"), pfx("2001:db8::10/128")},
		Ports: parsePorts(t, "5060/udp", "5060/tcp", "5160/udp"),
	}
	n := newNFT(t, ns, firewall.NFTOptions{Wire: w})
	out := nft(t, ns, "-a", "list", "chain", "inet", "sipguard", "wire_output")
	for _, want := range []string{
		"type filter hook output priority filter - 10; policy accept;",
		`udp sport { 5060, 5160 } @ih,0,64 0x5349502f322e3020 @ih,64,8 0x32 counter packets 0 bytes 0 log group 5160 snaplen 4096 queue-threshold 1 comment "sipguard wire udp 2xx`,
		`udp sport { 5060, 5160 } @ih,0,64 0x5349502f322e3020 @ih,64,8 0x34 counter packets 0 bytes 0 log group 5160 snaplen 4096 queue-threshold 1 comment "sipguard wire udp 4xx`,
		`tcp sport { 5060 } @ih,0,64 0x5349502f322e3020 counter packets 0 bytes 0 log group 5160 snaplen 4096 queue-threshold 1 comment "sipguard wire tcp`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("wire_output lacks\n%s\nin\n%s", want, out)
		}
	}
	fwd := nft(t, ns, "list", "chain", "inet", "sipguard", "wire_forward")
	if strings.Count(fwd, "ip saddr { 192.0.2.10 } ") != 3 || strings.Count(fwd, "ip6 saddr { 2001:db8::10 } ") != 3 {
		t.Errorf("wire_forward: want 3 rules per PBX address:\n%s", fwd)
	}
	for _, chain := range []string{out, fwd} {
		for _, verdict := range []string{"accept", "drop", "reject", "queue", "jump", "goto"} {
			rest := strings.NewReplacer("policy accept", "", "queue-threshold", "").Replace(chain)
			if strings.Contains(rest, verdict) {
				t.Errorf("a wire rule has a verdict (%s): it must only log\n%s", verdict, chain)
			}
		}
	}
	n.Close()

	// Set up again: nothing changes (the handles stay).
	n = newNFT(t, ns, firewall.NFTOptions{Wire: w})
	if again := nft(t, ns, "-a", "list", "chain", "inet", "sipguard", "wire_output"); again != out {
		t.Errorf("set up again, wire_output changed:\n%s\nwas\n%s", again, out)
	}
	n.Close()

	// Other ports: the rules are rewritten.
	w2 := *w
	w2.Ports = parsePorts(t, "5080/udp")
	n = newNFT(t, ns, firewall.NFTOptions{Wire: &w2})
	out = nft(t, ns, "list", "chain", "inet", "sipguard", "wire_output")
	if strings.Contains(out, "5060") || strings.Count(out, "udp sport { 5080 } ") != 2 || strings.Contains(out, "tcp") {
		t.Errorf("with ports 5080/udp:\n%s", out)
	}

	// Deleted by another program: Reconcile brings it back.
	reconcile(t, n)
	nft(t, ns, "delete", "chain", "inet", "sipguard", "wire_output")
	waitFor(t, "chain wire_output", func() bool {
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "sipguard", "wire_output").CombinedOutput()
		return err == nil && strings.Count(string(out), "log group 5160") == 2
	})
	if st := n.State(context.Background()); st.LastError != "" {
		t.Errorf("State: %s", st.LastError)
	}
	n.Close()

	// No wire: the chains go, the ban chain stays.
	n = newNFT(t, ns, firewall.NFTOptions{})
	table := nft(t, ns, "list", "table", "inet", "sipguard")
	if strings.Contains(table, "wire_") || !strings.Contains(table, "chain input") {
		t.Errorf("without Wire:\n%s", table)
	}
	n.Close()
}

// TestNFT_WireRefused: a Wire NewNFT cannot set up is refused with the
// reason, and no table is made.
func TestNFT_WireRefused(t *testing.T) {
	ns := newNS(t)
	for _, c := range []struct {
		w    firewall.Wire
		want string
	}{
		{firewall.Wire{Ports: parsePorts(t, "5060/udp")}, "no hook"},
		{firewall.Wire{Hooks: []string{"input"}, Ports: parsePorts(t, "5060/udp")}, `hook "input"`},
		{firewall.Wire{Hooks: []string{"forward"}, Ports: parsePorts(t, "5060/udp")}, "needs the PBX addresses"},
		{firewall.Wire{Hooks: []string{"output"}}, "no port"},
		{firewall.Wire{Hooks: []string{"output"}, Ports: parsePorts(t, "5060/udp"), Snaplen: 256}, "under 1024"},
	} {
		_, err := firewall.NewNFT(firewall.NFTOptions{NetNS: "/run/netns/" + ns, Wire: &c.w})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v; want an error with %q", c.w, err, c.want)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(out), "sipguard") {
		t.Errorf("tables: %s %v", out, err)
	}
}
