package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
)

// TestDaemonRulePortsKernel: the real daemon with a GUI rule of its own
// ports: its ban goes into the GUI profile's set, a SIP rule's ban into
// the default's; list shows the GUI ban's ports; after the table is lost
// (a reboot) a restart restores each ban in its profile.
func TestDaemonRulePortsKernel(t *testing.T) {
	needRoot(t)
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	config := daemonConfig(t, dir, logPath, `
[firewall]
ports = ["5060/udp", "5060-5061/tcp"]

[[rule]]
name = "gui"
events = ["admin_auth_failed"]
ports = ["80/tcp", "443/tcp"]
max_retry = 3
find_time = "1m"
ban_time = "1h"

[[rule]]
name = "sip"
events = ["auth_failed"]
max_retry = 5
find_time = "1m"
ban_time = "1h"
`)
	d := startDaemon(t, ns, config)
	if !waitFor(10*time.Second, func() bool { _, _, err := ctl(t, "status", "-c", config); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "sets", "inet").CombinedOutput()
	guiSet := ""
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "ban4_r") {
			guiSet = f
		}
	}
	if err != nil || guiSet == "" {
		t.Fatalf("no GUI profile's ban4 set: %v\n%s", err, out)
	}
	stamp := "[" + time.Now().Format(time.DateTime) + "]"
	var lines []string
	for range 3 {
		lines = append(lines, stamp+" NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'admin'")
	}
	appendLines(t, logPath, append(lines, failures("198.51.100.8", 5)...)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, guiSet, "198.51.100.7") && setHas(t, ns, "ban4", "198.51.100.8") }) {
		t.Fatalf("bans not in their profiles' sets:\n%s", d.stderr)
	}
	if setHas(t, ns, "ban4", "198.51.100.7") || setHas(t, ns, guiSet, "198.51.100.8") {
		t.Error("a ban is in the other profile's set too")
	}
	js, _, err := ctl(t, "list", "--json", "-c", config)
	var list []control.Ban
	if err != nil || json.Unmarshal([]byte(js), &list) != nil || len(list) != 2 {
		t.Fatalf("list --json: %v %s", err, js)
	}
	for _, b := range list {
		if want := map[string]string{"198.51.100.7": "80/tcp,443/tcp", "198.51.100.8": ""}[b.Target]; b.Ports != want {
			t.Errorf("list: %s ports %q; want %q", b.Target, b.Ports, want)
		}
	}
	if text, _, _ := ctl(t, "list", "-c", config); !strings.Contains(text, "gui [80/tcp,443/tcp]") {
		t.Errorf("list does not show the GUI ban's ports:\n%s", text)
	}
	d.stop()

	// A reboot: the table is gone; the bans file restores both.
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "sipguard").CombinedOutput(); err != nil {
		t.Fatalf("delete table: %v %s", err, out)
	}
	d = startDaemon(t, ns, config)
	// Its table is set up once it answers (setHas fails the test on an
	// nft error, a set not there yet included).
	if !waitFor(10*time.Second, func() bool { _, _, err := ctl(t, "status", "-c", config); return err == nil }) {
		t.Fatalf("daemon did not start again:\n%s", d.stderr)
	}
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, guiSet, "198.51.100.7") && setHas(t, ns, "ban4", "198.51.100.8") }) {
		t.Fatalf("bans not restored in their profiles:\n%s", d.stderr)
	}
	if setHas(t, ns, "ban4", "198.51.100.7") {
		t.Error("the GUI ban was restored in the default profile")
	}
}
