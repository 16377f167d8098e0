package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/fraud"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/numbering"
	"github.com/sipguard/sipguard/watchers"
)

// TestFraudFromCEL follows a CEL file (sipguard's cel_custom mapping) and
// the security log: an account that logged in from 203.0.113.66 calls a
// satellite number; the alert reaches the observers with the account, the
// call and the address that last logged in as the account. Internal calls
// raise nothing. The time from the line's write to the notice is logged.
func TestFraudFromCEL(t *testing.T) {
	e := newEnv(t)
	r, cel, notices := startFraud(t, e, daemon.Fraud{Rules: fraud.Options{RiskRanges: true, AllowedCountries: []string{"GB"}}}, nil)
	now := time.Now().UTC()
	login(t, r, e, "1004", "203.0.113.66", now)
	appendLines(t, cel,
		celRecord("CHAN_START", "PJSIP/1001-00000001", "1002", "1.1", now),
		celRecord("HANGUP", "PJSIP/1001-00000001", "1002", "1.1", now.Add(time.Second)))
	written := time.Now()
	appendLines(t, cel, celRecord("CHAN_START", "PJSIP/1004-00000002", "0088216012345", "2.2", now.Add(2*time.Second)))
	var got []daemon.Notice
	for len(got) < 2 {
		select {
		case n := <-notices:
			if len(got) == 0 {
				t.Logf("first CEL line of the fraudulent call written -> fraud notice: %v", time.Since(written))
			}
			got = append(got, n)
		case <-time.After(10 * time.Second):
			t.Fatalf("notices %+v", got)
		}
	}
	rules := map[string]bool{}
	for _, n := range got {
		rules[n.Rule] = true
		if n.User != "1004" || n.Addr != netip.MustParseAddr("203.0.113.66") || n.Source != "calls" {
			t.Errorf("notice %+v", n)
		}
	}
	if !rules[fraud.RuleRisk] || !rules[fraud.RuleCountry] {
		t.Errorf("rules %v", rules)
	}
	select {
	case n := <-notices:
		t.Errorf("extra notice %+v", n)
	case <-time.After(200 * time.Millisecond):
	}
	// Status counts the public calls by destination (the call to 1002 is
	// internal) and the alerts by rule.
	st, err := r.client.Status(context.Background())
	if err != nil || st.Fraud == nil {
		t.Fatalf("status: %v %+v", err, st.Fraud)
	}
	if c, a := st.Fraud.Calls, st.Fraud.Alerts; len(c) != 1 || c["non_geographic"] != 1 || a[fraud.RuleRisk] != 1 || a[fraud.RuleCountry] != 1 {
		t.Errorf("status: calls %v, alerts %v", c, a)
	}
}

// TestFraudBan: with the ban action, an alert bans the address that last
// logged in as the account, under the rule "fraud"; an allowlisted one
// is alerted on, never banned.
func TestFraudBan(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		banned bool
	}{{"198.51.100.66", true}, {"192.0.2.66", false}} { // 192.0.2.0/24 is allowlisted
		const witness = "203.0.113.99" // another account's address, banned after
		t.Run(tc.addr, func(t *testing.T) {
			e := newEnv(t)
			fw := fwtest.New(nil)
			r, cel, notices := startFraud(t, e, daemon.Fraud{Rules: fraud.Options{RiskRanges: true}, Ban: true, BanTime: 7 * 24 * time.Hour}, fw)
			now := time.Now().UTC()
			login(t, r, e, "1004", tc.addr, now)
			login(t, r, e, "1009", witness, now)
			appendLines(t, cel, celRecord("CHAN_START", "PJSIP/1004-00000002", "0088216012345", "2.2", now))
			select {
			case n := <-notices:
				if n.Addr.String() != tc.addr {
					t.Fatalf("notice %+v", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no fraud notice")
			}
			// A fraud alert's ban is decided a moment later, in order: the
			// witness's, decided after it, says it was.
			appendLines(t, cel, celRecord("CHAN_START", "PJSIP/1009-00000003", "0088216012345", "3.3", now))
			waitFraudBan(t, r, witness)
			bans, err := r.client.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, b := range bans {
				if b.Target == tc.addr {
					got = b.Rule == daemon.FraudRuleName && strings.Contains(b.Reason, "toll fraud")
				}
			}
			if _, inFW := banned(fw, tc.addr+"/32"); got != tc.banned || inFW != tc.banned {
				t.Errorf("banned in the ledger %v, in the firewall %v; want %v\n%+v", got, inFW, tc.banned, bans)
			}
		})
	}
}

// waitFraudBan waits until addr is banned under the rule "fraud".
func waitFraudBan(t *testing.T, r *running, addr string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "the fraud ban of "+addr, func() bool {
		bans, err := r.client.List(context.Background())
		return err == nil && slices.ContainsFunc(bans, func(b control.Ban) bool {
			return b.Target == addr && b.Rule == daemon.FraudRuleName
		})
	})
}

