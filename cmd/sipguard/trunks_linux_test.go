package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/internal/dnstest"
	"github.com/sipguard/sipguard/internal/testutil"
)

// dnsIn starts a DNS server on 127.0.0.1 of namespace ns: its sockets are
// opened there, served from here.
func dnsIn(t *testing.T, ns string) *dnstest.Server {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	testutil.InNetNS(t, ns, func() { pc, l = dnstest.Listen(t) })
	return dnstest.Serve(t, pc, l)
}

// TestDaemonTrunkByName: the real binary and kernel, a trunk admitted by
// its DNS name. Its address is in the kernel's allow4 set and its packets
// are accepted there; its failures are never counted, while an attacker
// in the same /24 is banned; a second address answered later joins the
// set; when DNS fails the address stays (the error shown by `sipguard
// trunks`, status still healthy while the last answer is kept). A host
// name in [allow] is resolved the same way.
//
//	remote (198.18.7.2 trunk, .3 attacker, .4 the trunk's second address) ──veth── pbx (198.18.7.1, sipguard, DNS on its 127.0.0.1)
func TestDaemonTrunkByName(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	pbx, remote := netns(t), netns(t)
	link(t, pbx, "198.18.7.1/24", remote, "198.18.7.2/24")
	ipIn(t, remote, "addr", "add", "198.18.7.3/24", "dev", "b"+pbx[len(pbx)-4:]+remote[len(remote)-4:])

	s := dnsIn(t, pbx)
	s.Set(t, "sip.carrier.test. 1 IN A 198.18.7.2", "office.example.test. 300 IN A 198.18.7.50")

	dir := t.TempDir()
	sink := startSink(t, pbx, "198.18.7.1:5060", filepath.Join(dir, "received"))
	dev := "b" + pbx[len(pbx)-4:] + remote[len(remote)-4:]
	send := func(src string, n int) {
		t.Helper()
		ipIn(t, remote, "route", "replace", "198.18.7.1/32", "dev", dev, "src", src)
		sendUDP(t, remote, "198.18.7.1:5060", n)
	}

	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	config := daemonConfig(t, dir, logPath, fmt.Sprintf(`
[allow]
addresses = ["127.0.0.0/8", "::1", "office.example.test"]

[trunks]
servers = [%q]
min_ttl = "1s"

[[trunk]]
name = "carrier"
hosts = ["sip.carrier.test"]
networks = ["203.0.113.0/24"]
`, s.Addr))
	d := startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	if !waitFor(10*time.Second, func() bool { return setHas(t, pbx, "allow4", "198.18.7.2") }) {
		t.Fatalf("the trunk's address is not in allow4: %s\n%s", nft(t, pbx, "list", "set", "inet", "sipguard", "allow4"), d.stderr)
	}
	if !waitFor(10*time.Second, func() bool { return setHas(t, pbx, "allow4", "198.18.7.50") }) {
		t.Errorf("[allow]'s host name is not in allow4: %s", nft(t, pbx, "list", "set", "inet", "sipguard", "allow4"))
	}
	if set := nft(t, pbx, "list", "set", "inet", "sipguard", "allow4"); !strings.Contains(set, "203.0.113.0/24") {
		t.Errorf("the trunk's network is not in allow4: %s", set)
	}

	bothReach(t, send, sink, "198.18.7.2", "198.18.7.3")

	// Both fail: the attacker is banned, the trunk never.
	appendLines(t, logPath, append(failures("198.18.7.3", 5), failures("198.18.7.2", 20)...)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, pbx, "ban4", "198.18.7.3") }) {
		t.Fatalf("attacker not banned:\n%s", d.stderr)
	}
	handled(t, config, 25)
	if setHas(t, pbx, "ban4", "198.18.7.2") {
		t.Fatal("the trunk is banned")
	}
	if _, errOut, err := ctl(t, "ban", "-c", config, "198.18.7.0/24"); err == nil || !strings.Contains(errOut, "allowlisted") {
		t.Errorf("a ban of the trunk's /24: %v %s", err, errOut)
	}
	if accepted, drops := trustedPasses(t, pbx, send, sink, "198.18.7.2", "198.18.7.3", "4"); accepted < 10 || drops < 10 {
		t.Errorf("allow4 accepted %d packets, ban4 dropped %d; want at least 10 each", accepted, drops)
	}

	// The provider adds an address: admitted within the TTL.
	s.Set(t, "sip.carrier.test. 1 IN A 198.18.7.2", "sip.carrier.test. 1 IN A 198.18.7.4")
	if !waitFor(15*time.Second, func() bool { return setHas(t, pbx, "allow4", "198.18.7.4") }) {
		t.Errorf("the new address is not in allow4:\n%s", d.stderr)
	}

	// DNS fails: the last answer is kept (keep is 1d), the error shown.
	s.Fail(dns.RcodeServerFailure)
	var ts []control.TrunkStatus
	if !waitFor(15*time.Second, func() bool {
		out, _, err := ctl(t, "trunks", "--json", "-c", config)
		ts = nil
		return err == nil && json.Unmarshal([]byte(out), &ts) == nil && len(ts) == 2 && ts[1].Hosts[0].Error != ""
	}) {
		t.Fatalf("trunks shows no error: %+v", ts)
	}
	if h := ts[1].Hosts[0]; ts[1].Name != "carrier" || !strings.Contains(h.Error, "SERVFAIL") || len(h.Addresses) != 2 {
		t.Errorf("trunks: %+v; want carrier's error and both addresses kept", ts[1])
	}
	if !setHas(t, pbx, "allow4", "198.18.7.2") || !setHas(t, pbx, "allow4", "198.18.7.4") {
		t.Error("the trunk's addresses left allow4 when DNS failed")
	}
	out, _, err := ctl(t, "trunks", "-c", config)
	if err != nil || !strings.Contains(out, "carrier") || !strings.Contains(out, "198.18.7.2,198.18.7.4") || !strings.Contains(out, "last answer kept until") {
		t.Errorf("trunks: %v\n%s", err, out)
	}
	if _, _, code := exitCode(t, nil, "status", "-c", config); code != exitOK {
		t.Errorf("status exits %d while the last answer is kept; want 0", code)
	}
	t.Logf("sipguard trunks:\n%s", out)
}

