package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAudit: the bad fixture fails at the default --fail-on high, grouped
// by severity; the hardened one passes; --json and --min-severity.
func TestAudit(t *testing.T) {
	bad, good := "../../audit/testdata/bad", "../../audit/testdata/good"
	out, errOut, code := run(t, "", "audit", "--root", bad, "--asterisk-version", "18.20.0")
	if code != 1 || !strings.Contains(errOut, "at or above high (--fail-on)") {
		t.Errorf("bad: exit %d, stderr %q; want 1", code, errOut)
	}
	for _, want := range []string{"\nCRITICAL (", "\nHIGH (", "GUEST-OUTBOUND  /etc/asterisk/sip.conf:2",
		"RELEASE-EOL  -", "FreePBX: Settings > Asterisk SIP Settings", "findings shown: "} {
		if !strings.Contains(out, want) {
			t.Errorf("bad: no %q in\n%s", want, out)
		}
	}
	if strings.Index(out, "\nCRITICAL (") > strings.Index(out, "\nHIGH (") {
		t.Error("critical findings not first")
	}
	if _, errOut, code := run(t, "", "audit", "--root", good, "--asterisk-version", "22.1.0"); code != 0 {
		t.Errorf("good: exit %d %q; want 0", code, errOut)
	}
	if _, _, code := run(t, "", "audit", "--root", bad, "--fail-on", "critical", "--config-dir", "/nonexistent"); code != 1 {
		t.Errorf("no Asterisk config: exit %d; want 1", code)
	}
	out, _, code = run(t, "", "audit", "--root", bad, "--json", "--min-severity", "critical", "--fail-on", "critical")
	var r struct {
		Findings []struct{ ID, Severity, File string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || len(r.Findings) == 0 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	for _, f := range r.Findings {
		if f.Severity != "critical" {
			t.Errorf("--min-severity critical shows %s %s", f.Severity, f.ID)
		}
	}
	for _, args := range [][]string{{"audit", "--fail-on", "severe"}, {"audit", "--min-severity", "x"}, {"audit", "extra"}, {"audit", "--asterisk-dir", "etc"}} {
		if _, errOut, code := run(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d %q; want 2", args, code, errOut)
		}
	}
}

// TestAudit_Hostile: config text with terminal escapes and line breaks
// is printed cleaned, and no secret of the fixtures appears in any output.
func TestAudit_Hostile(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/asterisk")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "pjsip.conf"), []byte("[evil\x1b]2;pwned\x07\x1b[2J]\ntype=endpoint\ncontext=x\u202e\r\n"+
		"[a-auth]\ntype=auth\nusername=a\npassword=Hunter22xyz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sip.conf"), []byte("[general]\nallowguest=yes\n[2001]\nsecret=Kx9!Summer\n"), 0o644)
	for _, args := range [][]string{{"audit", "--root", root}, {"audit", "--root", root, "--json"}} {
		out, errOut, _ := run(t, "", args...)
		all := out + errOut
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "\r", "Hunter22xyz", "Kx9!Summer"} {
			if strings.Contains(all, bad) {
				t.Errorf("%q: output holds %q:\n%s", args, bad, all)
			}
		}
		if !strings.Contains(out, "PJSIP-NO-AUTH") || !strings.Contains(out, "SIP-WEAK-SECRET") {
			t.Errorf("%q: findings missing:\n%s", args, out)
		}
	}
}
