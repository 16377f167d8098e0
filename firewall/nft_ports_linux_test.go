//go:build linux

package firewall_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

// TestNFT_PortRanges: with ports given as ranges (RTP, an open-ended one)
// a banned source is dropped on every port of the ranges and nowhere else;
// the table is the same when set up again, and an old table whose port
// set was not an interval set is repaired.
func TestNFT_PortRanges(t *testing.T) {
	ns := newNS(t)
	peer := newNS(t)
	veth(t, ns, peer, "198.18.0.2")

	// An old table: a udp_ports set of single ports, no intervals.
	nft(t, ns, "add", "table", "inet", "sipguard")
	nft(t, ns, "add", "set", "inet", "sipguard", "udp_ports", "{ type inet_service; elements = { 5060 }; }")

	var ports []firewall.Port
	for _, s := range []string{"5060/udp", "10000-10010/udp", "10005-10020/udp", "60000-65535/udp", "5061-5062/tcp"} {
		p, err := firewall.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	n := newNFT(t, ns, firewall.NFTOptions{Ports: ports})
	out := nft(t, ns, "list", "set", "inet", "sipguard", "udp_ports")
	for _, want := range []string{"flags interval", "5060", "10000-10020", "60000-65535"} {
		if !strings.Contains(out, want) {
			t.Errorf("udp_ports lacks %q:\n%s", want, out)
		}
	}
	if out := nft(t, ns, "list", "set", "inet", "sipguard", "tcp_ports"); !strings.Contains(out, "5061-5062") {
		t.Errorf("tcp_ports:\n%s", out)
	}

	ports2 := []int{5060, 10000, 10020, 10021, 60000, 65535, 40000}
	conns := map[int]*net.UDPConn{}
	inNS(t, ns, func() {
		for _, port := range ports2 {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: port})
			if err != nil {
				t.Fatal(err)
			}
			conns[port] = c
			t.Cleanup(func() { c.Close() })
		}
	})
	received := func(port int) int {
		n, buf := 0, make([]byte, 1500)
		for {
			conns[port].SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, _, err := conns[port].ReadFromUDP(buf); err != nil {
				return n
			}
			n++
		}
	}
	if err := n.Ban(context.Background(), firewall.Ban{Prefix: pfx("198.18.0.2"), Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, port := range ports2 {
		fmt.Fprintf(&script, "echo OPTIONS > /dev/udp/198.18.0.1/%d; ", port)
	}
	run(t, "ip", "netns", "exec", peer, "bash", "-c", script.String())
	for _, port := range ports2 {
		dropped := port != 10021 && port != 40000
		if got := received(port); (got == 0) != dropped {
			t.Errorf("port %d: %d datagrams received from the banned source; want dropped: %v", port, got, dropped)
		}
	}
	n.Close()

	// Set up again with the same ports: nothing to repair.
	before := nft(t, ns, "list", "table", "inet", "sipguard")
	newNFT(t, ns, firewall.NFTOptions{Ports: ports})
	if after := nft(t, ns, "list", "table", "inet", "sipguard"); portsOf(after) != portsOf(before) {
		t.Errorf("the port sets changed when set up again:\n%s\n---\n%s", before, after)
	}
}

// portsOf keeps the lines of the port sets of a listed table.
func portsOf(table string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(table, "\n") {
		switch {
		case strings.Contains(l, "_ports {"):
			in = true
		case in && strings.TrimSpace(l) == "}":
			in = false
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
