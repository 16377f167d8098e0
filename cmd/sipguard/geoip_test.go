package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/geoiptest"
)

// TestRunGeoIP: `sipguard run` with [geoip]: the ban's [[notify]] command
// gets {country}, `list` shows a country column and JSON field, and
// [compromise] on_new_country sends a compromise event for an account's
// login from a new country.
func TestRunGeoIP(t *testing.T) {
	dir := t.TempDir()
	db := geoiptest.Write(t, dir, map[string]string{"198.51.100.0/25": "DE", "198.51.100.128/25": "FR"})
	script, record := hookScript(t, dir)
	config, logPath := opsConfig(t, `
[geoip]
database = "`+db+`"
[compromise]
on_new_country = "alert"
[[notify]]
name = "script"
command = ["/bin/sh", "`+script+`", "{type}", "{target}", "{country}", "{rule}"]
events = ["ban", "compromise"]
`)
	logs := upDaemon(t, config)
	appendTo(t, logPath, attack("198.51.100.7", time.Now().Add(-10*time.Second), 5)+attack("203.0.113.9", time.Now().Add(-10*time.Second), 5))
	if !soon(func() bool { b, _ := os.ReadFile(record); return strings.Count(string(b), "\n") == 2 }) {
		b, _ := os.ReadFile(record)
		t.Fatalf("command hook got %q\n%s", b, logs)
	}
	b, _ := os.ReadFile(record)
	if got := string(b); !strings.Contains(got, "ban|198.51.100.7|DE|burst|\n") || !strings.Contains(got, "ban|203.0.113.9||burst|\n") {
		t.Errorf("command hook got %q", got)
	}
	out, _, code := ctlNow(t, "", "list", "-c", config)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "target") || strings.Fields(lines[0])[1] != "country" {
		t.Fatalf("list (exit %d):\n%s", code, out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if want := map[string]string{"198.51.100.7": "DE", "203.0.113.9": "-"}[f[0]]; f[1] != want {
			t.Errorf("list row %q: country %q; want %q", l, f[1], want)
		}
	}
	// Account 1001, at home in DE, logs in from FR.
	now := time.Now()
	appendTo(t, logPath, successLine("198.51.100.20", "1001", now.Add(-time.Minute))+successLine("198.51.100.200", "1001", now))
	if !soon(func() bool { b, _ := os.ReadFile(record); return strings.Count(string(b), "\n") == 3 }) {
		b, _ := os.ReadFile(record)
		t.Fatalf("command hook got %q\n%s", b, logs)
	}
	if b, _ := os.ReadFile(record); !strings.HasSuffix(string(b), "compromise|198.51.100.200|FR|new_country|\n") {
		t.Errorf("command hook got %q", b)
	}
	js, _, _ := ctlNow(t, "", "list", "-c", config, "--json")
	var bans []struct{ Target, Country string }
	if err := json.Unmarshal([]byte(js), &bans); err != nil {
		t.Fatal(err)
	}
	for _, b := range bans {
		if want := map[string]string{"198.51.100.7": "DE", "203.0.113.9": ""}[b.Target]; b.Country != want {
			t.Errorf("list --json: %s country %q; want %q", b.Target, b.Country, want)
		}
	}
	if !strings.Contains(js, `"country": "DE"`) || strings.Count(js, `"country"`) != 1 {
		t.Errorf("list --json:\n%s", js)
	}
}

// TestReportGeoIP: `report --geoip FILE` and a config's [geoip] database
// give the top addresses a country; a corrupt database is an error, not a
// report without countries.
func TestReportGeoIP(t *testing.T) {
	dir := t.TempDir()
	db := geoiptest.Write(t, dir, map[string]string{"198.51.100.0/25": "DE", "198.51.100.128/25": "FR"})
	countryOf := func(args ...string) map[string]string {
		t.Helper()
		stdout, errOut, code := run(t, "", append([]string{"report", "--parser", "asterisk", "--json"}, append(args, attackLog)...)...)
		var rep struct {
			Countries bool
			Addresses []struct{ Address, Country string }
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 || !rep.Countries {
			t.Fatalf("report %q: %d %v %q %.200s", args, code, err, errOut, stdout)
		}
		out := map[string]string{}
		for _, a := range rep.Addresses {
			out[a.Address] = a.Country
		}
		return out
	}
	config := writeFile(t, "rules.toml", "[geoip]\ndatabase = \""+db+"\"\n")
	for _, args := range [][]string{{"--geoip", db}, {"-c", config}} {
		got := countryOf(args...)
		if got["198.51.100.7"] != "DE" || got["203.0.113.50"] != "" {
			t.Errorf("report %q: countries %v", args, got)
		}
	}
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	os.WriteFile(corrupt, []byte("not a database"), 0o644)
	if _, errOut, code := run(t, "", "report", "--parser", "asterisk", "--geoip", corrupt, attackLog); code != 1 || !strings.Contains(errOut, corrupt) {
		t.Errorf("--geoip %s: %d %q", corrupt, code, errOut)
	}
}
