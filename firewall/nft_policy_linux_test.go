//go:build linux

package firewall_test

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

// policyLab is a PBX namespace (198.18.0.1 on sgfw-pbx, a UDP listener on
// 5060 that answers every request, a TCP listener on 5061) and a remote
// one holding the peers' addresses.
type policyLab struct {
	t         *testing.T
	pbx, peer string
	udp       *net.UDPConn
	tcp       net.Listener
}

const labPBX = "198.18.0.1"

const rulePrefix = "sipguard "

func newPolicyLab(t *testing.T, peers ...string) *policyLab {
	l := &policyLab{t: t, pbx: newNS(t), peer: newNS(t)}
	veth(t, l.pbx, l.peer, peers...)
	inNS(t, l.pbx, func() {
		var err error
		if l.udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(labPBX), Port: 5060}); err != nil {
			t.Fatal(err)
		}
		if l.tcp, err = net.Listen("tcp4", labPBX+":5061"); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { l.udp.Close(); l.tcp.Close() })
	go func() {
		for {
			c, err := l.tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l
}

// send sends count OPTIONS from src (port sport, 0 any) to the PBX's
// 5060/udp, from one socket (as a scanner does).
func (l *policyLab) send(src string, sport, count int) {
	l.t.Helper()
	inNS(l.t, l.peer, func() {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src), Port: sport}, &net.UDPAddr{IP: net.ParseIP(labPBX), Port: 5060})
		if err != nil {
			l.t.Fatal(err)
		}
		defer c.Close()
		for range count {
			if _, err := c.Write([]byte("OPTIONS sip:pbx SIP/2.0\r\n\r\n")); err != nil {
				l.t.Fatal(err)
			}
		}
	})
}

// received reads what reached the PBX's 5060/udp, by source address;
// with answer, it answers each packet (a reply makes the flow established
// in conntrack).
func (l *policyLab) received(answer bool) map[string]int { return drainUDP(l.udp, answer) }

// drainUDP reads conn until it is quiet for 300 ms, and returns the
// datagrams read by source address; with answer, it answers each.
func drainUDP(conn *net.UDPConn, answer bool) map[string]int {
	got := map[string]int{}
	buf := make([]byte, 1500)
	for {
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return got
		}
		got[from.IP.String()]++
		if answer {
			conn.WriteToUDP([]byte("SIP/2.0 200 OK\r\n\r\n"), from)
		}
	}
}

// dialTCP reports whether src connects to the PBX's 5061/tcp.
func (l *policyLab) dialTCP(src string) bool {
	ok := false
	inNS(l.t, l.peer, func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 500 * time.Millisecond}
		c, err := d.Dial("tcp4", labPBX+":5061")
		if err == nil {
			ok = true
			c.Close()
		}
	})
	return ok
}

// counters reads the packets of each rule of the PBX's chain input (or
// the chain named).
func (l *policyLab) counters(chain ...string) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range listChain(l.t, l.pbx, append(chain, "input")[0]) {
		out[r.Comment] += r.Packets
	}
	return out
}