// TestFraudBanLoginAfterCall: the office phone has logged in as 1004 for
// weeks; an attacker holding the password calls a satellite number, and
// the security log's line for the attacker's login (PJSIP authenticates
// the INVITE) is read after the call's CEL record: two files, written by
// two threads. Decided at the alert, the only address logged in was the
// office's, and the office was banned. Decided a moment later, the
// attacker's new address is, and the office is not.
func TestFraudBanLoginAfterCall(t *testing.T) {
	const office, attacker = "198.51.100.10", "203.0.113.66"
	e := newEnv(t)
	fw := fwtest.New(nil)
	r, cel, notices := startFraud(t, e, daemon.Fraud{Rules: fraud.Options{RiskRanges: true}, Ban: true, BanTime: 7 * 24 * time.Hour}, fw)
	now := time.Now().UTC()
	login(t, r, e, "1004", office, now.Add(-40*24*time.Hour))
	login(t, r, e, "1004", office, now.Add(-time.Minute))
	appendLines(t, cel, celRecord("CHAN_START", "PJSIP/1004-00000002", "0088216012345", "2.2", now))
	select {
	case <-notices:
	case <-time.After(10 * time.Second):
		t.Fatal("no fraud notice")
	}
	login(t, r, e, "1004", attacker, now)
	if !testutil.Eventually(5*time.Second, func() bool { _, ok := banned(fw, attacker+"/32"); return ok }) {
		t.Error("the attacker's address is not banned")
	}
	if _, inFW := banned(fw, office+"/32"); inFW {
		t.Error("the office phone is banned")
	}
}

// login writes a successful login of account from addr into the log and
// waits until the daemon has handled it (its source's offset moved past it).
func login(t *testing.T, r *running, e env, account, addr string, now time.Time) {
	t.Helper()
	appendLines(t, e.log, fmt.Sprintf(`[%s] SECURITY[4101] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="x",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID=%q,SessionID="x",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/%s/5060",UsingPassword="1"`,
		now.Format(time.DateTime), account, addr))
	fi, err := os.Stat(e.log)
	if err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool {
		st, err := r.client.Status(context.Background())
		if err != nil {
			return false
		}
		for _, s := range st.Sources {
			if s.Name == "pbx" && s.Offset == fi.Size() {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the login line was not handled")
	}
}

// startFraud starts a daemon with a CEL source ("calls") and the fraud
// settings f, dialling as a UK PBX, and returns it, the CEL file, and the
// fraud notices it sends.
func startFraud(t *testing.T, e env, f daemon.Fraud, fw firewall.Backend) (*running, string, chan daemon.Notice) {
	t.Helper()
	cfg := e.config()
	cel := celSource(t, e, &cfg)
	f.Rules.Plan = numbering.Plan{InternationalPrefixes: []string{"00"}, NationalPrefix: "0", CountryCode: "44"}
	cfg.Fraud = &f
	notices := make(chan daemon.Notice, 16)
	r := start(t, cfg, fw, observerFunc(func(n daemon.Notice) {
		if n.Type == daemon.NoticeFraud {
			notices <- n
		}
	}))
	return r, cel, notices
}

// celSource adds a CEL source (sipguard's cel_custom mapping) to cfg and
// returns its file.
func celSource(t *testing.T, e env, cfg *daemon.Config) string {
	t.Helper()
	cel := filepath.Join(e.dir, "sipguard.csv")
	if err := os.WriteFile(cel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Sources = append(cfg.Sources, daemon.Source{Name: "calls", Path: cel, Parser: daemon.CallParserCEL, Location: time.UTC, Start: watchers.StartBeginning})
	return cel
}

// celRecord is a line of sipguard's cel_custom mapping.
func celRecord(ev, ch, exten, id string, at time.Time) string {
	return fmt.Sprintf(`%q,"%d.%06d",%q,"from-internal",%q,%q,%q,"","","",""`, ev, at.Unix(), at.Nanosecond()/1000, ch, exten, id, id)
}

// TestFraudMinutesUnderWay: a call to an allowed country, answered and
// still under way, runs past max_international_minutes: the daemon alerts
// while it goes on (its once-a-second tick), not when it hangs up hours
// later, naming its source and account.
func TestFraudMinutesUnderWay(t *testing.T) {
	_, cel, notices := startFraud(t, newEnv(t), daemon.Fraud{Rules: fraud.Options{
		MaxMinutes: 60, MinutesWindow: 24 * time.Hour, AllowedCountries: []string{"GB", "DE"}}}, nil)
	began := time.Now().UTC().Add(-2 * time.Hour)
	appendLines(t, cel,
		celRecord("CHAN_START", "PJSIP/1004-00000002", "004930123456", "2.2", began),
		celRecord("ANSWER", "PJSIP/1004-00000002", "004930123456", "2.2", began.Add(10*time.Second)))
	select {
	case n := <-notices:
		if n.Rule != fraud.RuleMinutes || n.User != "1004" || n.Source != "calls" || n.Count < 119 {
			t.Errorf("notice %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert for a call answered two hours ago and still under way")
	}
}
