package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/testutil"
)

// TestDaemonAllowlistedNeighbour is issue 12's case with the real binary,
// kernel and traffic: a trusted trunk (allowlisted) and an attacker share
// one IPv6 /64. The attacker's failures ban its address alone, never the
// /64; afterwards the trunk's packets reach the PBX, counted by the accept
// of the allowlist, and the attacker's are dropped.
//
//	remote (2001:db8:bad::1 trunk, ::2 attacker) ──veth── pbx (::100, sipguard)
func TestDaemonAllowlistedNeighbour(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	pbx, remote := netns(t), netns(t)
	ipIn(t, pbx, "link", "add", "to-remote", "type", "veth", "peer", "name", "eth0", "netns", remote)
	ipIn(t, pbx, "addr", "add", "2001:db8:bad::100/64", "dev", "to-remote", "nodad")
	ipIn(t, remote, "addr", "add", "2001:db8:bad::1/64", "dev", "eth0", "nodad")
	ipIn(t, remote, "addr", "add", "2001:db8:bad::2/64", "dev", "eth0", "nodad")
	ipIn(t, pbx, "link", "set", "to-remote", "up")
	ipIn(t, remote, "link", "set", "eth0", "up")

	dir := t.TempDir()
	sink := startSink(t, pbx, "[2001:db8:bad::100]:5060", filepath.Join(dir, "received"))
	// send sends n datagrams to the PBX from src (a host route pins the
	// source address bash's /dev/udp uses).
	send := func(src string, n int) {
		t.Helper()
		ipIn(t, remote, "-6", "route", "replace", "2001:db8:bad::100/128", "dev", "eth0", "src", src)
		script := fmt.Sprintf("for i in $(seq %d); do echo probe > /dev/udp/2001:db8:bad::100/5060; done", n)
		if out, err := exec.Command("ip", "netns", "exec", remote, "bash", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("send from %s: %v %s", src, err, out)
		}
	}

	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	config := filepath.Join(dir, "rules.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[allow]
addresses = ["127.0.0.0/8", "::1", "2001:db8:bad::1"]
[[source]]
name = "pbx"
path = %q
parser = "asterisk"
`, filepath.Join(dir, "state"), filepath.Join(dir, "sock"), logPath)), 0o644)
	d := startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { _, _, err := ctl(t, "status", "-c", config); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	if !setHas(t, pbx, "allow6", "2001:db8:bad::1") {
		t.Fatalf("the trunk is not in allow6:\n%s", d.stderr)
	}

	// Both reach the PBX before any ban (and learn its link address).
	bothReach(t, send, sink, "2001:db8:bad::1", "2001:db8:bad::2")

	// Both fail five times: the attacker's address is banned, not its /64.
	appendLines(t, logPath, append(failures("[2001:db8:bad::2]", 5), failures("[2001:db8:bad::1]", 5)...)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, pbx, "ban6", "2001:db8:bad::2") }) {
		t.Fatalf("attacker not banned:\n%s", d.stderr)
	}
	handled(t, config, 10) // the trunk's failures too, after the attacker's
	if out := nft(t, pbx, "list", "set", "inet", "sipguard", "net6"); strings.Contains(out, "2001:db8:bad") {
		t.Fatalf("a network ban covers the trunk:\n%s", out)
	}
	out, _, err := ctl(t, "list", "-c", config)
	if err != nil || !strings.Contains(out, "\n2001:db8:bad::2 ") || strings.Contains(out, "\n2001:db8:bad::/64 ") || !strings.Contains(out, "the address alone") {
		t.Errorf("list: %v\n%s", err, out)
	}
	if _, errOut, err := ctl(t, "ban", "-c", config, "2001:db8:bad::/64"); err == nil || !strings.Contains(errOut, "allowlisted") {
		t.Errorf("ban of the trunk's /64: %v %s", err, errOut)
	}

	accepted, drops := trustedPasses(t, pbx, send, sink, "2001:db8:bad::1", "2001:db8:bad::2", "6")
	if accepted < 10 || drops < 10 {
		t.Errorf("counters: %d accepted by allow6, %d dropped by ban6; want at least 10 each", accepted, drops)
	}

	var st struct {
		Engine struct {
			Narrowed int64 `json:"narrowed"`
			Allowed  int64 `json:"allowlisted"`
		} `json:"engine"`
		Firewall struct {
			Allowed uint64 `json:"packets_allowed"`
		} `json:"firewall"`
	}
	out, _, err = ctl(t, "status", "--json", "-c", config)
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: %v %s", err, out)
	}
	if st.Engine.Narrowed != 1 || st.Engine.Allowed != 5 || st.Firewall.Allowed < 10 {
		t.Errorf("status: %+v; want 1 narrowed, 5 allowlisted events, packets allowed", st)
	}
	if !strings.Contains(d.stderr.String(), "ban narrowed to the address") {
		t.Errorf("narrowing not logged:\n%s", d.stderr)
	}
}