// TestNFT_PolicyStrict: in strict mode an allowlisted peer, a learned
// phone and replies to the PBX's own requests reach 5060/udp; a stranger
// is dropped and counted on the port's drop, a banned address on its ban
// (a learned phone banned stays banned); 5061/tcp is guarded the same;
// switching back to open admits everyone again and removes the policy's
// sets and rules.
func TestNFT_PolicyStrict(t *testing.T) {
	const trunk, phone, stranger, banned = "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"
	l := newPolicyLab(t, trunk, phone, stranger, banned)
	ctx := context.Background()
	strict := firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(t, "5060/udp", "5061/tcp")}
	n := newNFT(t, l.pbx, firewall.NFTOptions{Allow: prefixes(trunk, "127.0.0.0/8"), Policy: strict})
	if err := n.Learn(ctx, firewall.Learned{Addr: netip.MustParseAddr(phone), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	banForAnHour(t, n, banned)
	t.Logf("chain input:\n%s", nft(t, l.pbx, "list", "chain", "inet", "sipguard", "input"))

	for _, src := range []string{trunk, phone, stranger, banned} {
		l.send(src, 0, 3)
	}
	got, c := l.received(false), l.counters()
	if got[trunk] != 3 || got[phone] != 3 || got[stranger] != 0 || got[banned] != 0 {
		t.Errorf("received %v; want 3 from the trunk and the phone, none from the stranger and the banned", got)
	}
	for rule, want := range map[string]uint64{
		"sipguard allow4": 3, "sipguard learn4 udp": 3, "sipguard policy drop 5060/udp": 3, "sipguard ban4": 3,
	} {
		if c[rule] != want {
			t.Errorf("counter %q = %d; want %d (all: %v)", rule, c[rule], want, c)
		}
	}
	cs, err := n.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range cs {
		if c[rulePrefix+k.Rule] != k.Packets {
			t.Errorf("Counters: %s %d packets; nft lists %d", k.Rule, k.Packets, c[rulePrefix+k.Rule])
		}
	}
	if len(cs) != len(c) {
		t.Errorf("Counters: %d rules; nft lists %d", len(cs), len(c))
	}
	st := n.State(ctx)
	if st.PolicyDropped != 3 || st.Packets != 3 || st.Allowed != 3 {
		t.Errorf("State: %d policy-dropped, %d dropped, %d allowed; want 3 each", st.PolicyDropped, st.Packets, st.Allowed)
	}

	// The PBX's own request to the stranger: the answer comes back.
	reply := make(chan string, 1)
	inNS(t, l.peer, func() {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(stranger), Port: 5070})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1500)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, from, err := c.ReadFromUDP(buf); err == nil {
				c.WriteToUDP([]byte("SIP/2.0 200 OK\r\n\r\n"), from)
				reply <- "answered"
			} else {
				reply <- err.Error()
			}
		}()
	})
	before := l.counters()["sipguard policy established udp"]
	if _, err := l.udp.WriteToUDP([]byte("OPTIONS sip:phone SIP/2.0\r\n\r\n"), &net.UDPAddr{IP: net.ParseIP(stranger), Port: 5070}); err != nil {
		t.Fatal(err)
	}
	if r := <-reply; r != "answered" {
		t.Fatalf("the stranger did not get the PBX's request: %s", r)
	}
	if got := l.received(false); got[stranger] != 1 {
		t.Errorf("the stranger's answer to the PBX's request: received %v; want 1 (established)", got)
	}
	if d := l.counters()["sipguard policy established udp"] - before; d != 1 {
		t.Errorf("established counter grew by %d; want 1", d)
	}

	// 5061/tcp: the phone connects, the stranger does not.
	if !l.dialTCP(phone) || l.dialTCP(stranger) {
		t.Errorf("5061/tcp: phone connects %v, stranger connects %v; want true, false", l.dialTCP(phone), l.dialTCP(stranger))
	}
	if c := l.counters(); c["sipguard policy drop 5061/tcp"] == 0 || c["sipguard learn4 tcp"] == 0 {
		t.Errorf("5061/tcp counters: %v", c)
	}

	// A learned phone that gets banned stays banned.
	banForAnHour(t, n, phone)
	l.send(phone, 0, 2)
	if got := l.received(false); got[phone] != 0 {
		t.Errorf("banned learned phone: received %v; want none", got)
	}
	if err := n.Unban(ctx, pfx(phone)); err != nil {
		t.Fatal(err)
	}
	// Forgotten, the phone is a stranger.
	if err := n.Forget(ctx, netip.MustParseAddr(phone)); err != nil {
		t.Fatal(err)
	}
	if els := listSet(t, l.pbx, "learn4"); len(els) != 0 {
		t.Errorf("learn4 after Forget: %v", els)
	}
	l.send(phone, 0, 2)
	if got := l.received(false); got[phone] != 0 {
		t.Errorf("forgotten phone: received %v; want none", got)
	}

	// Open again: everyone but the banned reaches the port; no policy
	// set or rule is left.
	if err := n.SetPolicy(ctx, firewall.Policy{Mode: firewall.PolicyOpen}); err != nil {
		t.Fatal(err)
	}
	l.send(stranger, 0, 2)
	l.send(banned, 0, 2)
	if got := l.received(false); got[stranger] != 2 || got[banned] != 0 {
		t.Errorf("open: received %v; want 2 from the stranger, none from the banned", got)
	}
	table := nft(t, l.pbx, "list", "table", "inet", "sipguard")
	for _, s := range []string{"sip_udp", "learn4", "sipguard policy", "meter4"} {
		if strings.Contains(table, s) {
			t.Errorf("open: %q left in the table:\n%s", s, table)
		}
	}
}

