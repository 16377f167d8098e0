package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/geoiptest"
)

// TestRunGeoIP: `sipguard run` with [geoip]: the ban's [[notify]] command
// gets {country}, and `list` shows a country column and JSON field.
func TestRunGeoIP(t *testing.T) {
	dir := t.TempDir()
	db := geoiptest.Write(t, dir, map[string]string{"198.51.100.0/24": "DE"})
	script, record := hookScript(t, dir)
	config, logPath := opsConfig(t, `
[geoip]
database = "`+db+`"
[[notify]]
name = "script"
command = ["/bin/sh", "`+script+`", "{type}", "{target}", "{country}"]
events = ["ban"]
`)
	logs := upDaemon(t, config)
	appendTo(t, logPath, attack("198.51.100.7", time.Now().Add(-10*time.Second), 5)+attack("203.0.113.9", time.Now().Add(-10*time.Second), 5))
	if !soon(func() bool { b, _ := os.ReadFile(record); return strings.Count(string(b), "\n") == 2 }) {
		b, _ := os.ReadFile(record)
		t.Fatalf("command hook got %q\n%s", b, logs)
	}
	b, _ := os.ReadFile(record)
	if got := string(b); !strings.Contains(got, "ban|198.51.100.7|DE|\n") || !strings.Contains(got, "ban|203.0.113.9||\n") {
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
