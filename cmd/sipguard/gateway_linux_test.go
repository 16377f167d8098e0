package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/testutil"
)

// udpSink is a helper process: run as the test binary with
// SIPGUARD_UDP_SINK=ADDR:PORT,FILE inside a namespace, it appends the source
// address of every datagram it receives to FILE.
func udpSink(spec string) {
	addr, file, _ := strings.Cut(spec, ",")
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udp sink:", err)
		os.Exit(1)
	}
	out, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(1)
	}
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			os.Exit(0)
		}
		fmt.Fprintln(out, from.(*net.UDPAddr).IP.String())
	}
}

func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v %s", ns, args, err, out)
	}
}

// link joins namespaces a and b with a veth pair, addresses given.
func link(t *testing.T, a, aAddr, b, bAddr string) {
	t.Helper()
	pair := a[len(a)-4:] + b[len(b)-4:]
	ifa, ifb := "a"+pair, "b"+pair
	ipIn(t, a, "link", "add", ifa, "type", "veth", "peer", "name", ifb, "netns", b)
	ipIn(t, a, "addr", "add", aAddr, "dev", ifa)
	ipIn(t, b, "addr", "add", bAddr, "dev", ifb)
	ipIn(t, a, "link", "set", ifa, "up")
	ipIn(t, b, "link", "set", ifb, "up")
}

// sendUDP sends n datagrams from namespace ns with bash's /dev/udp.
func sendUDP(t *testing.T, ns, to string, n int) {
	t.Helper()
	host, port, _ := strings.Cut(to, ":")
	script := fmt.Sprintf("for i in $(seq %d); do echo probe > /dev/udp/%s/%s; done", n, host, port)
	exec.Command("ip", "netns", "exec", ns, "bash", "-c", script).Run()
}

// startSink runs a udpSink on addr in namespace ns, writing to file
// (returned), until the test ends.
func startSink(t *testing.T, ns, addr, file string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), "SIPGUARD_UDP_SINK="+addr+","+file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return file
}

func received(file, from string) int {
	data, _ := os.ReadFile(file)
	return strings.Count(string(data), from+"\n")
}

// TestGatewayMode: sipguard on the router between attacker and PBX bans in
// the forward hook; the attacker's packets die in the router while an
// allowlisted sender still gets through.
func TestGatewayMode(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	atk, frd, rtr, pbx := netns(t), netns(t), netns(t), netns(t)
	link(t, atk, "10.71.1.2/24", rtr, "10.71.1.1/24")
	link(t, frd, "10.71.2.2/24", rtr, "10.71.2.1/24")
	link(t, rtr, "10.71.3.1/24", pbx, "10.71.3.2/24")
	ipIn(t, atk, "route", "add", "default", "via", "10.71.1.1")
	ipIn(t, frd, "route", "add", "default", "via", "10.71.2.1")
	ipIn(t, pbx, "route", "add", "default", "via", "10.71.3.1")
	if out, err := exec.Command("ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("ip_forward: %v %s", err, out)
	}

	dir := t.TempDir()
	sink := startSink(t, pbx, "10.71.3.2:5060", filepath.Join(dir, "received"))

	// The PBX's log reaches the router (here: a file the test writes, as
	// the syslog receiver would).
	logPath := filepath.Join(dir, "pbx.log")
	os.WriteFile(logPath, nil, 0o644)
	config := filepath.Join(dir, "rules.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
hooks = ["forward"]
[allow]
addresses = ["127.0.0.0/8", "10.71.2.2"]
[[source]]
name = "pbx"
path = %q
parser = "asterisk"
`, filepath.Join(dir, "state"), filepath.Join(dir, "sock"), logPath)), 0o644)
	d := startDaemon(t, rtr, config)
	if !waitFor(10*time.Second, func() bool { _, _, err := ctl(t, "status", "-c", config); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}

	// Both reach the PBX before any ban.
	if !waitFor(5*time.Second, func() bool {
		sendUDP(t, atk, "10.71.3.2:5060", 1)
		sendUDP(t, frd, "10.71.3.2:5060", 1)
		return received(sink, "10.71.1.2") > 0 && received(sink, "10.71.2.2") > 0
	}) {
		t.Fatalf("no traffic through the router: %q", readFile(sink))
	}

	// Both fail to authenticate five times: only the attacker is banned.
	appendLines(t, logPath, append(failures("10.71.1.2", 5), failures("10.71.2.2", 5)...)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, rtr, "ban4", "10.71.1.2") }) {
		t.Fatalf("attacker not banned:\n%s", d.stderr)
	}
	handled(t, config, 10) // the sender's failures too, after the attacker's
	if setHas(t, rtr, "ban4", "10.71.2.2") {
		t.Fatal("allowlisted sender banned")
	}
	atkBefore, frdBefore := received(sink, "10.71.1.2"), received(sink, "10.71.2.2")
	sendUDP(t, atk, "10.71.3.2:5060", 10)
	sendUDP(t, frd, "10.71.3.2:5060", 10)
	if !waitFor(5*time.Second, func() bool { return received(sink, "10.71.2.2") >= frdBefore+10 }) {
		t.Errorf("allowlisted sender blocked: %d of 10 datagrams arrived", received(sink, "10.71.2.2")-frdBefore)
	}
	if got := received(sink, "10.71.1.2") - atkBefore; got != 0 {
		t.Errorf("%d datagrams from the banned attacker reached the PBX", got)
	}
	out := nft(t, rtr, "list", "chain", "inet", "sipguard", "forward")
	if n := dropped(out, "sipguard ban4"); n < 10 {
		t.Errorf("forward chain dropped %d packets; want at least 10:\n%s", n, out)
	}
	// The router's own input is not filtered in forward-only mode.
	if out, err := exec.Command("ip", "netns", "exec", rtr, "nft", "list", "chain", "inet", "sipguard", "input").CombinedOutput(); err == nil {
		t.Errorf("an input chain exists with hooks = [\"forward\"]:\n%s", out)
	}
}

// dropped reads the packet counter of the rule carrying comment.
func dropped(listing, comment string) int {
	for _, l := range strings.Split(listing, "\n") {
		if !strings.Contains(l, `"`+comment+`"`) {
			continue
		}
		f := strings.Fields(l)
		for i := range f[:len(f)-1] {
			if f[i] == "packets" {
				n, _ := strconv.Atoi(f[i+1])
				return n
			}
		}
	}
	return -1
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
