package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// attackLog is the report package's day of attacks (dated 2026-03-02;
// the test clock says 2026-11-26).
const attackLog = "../../report/testdata/attack.log"

// TestReportCommand writes the HTML page to a file and the JSON to stdout,
// from the same log.
func TestReportCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.html")
	stdout, errOut, code := run(t, "", "report", "--parser", "asterisk", "-o", out, attackLog)
	if code != 0 || stdout != "" || !strings.Contains(errOut, "1 bans") {
		t.Fatalf("report -o: %d %q %q", code, stdout, errOut)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(page), "<!DOCTYPE html>") || !strings.Contains(string(page), "&lt;script&gt;alert(1)") {
		t.Errorf("page: %.200s", page)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	stdout, _, code = run(t, "", "report", "--parser", "asterisk", "--json", attackLog)
	var rep struct {
		Totals struct {
			Failures, Bans, Compromises int64
		}
		Generated string
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 {
		t.Fatalf("--json: %d %v %.200s", code, err, stdout)
	}
	if rep.Totals.Failures != 29 || rep.Totals.Bans != 1 || rep.Totals.Compromises != 1 || rep.Generated != "2026-11-26T12:00:00Z" {
		t.Errorf("--json: %+v", rep)
	}

	// --since counts back from now: the log is months old.
	stdout, _, code = run(t, "", "report", "--parser", "asterisk", "--json", "--since", "7d", attackLog)
	if code != 0 || !strings.Contains(stdout, `"before_since": 30`) || !strings.Contains(stdout, `"failures": 0`) {
		t.Errorf("--since 7d: %d %.600s", code, stdout)
	}
}

// TestReportErrors: bad flags are usage errors; an unwritable -o fails
// and leaves nothing.
func TestReportErrors(t *testing.T) {
	for _, args := range [][]string{
		{"report"}, {"report", "--since", "soon", attackLog}, {"report", "--since", "-1h", attackLog},
		{"report", "--parser", "nope", attackLog},
	} {
		if _, errOut, code := run(t, "", args...); code != 2 || errOut == "" {
			t.Errorf("%q: %d %q", args, code, errOut)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "absent", "report.html")
	if _, errOut, code := run(t, "", "report", "--parser", "asterisk", "-o", out, attackLog); code != 1 || !strings.Contains(errOut, "write report") {
		t.Errorf("-o %s: %d %q", out, code, errOut)
	}
	if _, errOut, code := run(t, "", "report", "--parser", "asterisk", filepath.Join(dir, "absent.log")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("absent log: %d %q", code, errOut)
	}
}

// TestReportWeakPasswords: with --asterisk-dir, the accounts being guessed
// whose password sipguard audit finds weak are marked, the others not; a
// directory given that does not exist is an error, not a silent report.
func TestReportWeakPasswords(t *testing.T) {
	dir := t.TempDir()
	pjsip := `[transport-udp]
type = transport
protocol = udp
bind = 0.0.0.0

[1003]
type = auth
auth_type = userpass
username = 1003
password = 1003

[1002]
type = auth
auth_type = userpass
username = 1002
password = Vq7#mB2!xLp9@Tz4$Rw8
`
	if err := os.WriteFile(filepath.Join(dir, "pjsip.conf"), []byte(pjsip), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, errOut, code := run(t, "", "report", "--parser", "asterisk", "--json", "--asterisk-dir", dir, attackLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Accounts []struct {
			User         string `json:"user"`
			WeakPassword bool   `json:"weak_password"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	weak := map[string]bool{}
	for _, a := range rep.Accounts {
		weak[a.User] = a.WeakPassword
	}
	if _, ok := weak["1003"]; !ok || !weak["1003"] || weak["1002"] {
		t.Errorf("weak marks %v: want 1003 marked, 1002 not", weak)
	}
	out := filepath.Join(t.TempDir(), "r.html")
	if _, errOut, code := run(t, "", "report", "--parser", "asterisk", "-o", out, "--asterisk-dir", dir, attackLog); code != 0 {
		t.Fatalf("html: %s", errOut)
	}
	if html, _ := os.ReadFile(out); !strings.Contains(string(html), "weak password (sipguard audit)") {
		t.Error("the HTML does not mark the weak password")
	}
	if _, errOut, code := run(t, "", "report", "--parser", "asterisk", "--json", "--asterisk-dir", filepath.Join(dir, "absent"), attackLog); code != 2 || !strings.Contains(errOut, "not a readable directory") {
		t.Errorf("an absent --asterisk-dir: exit %d %s", code, errOut)
	}
}

// TestReportPcap: a capture goes through the wire sensor into the report,
// as for scan --pcap: svwar's unknown users banned; the Kamailio answers a
// forged Via sent to a friend counted as diverted, nobody banned.
func TestReportPcap(t *testing.T) {
	type report struct {
		Totals struct {
			Lines, Failures, Bans, Dropped int64
		}
		Sources []struct {
			Parser string
			Events int64
		}
		DroppedByReason map[string]int64 `json:"dropped_by_reason"`
		Bans            []struct{ IP string }
	}
	read := func(capture string) report {
		t.Helper()
		stdout, errOut, code := run(t, "", "report", "--json", "--pcap", filepath.Join("../../sipwire/testdata", capture))
		var r report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 0 {
			t.Fatalf("report --pcap %s: %d %v %q", capture, code, err, errOut)
		}
		return r
	}
	r := read("svwar.pcap")
	if r.Totals.Failures != 12 || r.Totals.Bans != 1 || len(r.Bans) != 1 || r.Bans[0].IP != "198.18.0.2" ||
		len(r.Sources) != 1 || r.Sources[0].Parser != "sipwire" || r.Sources[0].Events != 12 {
		t.Errorf("svwar: %+v", r)
	}
	r = read("forged.pcap")
	if r.Totals.Failures != 0 || r.Totals.Bans != 0 || r.DroppedByReason["diverted"] != 6 || r.Totals.Dropped != 6 {
		t.Errorf("forged Via: %+v", r)
	}
	out := filepath.Join(t.TempDir(), "report.html")
	if _, errOut, code := run(t, "", "report", "-o", out, "--pcap", "../../sipwire/testdata/svwar.pcap"); code != 0 {
		t.Fatalf("HTML: %d %q", code, errOut)
	}
	if page, err := os.ReadFile(out); err != nil || !strings.Contains(string(page), "198.18.0.2") {
		t.Errorf("HTML page without the banned address: %v", err)
	}
	for _, args := range [][]string{
		{"report", "--pcap", "../../sipwire/testdata/svwar.pcap", attackLog},
		{"report", "--pcap", "../../sipwire/testdata/svwar.pcap", "--parser", "asterisk"},
	} {
		if _, errOut, code := run(t, "", args...); code != 2 || !strings.Contains(errOut, "one capture") {
			t.Errorf("%q: %d %q", args, code, errOut)
		}
	}
	if _, errOut, code := run(t, "", "report", "--pcap", "absent.pcap"); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("absent capture: %d %q", code, errOut)
	}
}
