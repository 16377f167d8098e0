package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/fraud"
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
	cel := filepath.Join(e.dir, "sipguard.csv")
	os.WriteFile(cel, nil, 0o644)
	cfg := e.config()
	cfg.Sources = append(cfg.Sources, daemon.Source{Name: "calls", Path: cel, Parser: daemon.CallParserCEL, Location: time.UTC, Start: watchers.StartBeginning})
	cfg.Fraud = &daemon.Fraud{Rules: fraud.Options{
		Plan:       numbering.Plan{InternationalPrefixes: []string{"00"}, NationalPrefix: "0", CountryCode: "44"},
		RiskRanges: true, AllowedCountries: []string{"GB"},
	}}
	notices := make(chan daemon.Notice, 16)
	r := start(t, cfg, nil, observerFunc(func(n daemon.Notice) {
		if n.Type == daemon.NoticeFraud {
			notices <- n
		}
	}))
	now := time.Now().UTC()
	appendLines(t, e.log, fmt.Sprintf(`[%s] SECURITY[4101] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="x",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1004",SessionID="x",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/203.0.113.66/5060",UsingPassword="1"`,
		now.Format(time.DateTime)))
	record := func(ev, ch, exten, id string, at time.Time) string {
		return fmt.Sprintf(`%q,"%d.%06d",%q,"from-internal",%q,%q,%q,"","","",""`, ev, at.Unix(), at.Nanosecond()/1000, ch, exten, id, id)
	}
	// Wait for the login to be read before the call (both files are read
	// at once otherwise, in either order).
	if !eventually(func() bool {
		st, err := r.client.Status(context.Background())
		if err != nil {
			return false
		}
		for _, s := range st.Sources {
			if s.Name == "pbx" && s.Successes == 1 && s.Offset > 0 {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the login line was not read")
	}
	appendLines(t, cel,
		record("CHAN_START", "PJSIP/1001-00000001", "1002", "1.1", now),
		record("HANGUP", "PJSIP/1001-00000001", "1002", "1.1", now.Add(time.Second)))
	written := time.Now()
	appendLines(t, cel, record("CHAN_START", "PJSIP/1004-00000002", "0088216012345", "2.2", now.Add(2*time.Second)))
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
}