// bothReach waits until datagrams from a trusted address and an attacker
// (sent by send) reach the PBX's sink, before any ban.
func bothReach(t *testing.T, send func(src string, n int), sink, trusted, attacker string) {
	t.Helper()
	if !waitFor(5*time.Second, func() bool {
		send(trusted, 1)
		send(attacker, 1)
		return received(sink, trusted) > 0 && received(sink, attacker) > 0
	}) {
		t.Fatalf("no traffic to the PBX: %q", readFile(sink))
	}
}

// trustedPasses sends 10 datagrams from the trusted address and 10 from
// the banned attacker: all of the first must reach the sink, none of the
// second. It returns the packets the allow set of family (4 or 6)
// accepted and the ban set dropped meanwhile, read from the kernel's
// counters in pbx.
func trustedPasses(t *testing.T, pbx string, send func(src string, n int), sink, trusted, attacker, family string) (accepted, drops int) {
	t.Helper()
	chain := func() string { return nft(t, pbx, "list", "chain", "inet", "sipguard", "input") }
	before := chain()
	trustedBefore, atkBefore := received(sink, trusted), received(sink, attacker)
	send(trusted, 10)
	send(attacker, 10)
	if !waitFor(5*time.Second, func() bool { return received(sink, trusted) >= trustedBefore+10 }) {
		t.Errorf("%s blocked: %d of 10 datagrams arrived", trusted, received(sink, trusted)-trustedBefore)
	}
	if got := received(sink, attacker) - atkBefore; got != 0 {
		t.Errorf("%d datagrams from the banned attacker reached the PBX", got)
	}
	after := chain()
	accepted = dropped(after, "sipguard allow"+family) - dropped(before, "sipguard allow"+family)
	drops = dropped(after, "sipguard ban"+family) - dropped(before, "sipguard ban"+family)
	t.Logf("%s: %d datagrams received, allow%s accepted %d packets; attacker: 0 received, ban%s dropped %d packets",
		trusted, received(sink, trusted)-trustedBefore, family, accepted, family, drops)
	return accepted, drops
}

// TestDaemonTrunkPartialDNS: the real binary and kernel in strict mode, a
// trunk admitted by its SIP SRV records, one of whose two targets fails
// for good (SERVFAIL: its DNS dead, or owned by an attacker). The healthy
// target's address is admitted all the same: in allow4, its packets reach
// the PBX, while an unknown source's are dropped by the policy.
func TestDaemonTrunkPartialDNS(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	const edge, scanner = "198.18.7.2", "198.18.7.3"
	dir := t.TempDir()
	pbx, sink, send := sipNet(t, dir, edge, scanner)
	s := dnsIn(t, pbx)
	s.Set(t,
		"_sip._udp.carrier.test. 60 IN SRV 10 50 5060 edge1.carrier.test.",
		"_sip._udp.carrier.test. 60 IN SRV 20 50 5060 edge2.carrier.test.",
		"edge1.carrier.test. 60 IN A "+edge,
	)
	s.Hook(func(req *dns.Msg) *dns.Msg {
		if dns.CanonicalName(req.Question[0].Name) != "edge2.carrier.test." {
			return nil
		}
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		return m
	})
	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	config := daemonConfig(t, dir, logPath, fmt.Sprintf(`
[trunks]
servers = [%q]
min_ttl = "1s"

[[trunk]]
name = "carrier"
hosts = ["carrier.test"]
srv = true

[policy]
mode = "strict"
sip_ports = ["5060/udp"]
`, s.Addr))
	d := startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	if !waitFor(10*time.Second, func() bool { return setHas(t, pbx, "allow4", edge) }) {
		t.Fatalf("the healthy target's address is not in allow4: %s\n%s", nft(t, pbx, "list", "set", "inet", "sipguard", "allow4"), d.stderr)
	}
	if !waitFor(5*time.Second, func() bool { send(edge, 1); return received(sink, edge) > 0 }) {
		t.Fatalf("the trunk does not reach the PBX: %q", readFile(sink))
	}
	send(scanner, 5)
	send(edge, 1) // after the scanner's: once it arrives, theirs would have
	before := received(sink, edge)
	if !waitFor(5*time.Second, func() bool { send(edge, 1); return received(sink, edge) > before }) {
		t.Fatal("the trunk stopped reaching the PBX")
	}
	if n := received(sink, scanner); n != 0 {
		t.Errorf("%d datagrams of an unknown source reached the PBX in strict mode", n)
	}
	var ts []control.TrunkStatus
	out, _, err := ctl(t, "trunks", "--json", "-c", config)
	if err != nil || json.Unmarshal([]byte(out), &ts) != nil || len(ts) != 1 || !strings.Contains(ts[0].Hosts[0].Error, "edge2.carrier.test") {
		t.Errorf("trunks: %v %s; want edge2's failure shown", err, out)
	}
}
