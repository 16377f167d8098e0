package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/geoiptest"
	"github.com/sipguard/sipguard/internal/testutil"
)

// TestDaemonCountries is the countries case of issue 15 with the real
// binary, kernel and traffic: a built database puts one phone in DE and
// a stranger in FR; with strict mode and allow_countries = ["DE"] the
// phone reaches the SIP port without logging in, the stranger is dropped,
// a banned DE address stays dropped, each read back on its rule's
// counter; policy explain says why; a reload with ["FR"] turns them round.
func TestDaemonCountries(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	const de, bannedDE, fr = "198.18.7.17", "198.18.7.18", "198.18.7.33"
	dir := t.TempDir()
	pbx, sink, send := sipNet(t, dir, de, bannedDE, fr)
	db := geoiptest.Write(t, dir, map[string]string{"198.18.7.16/29": "DE", "198.18.7.32/29": "FR", "2001:db8::/32": "DE"})

	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	writeConfig := func(country string) string {
		return daemonConfig(t, dir, logPath, `
[geoip]
database = "`+db+`"

[allow]
addresses = ["127.0.0.0/8", "::1", "192.0.2.1"]

[policy]
mode = "strict"
sip_ports = ["5060/udp"]
allow_countries = ["`+country+`"]
`)
	}
	config := writeConfig("DE")
	d := startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	chain := func() string { return nft(t, pbx, "list", "chain", "inet", "sipguard", "input") }
	if c := chain(); !strings.Contains(c, `"sipguard country4 udp"`) || !strings.Contains(c, `"sipguard country6 udp"`) {
		t.Fatalf("no country rules in the chain:\n%s", c)
	}
	if !waitFor(5*time.Second, func() bool { send(de, 1); return received(sink, de) > 0 }) {
		t.Fatalf("the DE phone does not reach the PBX: %q\n%s", readFile(sink), chain())
	}
	if _, errOut, err := ctl(t, "ban", "-c", config, bannedDE); err != nil {
		t.Fatalf("ban: %v %s", err, errOut)
	}

	before := chain()
	counts := map[string]int{}
	for _, a := range []string{de, bannedDE, fr} {
		counts[a] = received(sink, a)
		send(a, 10)
	}
	if !waitFor(5*time.Second, func() bool { return received(sink, de) >= counts[de]+10 }) {
		t.Errorf("%d of the DE phone's 10 datagrams arrived", received(sink, de)-counts[de])
	}
	for _, a := range []string{bannedDE, fr} {
		if got := received(sink, a) - counts[a]; got != 0 {
			t.Errorf("%d datagrams from %s reached the PBX", got, a)
		}
	}
	after := chain()
	delta := func(rule string) int { return dropped(after, rule) - dropped(before, rule) }
	for rule, want := range map[string]int{"sipguard country4 udp": 10, "sipguard ban4": 10, "sipguard policy drop 5060/udp": 10} {
		if got := delta(rule); got != want {
			t.Errorf("counter %q grew by %d; want %d:\n%s", rule, got, want, after)
		}
	}
	t.Logf("strict, allow_countries DE: DE phone 10/10 (country4 udp +%d), FR stranger 0/10 (policy drop +%d), banned DE 0/10 (ban4 +%d)",
		delta("sipguard country4 udp"), delta("sipguard policy drop 5060/udp"), delta("sipguard ban4"))
	for addr, want := range map[string]string{
		de:       `accepted (rule "sipguard country4 udp"): country DE admitted`,
		fr:       `dropped (rule "sipguard policy drop 5060/udp")`,
		bannedDE: `dropped (rule "sipguard ban4"): banned`,
	} {
		if out, errOut, err := ctl(t, "policy", "-c", config, "explain", addr, "5060/udp"); err != nil || !strings.Contains(out, want) {
			t.Errorf("policy explain %s: %v %s%s; want %q", addr, err, out, errOut, want)
		}
	}

	// A restart keeps the country sets as they are: set up with the
	// networks from the start, never deleted and loaded again.
	d.stop()
	d = startDaemon(t, pbx, config)
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not start again:\n%s", d.stderr)
	}
	if log := d.stderr.String(); strings.Contains(log, "set country4") || strings.Contains(log, "elements of set country") {
		t.Errorf("the restart changed the country sets:\n%s", log)
	}
	if !strings.Contains(chain(), `"sipguard country4 udp"`) {
		t.Fatalf("no country rules after the restart:\n%s", chain())
	}

	// A reload with FR instead: the stranger in, the phone out.
	writeConfig("FR")
	d.cmd.Process.Signal(syscall.SIGHUP)
	country4 := func() string { return nft(t, pbx, "list", "set", "inet", "sipguard", "country4") }
	if !waitFor(5*time.Second, func() bool { return strings.Contains(country4(), "elements = { 198.18.7.32/29 }") }) {
		t.Fatalf("not reloaded to FR:\n%s\n%s", country4(), d.stderr)
	}
	if strings.Contains(nft(t, pbx, "list", "set", "inet", "sipguard", "country6"), "2001:db8") {
		t.Error("DE's IPv6 network left in country6")
	}
	for _, a := range []string{de, fr} {
		counts[a] = received(sink, a)
		send(a, 5)
	}
	if !waitFor(5*time.Second, func() bool { return received(sink, fr) >= counts[fr]+5 }) || received(sink, de) != counts[de] {
		t.Errorf("after the reload: FR %d of 5, DE %d of 5 arrived; want 5, 0", received(sink, fr)-counts[fr], received(sink, de)-counts[de])
	}
}
