package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFraudBanKernel: the real daemon follows the security log and a CEL
// file (sipguard's cel_custom mapping) with [fraud] action = "ban": an
// account logs in from 198.51.100.66 and calls a satellite number; the
// address is in the kernel's ban set, under the rule "fraud".
func TestFraudBanKernel(t *testing.T) {
	needRoot(t)
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	celPath := filepath.Join(dir, "sipguard.csv")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	if err := os.WriteFile(celPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	config := daemonConfig(t, dir, logPath, fmt.Sprintf(`
[[source]]
name = "calls"
path = %q
parser = "cel"
start = "beginning"

[fraud]
enabled = true
country_code = "44"
action = "ban"
ban_time = "1d"
`, celPath))
	d := startDaemon(t, ns, config)
	if !waitFor(10*time.Second, func() bool { _, _, err := ctl(t, "status", "-c", config); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", d.stderr)
	}
	now := time.Now()
	appendLines(t, logPath, fmt.Sprintf(`[%s] SECURITY[4101] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="x",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="1004",SessionID="x",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/198.51.100.66/5060",UsingPassword="1"`,
		now.Format(time.DateTime)))
	// The login is handled first: the status counts it, and the source's
	// offset (bytes read and handled) is the log's end.
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		out, _, err := ctl(t, "status", "--json", "-c", config)
		var st struct {
			Sources []struct {
				Name      string `json:"name"`
				Successes int64  `json:"successes"`
				Offset    int64  `json:"offset"`
			} `json:"sources"`
		}
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		for _, s := range st.Sources {
			if s.Name == "pbx" && s.Successes == 1 && s.Offset == fi.Size() {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the login was not read:\n%s", d.stderr)
	}
	appendLines(t, celPath, fmt.Sprintf(`"CHAN_START","%d.000000","PJSIP/1004-00000002","from-internal","0088216012345","2.2","2.2","","","",""`, now.Unix()))
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.66") }) {
		t.Fatalf("the address that logged in as the account is not banned:\n%s", d.stderr)
	}
	if out, _, _ := ctl(t, "list", "-c", config); !strings.Contains(out, "198.51.100.66") || !strings.Contains(out, "fraud") {
		t.Errorf("list:\n%s", out)
	}
	if out, _, _ := ctl(t, "status", "-c", config); !strings.Contains(out, "toll fraud: calls by destination: 1 non_geographic;") || !strings.Contains(out, "alerts: 1 risk_range") {
		t.Errorf("status:\n%s", out)
	}
}
