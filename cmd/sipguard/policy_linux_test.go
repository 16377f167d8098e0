package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/testutil"
)

// TestDaemonStrictPolicy is issue 15's strict-mode session with the real
// binary, kernel and traffic: the provider, admitted by its DNS name ([[trunk]]), reaches the SIP
// port, a phone is admitted once it logs in, an address that logs in
// after three failures (a guessed password) is not, a scanner is dropped
// without a single log line, a banned address stays dropped; each case is
// read back on its rule's counter. After a reboot (the table gone) and a
// restart, the learned phone is admitted again.
//
//	remote (.2 trunk, .3 phone, .4 scanner, .5 banned, .6 cracked) ──veth── pbx (.1, sipguard)
func TestDaemonStrictPolicy(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	const trunk, phone, scanner, banned, cracked = "198.18.7.2", "198.18.7.3", "198.18.7.4", "198.18.7.5", "198.18.7.6"
	dir := t.TempDir()
	pbx, sink, send := sipNet(t, dir, trunk, phone, scanner, banned, cracked)

	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	// The provider is admitted by its DNS name, answered by a DNS server
	// in the PBX's namespace.
	dns := dnsIn(t, pbx)
	dns.Set(t, "sip.carrier.test. 60 IN A "+trunk)
	// writeConfig writes the config with the trunk by name and [policy]
	// mode and rate.
	writeConfig := func(mode, rate string) string {
		return daemonConfig(t, dir, logPath, `
[trunks]
servers = ["`+dns.Addr+`"]

[[trunk]]
name = "carrier"
hosts = ["sip.carrier.test"]

[policy]
mode = "`+mode+`"
sip_ports = ["5060/udp", "5061/tcp"]
learn_for = "1h"
rate = "`+rate+`"
`)
	}
	config := writeConfig("strict", "20/minute")
	d := startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	chain := func() string { return nft(t, pbx, "list", "chain", "inet", "sipguard", "input") }
	if !waitFor(10*time.Second, func() bool { return setHas(t, pbx, "allow4", trunk) }) {
		t.Fatalf("the trunk sip.carrier.test (%s) is not in allow4:\n%s", trunk, d.stderr)
	}
	if c := chain(); !strings.Contains(c, `"sipguard policy drop 5060/udp"`) || !strings.Contains(c, `"sipguard learn4 udp"`) {
		t.Fatalf("no policy rules in the chain:\n%s", c)
	}
	// The neighbours' link addresses first: every packet below leaves at
	// once.
	if !waitFor(5*time.Second, func() bool { send(trunk, 1); return received(sink, trunk) > 0 }) {
		t.Fatalf("the trunk does not reach the PBX: %q\n%s", readFile(sink), chain())
	}

	// The phone logs in; the cracked account's address logs in after
	// three failures; the banned address is banned by hand.
	appendLines(t, logPath, strings.TrimSuffix(successLine(phone, "100", time.Now()), "\n"))
	appendLines(t, logPath, append(failures(cracked, 3), strings.TrimSuffix(successLine(cracked, "101", time.Now()), "\n"))...)
	// Then a failure of its own: once handled, the successes were.
	appendLines(t, logPath, failures("198.51.100.250", 1)...)
	if _, errOut, err := ctl(t, "ban", "-c", config, banned); err != nil {
		t.Fatalf("ban: %v %s", err, errOut)
	}
	handled(t, config, 4)
	if !waitFor(5*time.Second, func() bool { return setHas(t, pbx, "learn4", phone) }) {
		t.Fatalf("the phone is not in learn4:\n%s", d.stderr)
	}
	if setHas(t, pbx, "learn4", cracked) {
		t.Error("the address of a guessed password is in learn4")
	}

	before := chain()
	counts := map[string]int{}
	for _, a := range []string{trunk, phone, scanner, banned, cracked} {
		counts[a] = received(sink, a)
		send(a, 10)
	}
	if !waitFor(5*time.Second, func() bool {
		return received(sink, phone) >= counts[phone]+10 && received(sink, trunk) >= counts[trunk]+10
	}) {
		t.Errorf("trunk %d, phone %d of 10 datagrams arrived", received(sink, trunk)-counts[trunk], received(sink, phone)-counts[phone])
	}
	for _, a := range []string{scanner, banned, cracked} {
		if got := received(sink, a) - counts[a]; got != 0 {
			t.Errorf("%d datagrams from %s reached the PBX", got, a)
		}
	}
	after := chain()
	delta := func(rule string) int { return dropped(after, rule) - dropped(before, rule) }
	for rule, want := range map[string]int{
		"sipguard allow4": 10, "sipguard learn4 udp": 10, "sipguard ban4": 10,
		"sipguard policy drop 5060/udp": 20, // the scanner's and the cracked address's
	} {
		if got := delta(rule); got != want {
			t.Errorf("counter %q grew by %d; want %d:\n%s", rule, got, want, after)
		}
	}
	t.Logf("strict: trunk sip.carrier.test 10/10 (allow4 +%d), phone 10/10 (learn4 udp +%d), scanner and cracked 0/10 each (policy drop 5060/udp +%d), banned 0/10 (ban4 +%d)",
		delta("sipguard allow4"), delta("sipguard learn4 udp"), delta("sipguard policy drop 5060/udp"), delta("sipguard ban4"))
	if strings.Contains(d.stderr.String(), scanner) {
		t.Errorf("the scanner is in the daemon's log:\n%s", d.stderr)
	}

	if out, _, _ := ctl(t, "status", "-c", config); !strings.Contains(out, "20 dropped on the SIP ports by [policy]") ||
		!strings.Contains(out, "policy of the SIP ports: strict; 1 learned, 1 login not learned") {
		t.Errorf("status does not show the policy's drops:\n%s", out)
	}
	out, _, err := ctl(t, "learned", "-c", config)
	if err != nil || !strings.Contains(out, phone) || !strings.Contains(out, `"100"`) || strings.Contains(out, cracked) {
		t.Errorf("learned: %v\n%s", err, out)
	}
	for addr, want := range map[string]string{
		scanner: `dropped (rule "sipguard policy drop 5060/udp")`,
		phone:   `accepted (rule "sipguard learn4 udp"): learned until`,
		trunk:   `accepted (rule "sipguard allow4"): allowlisted by ` + trunk + ` (trunk carrier)`,
		banned:  `dropped (rule "sipguard ban4"): banned`,
	} {
		if out, errOut, err := ctl(t, "policy", "-c", config, "explain", addr, "5060/udp"); err != nil || !strings.Contains(out, want) {
			t.Errorf("policy explain %s: %v %s%s; want %q", addr, err, out, errOut, want)
		}
	}
	d.stop()

	// A reboot: the table is gone; the restart loads the learned phone
	// from the state into the kernel again.
	nft(t, pbx, "delete", "table", "inet", "sipguard")
	d = startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not start again:\n%s", d.stderr)
	}
	if !setHas(t, pbx, "learn4", phone) || setHas(t, pbx, "learn4", cracked) {
		t.Fatalf("after the restart, learn4:\n%s", nft(t, pbx, "list", "set", "inet", "sipguard", "learn4"))
	}
	n := received(sink, phone)
	send(phone, 3)
	if !waitFor(5*time.Second, func() bool { return received(sink, phone) >= n+3 }) {
		t.Errorf("after the restart: %d of 3 datagrams of the phone arrived", received(sink, phone)-n)
	}
	if out, _, _ := ctl(t, "learned", "forget", "-c", config, phone); !strings.Contains(out, "forgotten") {
		t.Errorf("learned forget: %s", out)
	}
	if setHas(t, pbx, "learn4", phone) {
		t.Error("forgotten, still in learn4")
	}

	// A reload to responsive: the scanner now gets its rate's count
	// through, the rest is dropped by its meter.
	writeConfig("responsive", "4/hour")
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(5*time.Second, func() bool {
		return strings.Contains(chain(), `"sipguard policy limit4 5060/udp 4/hour"`) && !strings.Contains(chain(), "policy drop")
	}) {
		t.Fatalf("not reloaded to responsive:\n%s\n%s", chain(), d.stderr)
	}
	before = chain()
	n = received(sink, scanner)
	send(scanner, 10)
	if !waitFor(5*time.Second, func() bool { return received(sink, scanner) >= n+4 }) || received(sink, scanner) != n+4 {
		t.Errorf("responsive: %d of the scanner's 10 datagrams arrived; want 4", received(sink, scanner)-n)
	}
	// The meter's rule reads "burst 4 packets" before its counter.
	counter := func(listing string) int {
		for _, l := range strings.Split(listing, "\n") {
			if _, after, ok := strings.Cut(l, "counter packets "); ok && strings.Contains(l, `"sipguard policy limit4 5060/udp 4/hour"`) {
				n, _ := strconv.Atoi(strings.Fields(after)[0])
				return n
			}
		}
		return -1
	}
	if got := counter(chain()) - counter(before); got != 6 {
		t.Errorf("the meter dropped %d; want 6", got)
	}
}

