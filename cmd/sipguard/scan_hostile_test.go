package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestScanHiddenAttack replays what an attacker who reads the Asterisk
// parser would write (issue 13): 3,000 REGISTER failures over 5 minutes,
// interleaved with 45 IAX2 messages whose user name, extension or peer
// holds raw newlines and forged lines naming a victim, sent from a second
// address at the moments that once hid the next 8 KiB of the log. A third
// attacker's failures follow each trigger, a few lines on. The failures
// must still ban their senders, the triggers' sender must be banned for
// them, and the victim named in the forged lines must appear nowhere.
func TestScanHiddenAttack(t *testing.T) {
	const (
		attacker = "198.51.100.7"
		other    = "198.51.100.8"
		trigger  = "198.51.100.20"
		victim   = "203.0.113.44"
	)
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	stamp := func(d time.Duration) string { return t0.Add(d).Format("[2006-01-02 15:04:05]") }
	forged := func(d time.Duration, lwp int) string {
		return fmt.Sprintf("%s NOTICE[%d] chan_sip.c: Registration from '<sip:1@pbx>' failed for '%s:5060' - Wrong password\n", stamp(d), lwp, victim)
	}
	var log strings.Builder
	triggers := 0
	for i := range 3000 {
		d := time.Duration(i) * 100 * time.Millisecond // 3,000 over 5 minutes
		if i%66 == 0 && triggers < 45 {
			// One IAX2 packet: a head from the trigger's address, then
			// lines the attacker wrote.
			switch triggers % 3 {
			case 0: // the user name ends the message: the head looks whole
				fmt.Fprintf(&log, "%s WARNING[4400] chan_iax2.c: Host %s:4569 failed to authenticate as x\n", stamp(d), trigger)
				log.WriteString(forged(d, 1) + forged(d, 2))
			case 1: // the extension is cut short: the next line is its rest
				fmt.Fprintf(&log, "%s NOTICE[4400] chan_iax2.c: Rejected connect attempt from %s:4569, request 'x\n", stamp(d), trigger)
				log.WriteString(forged(d, 3) + forged(d, 4) + "@default' does not exist\n")
			case 2: // the peer name is cut short, the address comes last
				fmt.Fprintf(&log, "%s NOTICE[4400] chan_iax2.c: No registration for peer 'x\n", stamp(d))
				log.WriteString(forged(d, 5) + "' (from " + trigger + ")\n")
			}
			triggers++
		}
		fmt.Fprintf(&log, "%s NOTICE[4121] chan_sip.c: Registration from '<sip:100@pbx>' failed for '%s:5060' - Wrong password\n", stamp(d), attacker)
		if i%66 == 3 && i < 66*45 {
			fmt.Fprintf(&log, "%s NOTICE[4188] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:200@pbx>' failed for '%s:5060' (callid: c%d) - Failed to authenticate\n", stamp(d), other, i)
		}
	}
	if triggers != 45 {
		t.Fatalf("%d triggers", triggers)
	}
	path := writeFile(t, "messages.log", log.String())

	out, errOut, code := run(t, "", "scan", "--json", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	banned := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var b struct{ IP, Rule string }
		if err := json.Unmarshal([]byte(l), &b); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		banned[b.IP] = b.Rule
	}
	for _, a := range []string{attacker, other, trigger} {
		if banned[a] == "" {
			t.Errorf("%s not banned; bans %v\n%s", a, banned, errOut)
		}
	}
	if _, ok := banned[victim]; ok {
		t.Errorf("the victim of forged lines was banned: %v", banned)
	}

	// The other attacker's failures all count, and the attacker's but those
	// inside a trigger's reach from another thread than the trigger's (at
	// most one a trigger here: each reaches at most 527 bytes); the victim
	// has no event; the trigger's cut messages are injections.
	out, _, _ = run(t, "", "scan", "--events", "--json", path)
	count := map[string]int{}
	injections := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct{ IP, Kind string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		count[ev.IP]++
		if ev.Kind == "injection" {
			injections++
		}
	}
	if count[attacker] < 3000-45 || count[other] != 45 || count[victim] != 0 {
		t.Errorf("events: %v; want at least 2,955 of %s, 45 of %s, none of %s", count, attacker, other, victim)
	}
	t.Logf("events: %v", count)
	if injections != 15 {
		t.Errorf("%d injection events; want 15 (one per cut message whose sender precedes the cut)", injections)
	}
	if !strings.Contains(errOut, "injected") {
		t.Errorf("summary lacks the injected lines:\n%s", errOut)
	}
}