// TestNFT_PolicyResponsive: in responsive mode each unknown source may
// send the rate's count of packets (the burst of its meter), then is dropped
// and counted, even though the PBX answered it (its flow established);
// another unknown source has its own meter; a learned phone and an
// allowlisted peer are not metered; a changed rate takes effect at once.
func TestNFT_PolicyResponsive(t *testing.T) {
	const trunk, phone, scanner, other = "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"
	l := newPolicyLab(t, trunk, phone, scanner, other)
	ctx := context.Background()
	pol := firewall.Policy{Mode: firewall.PolicyResponsive, SIPPorts: parsePorts(t, "5060/udp"), Rate: firewall.Rate{Count: 10, Per: time.Hour}}
	n := newNFT(t, l.pbx, firewall.NFTOptions{Allow: prefixes(trunk), Policy: pol})
	if err := n.Learn(ctx, firewall.Learned{Addr: netip.MustParseAddr(phone), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	t.Logf("chain input:\n%s", nft(t, l.pbx, "list", "chain", "inet", "sipguard", "input"))

	// One socket, one source port: answered, the flow is established.
	for range 4 {
		l.send(scanner, 5999, 10)
	}
	got := l.received(true)
	c := l.counters()
	limited := c["sipguard policy limit4 5060/udp 10/hour"]
	if got[scanner] != 10 || limited != 30 {
		t.Errorf("scanner: %d received, %d dropped by the meter; want 10 (the rate's count) and 30", got[scanner], limited)
	}
	scanned := got[scanner]
	if c["sipguard policy established udp"] != 0 {
		t.Errorf("the scanner's packets were accepted as established: %v", c)
	}
	l.send(other, 0, 2)
	l.send(trunk, 0, 30)
	l.send(phone, 0, 30)
	got = l.received(false)
	if got[other] != 2 || got[trunk] != 30 || got[phone] != 30 {
		t.Errorf("received %v; want 2 from the other source (its own meter), 30 from the trunk and the phone", got)
	}
	if st := n.State(ctx); st.PolicyDropped != limited {
		t.Errorf("State.PolicyDropped = %d; want %d", st.PolicyDropped, limited)
	}
	if els := listSet(t, l.pbx, "meter4"); len(els) != 2 {
		t.Errorf("meter4 holds %v; want the scanner and the other source", els)
	}
	t.Logf("scanner: %d of 40 received, %d dropped by the meter", scanned, limited)

	// A generous rate: the scanner starts afresh and is no longer limited.
	pol.Rate = firewall.Rate{Count: 100, Per: time.Minute}
	if err := n.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	l.send(scanner, 0, 20)
	if got := l.received(false); got[scanner] != 20 {
		t.Errorf("after raising the rate: received %v; want 20 from the scanner", got)
	}
}

// TestNFT_PolicyEarly: with Early the chain hooks prerouting at priority
// raw instead of input (a table of a run without it is converted at
// start), holds no established accept (no conntrack there), and drops
// the stranger and the banned while the trunk and the learned phone pass.
func TestNFT_PolicyEarly(t *testing.T) {
	const trunk, phone, stranger, banned = "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"
	l := newPolicyLab(t, trunk, phone, stranger, banned)
	ctx := context.Background()
	pol := firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(t, "5060/udp")}
	n := newNFT(t, l.pbx, firewall.NFTOptions{Allow: prefixes(trunk), Policy: pol})
	n.Close()
	pol.Early = true
	n = newNFT(t, l.pbx, firewall.NFTOptions{Allow: prefixes(trunk), Policy: pol})
	table := nft(t, l.pbx, "list", "table", "inet", "sipguard")
	if strings.Contains(table, "chain input") || !strings.Contains(table, "type filter hook prerouting priority raw; policy accept;") ||
		strings.Contains(table, "ct state") {
		t.Fatalf("early: want one prerouting chain at priority raw, without ct state:\n%s", table)
	}
	if err := n.Learn(ctx, firewall.Learned{Addr: netip.MustParseAddr(phone), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	banForAnHour(t, n, banned)
	for _, src := range []string{trunk, phone, stranger, banned} {
		l.send(src, 0, 3)
	}
	got, c := l.received(false), l.counters("prerouting")
	if got[trunk] != 3 || got[phone] != 3 || got[stranger] != 0 || got[banned] != 0 {
		t.Errorf("received %v; want 3 from the trunk and the phone, none from the stranger and the banned", got)
	}
	if c["sipguard learn4 udp"] != 3 || c["sipguard policy drop 5060/udp"] != 3 || c["sipguard ban4"] != 3 {
		t.Errorf("counters: %v", c)
	}
	if err := n.SetPolicy(ctx, firewall.Policy{Mode: firewall.PolicyOpen}); err == nil {
		t.Error("SetPolicy without Early on an early table: no error")
	}
}

// TestNFT_PolicyReconcile: the policy's rules and sets, changed from
// outside, are restored like the rest of the table; a learn set deleted
// comes back with the learned addresses.
func TestNFT_PolicyReconcile(t *testing.T) {
	ns := newNS(t)
	pol := firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(t, "5060/udp")}
	n := newNFT(t, ns, firewall.NFTOptions{Policy: pol})
	if err := n.Learn(context.Background(), firewall.Learned{Addr: netip.MustParseAddr("198.51.100.20"), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	reconcile(t, n)
	rules := func() int {
		return strings.Count(nft(t, ns, "list", "chain", "inet", "sipguard", "input"), `comment "sipguard `)
	}
	want := rules()
	// A flushed chain, then the learn set deleted.
	nft(t, ns, "flush", "chain", "inet", "sipguard", "input")
	waitFor(t, "the flushed chain", func() bool { return rules() == want })
	nft(t, ns, "flush chain inet sipguard input; delete set inet sipguard learn4")
	waitFor(t, "learn4 and its phone", func() bool {
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "set", "inet", "sipguard", "learn4").CombinedOutput()
		return err == nil && strings.Contains(string(out), "198.51.100.20") && rules() == want
	})
	if st := n.State(context.Background()); st.Restored < 2 {
		t.Errorf("State.Restored = %d; want at least 2", st.Restored)
	}
}

// ipv6Lab links a PBX namespace (pbx6 on sgfw-pbx, a UDP listener on
// 5060) to a remote one holding peers, all in one /64. send sends count
// OPTIONS from src to the PBX's 5060/udp.
func ipv6Lab(t *testing.T, pbx6 string, peers ...string) (pbx string, conn *net.UDPConn, send func(src string, count int)) {
	t.Helper()
	pbx, remote := newNS(t), newNS(t)
	run(t, "ip", "-n", pbx, "link", "add", "sgfw-pbx", "type", "veth", "peer", "name", "sgfw-remote", "netns", remote)
	run(t, "ip", "-n", pbx, "addr", "add", pbx6+"/64", "dev", "sgfw-pbx", "nodad")
	for _, a := range peers {
		run(t, "ip", "-n", remote, "addr", "add", a+"/64", "dev", "sgfw-remote", "nodad")
	}
	run(t, "ip", "-n", pbx, "link", "set", "sgfw-pbx", "up")
	run(t, "ip", "-n", remote, "link", "set", "sgfw-remote", "up")
	inNS(t, pbx, func() {
		var err error
		if conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP(pbx6), Port: 5060}); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { conn.Close() })
	send = func(src string, count int) {
		t.Helper()
		inNS(t, remote, func() {
			c, err := net.DialUDP("udp6", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(pbx6), Port: 5060})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for range count {
				c.Write([]byte("OPTIONS sip:pbx SIP/2.0\r\n\r\n"))
			}
		})
	}
	return pbx, conn, send
}

// TestNFT_PolicyIPv6: the IPv6 side of the policy, over a veth pair: in
// strict mode a learned phone passes (learn6), a stranger is dropped; in
// responsive mode a scanner gets its rate's count through (meter6).
func TestNFT_PolicyIPv6(t *testing.T) {
	const pbx6, phone6, stranger6 = "2001:db8:5::1", "2001:db8:5::3", "2001:db8:5::4"
	pbx, conn, send := ipv6Lab(t, pbx6, phone6, stranger6)
	received := func() map[string]int { return drainUDP(conn, false) }
	// Neighbour discovery first, with the table open.
	n := newNFT(t, pbx, firewall.NFTOptions{})
	send(phone6, 1)
	send(stranger6, 1)
	if got := received(); got[phone6] != 1 || got[stranger6] != 1 {
		t.Fatalf("before the policy: received %v", got)
	}
	ctx := context.Background()
	pol := firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(t, "5060/udp")}
	if err := n.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	if err := n.Learn(ctx, firewall.Learned{Addr: netip.MustParseAddr(phone6), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	send(phone6, 4)
	send(stranger6, 4)
	if got := received(); got[phone6] != 4 || got[stranger6] != 0 {
		t.Errorf("strict: received %v; want 4 from the phone, none from the stranger", got)
	}
	c := map[string]uint64{}
	for _, r := range listChain(t, pbx, "input") {
		c[r.Comment] = r.Packets
	}
	if c["sipguard learn6 udp"] != 4 || c["sipguard policy drop 5060/udp"] != 4 {
		t.Errorf("strict counters: %v", c)
	}
	pol.Mode, pol.Rate = firewall.PolicyResponsive, firewall.Rate{Count: 3, Per: time.Hour}
	if err := n.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	send(stranger6, 10)
	if got := received(); got[stranger6] != 3 {
		t.Errorf("responsive: received %v; want 3 from the scanner", got)
	}
	clear(c)
	for _, r := range listChain(t, pbx, "input") {
		c[r.Comment] = r.Packets
	}
	if got, ok := c["sipguard policy limit6 5060/udp 3/hour per /64"]; !ok || got != 7 {
		t.Errorf("meter6 dropped %d (rule there: %v); want 7", got, ok)
	}
}

// TestNFT_PolicyIPv6Prefix: in responsive mode one IPv6 meter covers the
// source's prefix (Policy.IPv6Prefix, 64 by default), as bans do: a
// scanner rotating through the addresses of its /64, which holds any
// number, neither gets a fresh burst with each nor fills meter6 (its
// 262,144 elements in a fraction of a second, every IPv6 source unmetered
// after).
func TestNFT_PolicyIPv6Prefix(t *testing.T) {
	const pbx6 = "2001:db8:5::1"
	scanner := []string{"2001:db8:5::a", "2001:db8:5::b", "2001:db8:5::c", "2001:db8:5::d"}
	pbx, conn, send := ipv6Lab(t, pbx6, scanner...)
	n := newNFT(t, pbx, firewall.NFTOptions{})
	// Neighbour discovery first, with the table open.
	for _, a := range scanner {
		send(a, 1)
	}
	if got := drainUDP(conn, false); len(got) != len(scanner) {
		t.Fatalf("before the policy: received %v", got)
	}
	pol := firewall.Policy{Mode: firewall.PolicyResponsive, SIPPorts: parsePorts(t, "5060/udp"), Rate: firewall.Rate{Count: 3, Per: time.Hour}}
	if err := n.SetPolicy(context.Background(), pol); err != nil {
		t.Fatal(err)
	}
	for _, a := range scanner {
		send(a, 3)
	}
	got, total := drainUDP(conn, false), 0
	for _, n := range got {
		total += n
	}
	if total != 3 {
		t.Errorf("received %v: %d in all; want the rate's count, 3, for the whole /64", got, total)
	}
	if els := listSet(t, pbx, "meter6"); len(els) != 1 {
		t.Errorf("meter6 holds %v; want one element, the /64", els)
	}
}