// sipNet makes the namespaces of a policy test: pbx (198.18.7.1, a UDP
// sink on 5060 counting what arrives by source in the file sink under
// dir) and a remote one holding addrs (198.18.7.0/24). send sends n
// datagrams from src to the sink.
//
//	remote (addrs) ──veth── pbx (.1, sipguard)
func sipNet(t *testing.T, dir string, addrs ...string) (pbx, sink string, send func(src string, n int)) {
	t.Helper()
	pbx, remote := netns(t), netns(t)
	ipIn(t, pbx, "link", "add", "to-remote", "type", "veth", "peer", "name", "eth0", "netns", remote)
	ipIn(t, pbx, "addr", "add", "198.18.7.1/24", "dev", "to-remote")
	for _, a := range addrs {
		ipIn(t, remote, "addr", "add", a+"/24", "dev", "eth0")
	}
	ipIn(t, pbx, "link", "set", "to-remote", "up")
	ipIn(t, remote, "link", "set", "eth0", "up")

	sink = filepath.Join(dir, "received")
	sinkCmd := exec.Command("ip", "netns", "exec", pbx, os.Args[0])
	sinkCmd.Env = append(os.Environ(), "SIPGUARD_UDP_SINK=198.18.7.1:5060,"+sink)
	if err := sinkCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sinkCmd.Process.Kill(); sinkCmd.Wait() })
	send = func(src string, n int) {
		t.Helper()
		ipIn(t, remote, "route", "replace", "198.18.7.1/32", "dev", "eth0", "src", src)
		script := fmt.Sprintf("for i in $(seq %d); do echo OPTIONS > /dev/udp/198.18.7.1/5060; done", n)
		if out, err := exec.Command("ip", "netns", "exec", remote, "bash", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("send from %s: %v %s", src, err, out)
		}
	}
	return pbx, sink, send
}
