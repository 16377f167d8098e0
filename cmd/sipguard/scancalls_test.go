package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// fraudConfig enables the shipped [fraud] defaults for a UK PBX, with
// business hours and the countries an office calls.
const fraudConfig = `[fraud]
enabled = true
country_code = "44"
allowed_countries = ["GB", "DE", "FR", "IE"]
business_hours = "mon-fri 08:00-18:00"
timezone = "UTC"
cdr_options = ["usegmtime"]
`

// scanAlerts scans file with parser and returns the alerts by rule, and
// every alert's account.
func scanAlerts(t *testing.T, parser, file string) (map[string]int, map[string]bool, string) {
	t.Helper()
	cfg := writeFile(t, "rules.toml", fraudConfig)
	out, errOut, code := run(t, "", "scan", "-c", cfg, "--parser", parser, "--json", file)
	if code != 0 {
		t.Fatalf("scan: exit %d\n%s", code, errOut)
	}
	rules, accounts := map[string]int{}, map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var a alertJSON
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		rules[a.Alert]++
		accounts[a.Account] = true
	}
	return rules, accounts, errOut
}

// TestScanCallsNormalDay: a business day of national, European and
// internal calls raises no alert; every record is read.
func TestScanCallsNormalDay(t *testing.T) {
	rules, _, summary := scanAlerts(t, "cel", "testdata/fraud/normal-day.cel.csv")
	if len(rules) != 0 {
		t.Errorf("alerts on a normal day: %v", rules)
	}
	if !strings.Contains(summary, "60 calls ended") || !strings.Contains(summary, "0 malformed, 0 too_long, 0 bad_time") {
		t.Errorf("summary: %s", summary)
	}
}

// TestScanCallsNightBurst: the same day, then a guessed account calls
// satellite, premium and Cuban numbers at 02:00, eight at once. Every
// rule the burst breaks fires, only for that account; the CDRs of the
// burst give the same rules.
func TestScanCallsNightBurst(t *testing.T) {
	want := []string{"risk_range", "country", "after_hours", "concurrent", "calls", "minutes"}
	for _, c := range []struct{ parser, file string }{{"cel", "testdata/fraud/night-burst.cel.csv"}, {"cdr", "testdata/fraud/night-burst.cdr.csv"}} {
		rules, accounts, summary := scanAlerts(t, c.parser, c.file)
		for _, r := range want {
			if rules[r] == 0 {
				t.Errorf("%s: %s did not fire: %v\n%s", c.file, r, rules, summary)
			}
		}
		if len(accounts) != 1 || !accounts["1004"] {
			t.Errorf("%s: alerts for accounts %v, want only 1004", c.file, accounts)
		}
		if rules["probing"] != 0 {
			t.Errorf("%s: answered calls reported as probing", c.file)
		}
	}
}

// TestScanCallsProbing: short unanswered calls to six different prefixes.
func TestScanCallsProbing(t *testing.T) {
	rules, accounts, _ := scanAlerts(t, "cel", "testdata/fraud/probing.cel.csv")
	if rules["probing"] == 0 || !accounts["1005"] {
		t.Errorf("probing: %v %v", rules, accounts)
	}
}

// TestScanCallsText: the text form names the rule, the account and the
// number, quoted (callers write numbers).
func TestScanCallsText(t *testing.T) {
	cfg := writeFile(t, "rules.toml", fraudConfig)
	out, _, code := run(t, "", "scan", "-c", cfg, "--parser", "cdr", "testdata/fraud/night-burst.cdr.csv")
	if code != 0 || !strings.Contains(out, `FRAUD 2025-12-03 02:00:00  risk_range   account="1004" dialled="0088216012345" (+88216012345 international_network)`) {
		t.Errorf("text output:\n%s", out)
	}
	exten := "0088216\n\x1b[2J"
	log := `"CHAN_START","1764669600.000100","PJSIP/1001-0000002a","from-internal","` + exten + `","1.1","1.1","","","","x"` + "\n" +
		`"HANGUP","1764669660.000100","PJSIP/1001-0000002a","from-internal","` + exten + `","1.1","1.1","","","","x"` + "\n"
	out, _, _ = run(t, log, "scan", "-c", cfg, "--parser", "cel", "--events", "-")
	if !strings.Contains(out, `dialled="0088216\n\x1b[2J"`) {
		t.Errorf("the call, its number quoted: %q", out)
	}
	if strings.ContainsRune(out, 0x1b) {
		t.Errorf("a control character reached the terminal: %q", out)
	}
}

// TestScanCallsMinutesUnderWay: a replay counts the minutes of a call
// under way at each later record, as the daemon does every second: a
// call to Germany answered at 09:00 and not ended by 11:00 breaks a
// 60-minute limit then.
func TestScanCallsMinutesUnderWay(t *testing.T) {
	cfg := writeFile(t, "rules.toml", fraudConfig+"max_international_minutes = 60\nminutes_window = \"24h\"\n")
	rec := func(ev, ch, exten, id string, at int64) string {
		return `"` + ev + `","` + strconv.FormatInt(at, 10) + `.000000","` + ch + `","from-internal","` + exten + `","` + id + `","` + id + `","","","",""` + "\n"
	}
	nine := int64(1764666000) // 2025-12-02 09:00 UTC, a Tuesday
	log := rec("CHAN_START", "PJSIP/1001-0000002a", "004930123456", "1.1", nine) +
		rec("ANSWER", "PJSIP/1001-0000002a", "004930123456", "1.1", nine+10) +
		rec("CHAN_START", "PJSIP/1002-0000002b", "02079460000", "2.2", nine+7200)
	out, errOut, code := run(t, log, "scan", "-c", cfg, "--parser", "cel", "--json", "-")
	if code != 0 || !strings.Contains(out, `"alert":"minutes","time":"2025-12-02T11:00:00Z","account":"1001"`) {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}
