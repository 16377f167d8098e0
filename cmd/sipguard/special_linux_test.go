package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSpecialAddressesNeverBanned runs the daemon against the kernel and
// feeds it what was seen to ban special-purpose addresses: a log naming a
// link-local address with its zone and an IPv4-compatible one (counted by
// ::/64, which holds ::1), a feed of 0.0.0.0/8, fe80::/19, ff02::/19,
// 224.0.0.0/8 and 255.255.255.255, and manual bans of 0.0.0.0, multicast
// and broadcast, and one for 100000d. None reaches the kernel; the
// ordinary attackers beside them do.
func TestSpecialAddressesNeverBanned(t *testing.T) {
	needRoot(t)
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	feed := filepath.Join(dir, "feed.txt")
	os.WriteFile(feed, []byte("0.0.0.0/8\nfe80::/19\nff02::/19\n224.0.0.0/8\n255.255.255.255\n"+
		"203.0.113.0/24\n198.51.100.60\n2001:db8:60::/48\n192.0.2.60\n198.51.100.61\n198.51.100.62\n"), 0o644)
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	config := daemonConfig(t, dir, logPath, fmt.Sprintf(`
[allow]
self = false
addresses = []

[[feed]]
name = "list"
path = %q
`, feed))

	d := startDaemon(t, ns, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not come up:\n%s", d.stderr)
	}
	var lines []string
	for _, a := range []string{"[fe80::1%eth0]", "[::1.2.3.4]", "[::1]", "127.0.0.1", "169.254.169.254", "198.51.100.7"} {
		lines = append(lines, failures(a, 5)...)
	}
	appendLines(t, logPath, lines...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.7") }) {
		t.Fatalf("198.51.100.7 not banned:\n%s", d.stderr)
	}
	for _, args := range [][]string{{"0.0.0.0"}, {"224.0.0.1"}, {"255.255.255.255"}, {"ff02::1"}, {"--force", "::/64"}, {"--for", "100000d", "198.51.100.8"}} {
		_, errOut, err := ctl(t, append([]string{"ban", "-c", config}, args...)...)
		if err == nil || !strings.Contains(errOut, "never banned") && !strings.Contains(errOut, "longer than the longest ban, 3650d") {
			t.Errorf("ban %v: %v %s", args, err, errOut)
		}
	}
	if _, errOut, err := ctl(t, "ban", "-c", config, "--for", "3650d", "198.51.100.9"); err != nil {
		t.Errorf("ban --for 3650d: %v %s", err, errOut)
	}

	var ruleset string
	for _, set := range []string{"ban4", "ban6", "net4", "net6"} {
		ruleset += nft(t, ns, "list", "set", "inet", "sipguard", set)
	}
	for _, want := range []string{"198.51.100.7", "198.51.100.9", "203.0.113.0/24", "198.51.100.60", "2001:db8:60::/48"} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("%s not in the kernel:\n%s", want, ruleset)
		}
	}
	for _, never := range []string{"0.0.0.0", "fe80:", "ff02:", "224.0.0", "255.255.255.255", "127.0.0.1", "169.254", "::/64", "::1", "198.51.100.8"} {
		if strings.Contains(ruleset, never) {
			t.Errorf("%s in the kernel:\n%s", never, ruleset)
		}
	}
	st, _, _ := ctl(t, "status", "--json", "-c", config)
	if !strings.Contains(st, `"special": 25`) || !strings.Contains(st, `"special": 5`) {
		t.Errorf("status does not count 25 events and 5 feed entries of special addresses:\n%s", st)
	}
}
