package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/internal/testutil"
)

// run runs sipguard in process and returns stdout, stderr and the exit code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		ConfigPath: filepath.Join(t.TempDir(), "absent.toml"),
		Now:        func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) },
		HostAddrs: func() ([]netip.Prefix, error) {
			return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.0.2.10/32")}, nil
		},
	}
	code := m.Exit(m.Run(context.Background(), args))
	return out.String(), errOut.String(), code
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// attack returns n chan_sip failures from addr, one per second from start.
func attack(addr string, start time.Time, n int) string {
	var b strings.Builder
	for i := range n {
		ts := start.Add(time.Duration(i) * time.Second).Format(time.DateTime)
		b.WriteString("[" + ts + "] NOTICE[1234] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for '" + addr + ":5060' - Wrong password\n")
	}
	return b.String()
}

var start = time.Date(2026, 11, 26, 10, 0, 0, 0, time.Local)

func TestCheck(t *testing.T) {
	good := writeFile(t, "good.toml", "[engine]\nmax_tracked = 500\n")
	if out, errOut, code := run(t, "", "check", "-c", good); code != 0 || !strings.Contains(out, "OK (1 source, 2 rules)") {
		t.Errorf("check good: %d %q %q", code, out, errOut)
	}
	bad := writeFile(t, "bad.toml", "[engine]\nmax_tracked = 500\nmax_trakced = 5\n")
	_, errOut, code := run(t, "", "check", "-c", bad)
	if code != 1 || !strings.Contains(errOut, bad+":3: engine.max_trakced: unknown key") {
		t.Errorf("check bad: %d %q", code, errOut)
	}
	if out, _, code := run(t, "", "check"); code != 0 || !strings.Contains(out, "built-in config: OK") {
		t.Errorf("check without -c: %d %q", code, out)
	}
	if _, errOut, code := run(t, "", "check", "-c", "/nonexistent/rules.toml"); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("check missing: %d %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"scan"}, {"scan", "--nope", "x"}, {"check", "extra"}, {"scan", "--parser", "nope", "x"}} {
		if _, errOut, code := run(t, "", args...); code != 2 || !strings.Contains(errOut, "Error:") {
			t.Errorf("%q: exit %d, %q; want 2", args, code, errOut)
		}
	}
	if out, _, code := run(t, "", "version"); code != 0 || !strings.HasPrefix(out, "sipguard ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestScanBans(t *testing.T) {
	log := writeFile(t, "messages.log", attack("198.51.100.7", start, 5)+attack("198.51.100.8", start, 4)+attack("192.0.2.10", start, 9))
	out, errOut, code := run(t, "", "scan", log)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "address") || !strings.HasPrefix(lines[1], "198.51.100.7 ") ||
		!strings.Contains(lines[1], "burst") || !strings.HasSuffix(lines[1], "1h") {
		t.Errorf("output:\n%s", out)
	}
	// 192.0.2.10 is this host's own address (allow.self).
	for _, want := range []string{"18 lines", "18 events", "1 bans", "9 allowlisted"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("summary lacks %q:\n%s", want, errOut)
		}
	}
}

func TestScanJSON(t *testing.T) {
	log := writeFile(t, "messages.log", attack("198.51.100.7", start, 6)+
		"[2026-11-26 10:00:09] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:100@203.0.113.10>' failed for '[2001:db8:bad::66]:5060' (callid: x) - Failed to authenticate\n")
	out, _, code := run(t, "", "scan", "--json", log)
	if code != 0 {
		t.Fatal(code)
	}
	var b map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &b); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	want := map[string]any{"ip": "198.51.100.7", "prefix": "198.51.100.7/32", "rule": "burst", "count": 5.0, "ban_for": 3600.0, "offences": 0.0}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("%s = %v; want %v", k, b[k], v)
		}
	}
	first, _ := time.Parse(time.RFC3339, b["first"].(string))
	last, _ := time.Parse(time.RFC3339, b["last"].(string))
	if !first.Equal(start) || !last.Equal(start.Add(4*time.Second)) {
		t.Errorf("first %v last %v", b["first"], b["last"])
	}

	// --events --json: one object per event with the documented fields.
	out, _, _ = run(t, "", "scan", "--events", "--json", log)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d events:\n%s", len(lines), out)
	}
	var ev map[string]any
	json.Unmarshal([]byte(lines[6]), &ev)
	wantEv := map[string]any{"ip": "2001:db8:bad::66", "port": 5060.0, "kind": "auth_failed", "service": "pjsip",
		"user": "100", "parser": "asterisk", "source": log, "line": 7.0}
	for k, v := range wantEv {
		if ev[k] != v {
			t.Errorf("event %s = %v; want %v", k, ev[k], v)
		}
	}
	if _, ok := ev["time"]; !ok || len(ev) != 9 {
		t.Errorf("event fields: %v", ev)
	}
}

// TestScanSources: a configured path uses its source's name, parser and
// zone; several files merge in time order; stdin and gzip work.
func TestScanSources(t *testing.T) {
	dir := t.TempDir()
	// Rotated logs: the older half in messages.log.1 (gzip), the newer in messages.log.
	older := attack("198.51.100.7", start, 3)
	newer := attack("198.51.100.7", start.Add(3*time.Second), 2)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(older))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "messages.log.1.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "messages.log"), []byte(newer), 0o644)
	cfg := writeFile(t, "rules.toml", `[[source]]
name = "pbx"
path = "`+filepath.Join(dir, "messages.log")+`"
parser = "asterisk"
`)
	// Newer file first on the command line: the merge still finds the 5 in a minute.
	out, errOut, code := run(t, "", "scan", "-c", cfg, "--json", filepath.Join(dir, "messages.log"), filepath.Join(dir, "messages.log.1.gz"))
	if code != 0 || !strings.Contains(out, `"rule":"burst"`) || !strings.Contains(errOut, "pbx (asterisk): 2 lines") {
		t.Errorf("rotated files: %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = run(t, older+newer, "scan", "-c", cfg, "--json", "-")
	if code != 0 || !strings.Contains(out, `"rule":"burst"`) {
		t.Errorf("stdin: %d %s", code, out)
	}
	out, _, _ = run(t, older, "scan", "-c", cfg, "--events", "--json", "-")
	if !strings.Contains(out, `"source":"stdin"`) {
		t.Errorf("stdin source name: %s", out)
	}
	if _, errOut, code := run(t, "", "scan", filepath.Join(dir, "absent.log")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: %d %s", code, errOut)
	}
}

// TestScanInputsOnce: a log given twice (by another path, a link, a glob
// overlapping a path, stdin twice) is refused: its lines would count
// twice, and three failures would ban as six (issue 11's attack review).
func TestScanInputsOnce(t *testing.T) {
	log := writeFile(t, "three.log", attack("198.51.100.7", start, 3))
	link := filepath.Join(filepath.Dir(log), "link.log")
	if err := os.Symlink(log, link); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "", "scan", "--parser", "asterisk", log)
	if code != 0 || strings.Contains(out, "198.51.100.7") {
		t.Fatalf("once: exit %d, bans %q %s", code, out, errOut)
	}
	dot := filepath.Join(filepath.Dir(log), ".", "three.log")
	for _, args := range [][]string{{log, log}, {log, dot}, {log, link}, {"-", "-"}} {
		out, errOut, code := run(t, attack("198.51.100.7", start, 3), append([]string{"scan", "--parser", "asterisk"}, args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "given twice") && !strings.Contains(errOut, "are the same file") {
			t.Errorf("%v: exit %d, out %q, err %q; want refused", args, code, out, errOut)
		}
	}
}

// TestScanRotatedZone: a rotated copy of a configured source is read in
// the source's zone, as its live log is; in the host's zone its times
// would land hours off the live log's, and failures hours apart would
// count together.
func TestScanRotatedZone(t *testing.T) {
	dir := t.TempDir()
	zone := "Asia/Tokyo"
	if _, off := time.Now().In(time.Local).Zone(); off == 9*3600 {
		zone = "America/New_York"
	}
	loc, err := time.LoadLocation(zone) // the config needs the zone too
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, loc)
	for _, name := range []string{"messages.1", "messages-20261126.gz", "messages.2.gz"} {
		path := filepath.Join(dir, name)
		data := []byte(attack("198.51.100.7", at, 1))
		if strings.HasSuffix(name, ".gz") {
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(data)
			zw.Close()
			data = gz.Bytes()
		}
		os.WriteFile(path, data, 0o644)
		cfg := writeFile(t, "rules.toml", `[[source]]
name = "pbx"
path = "`+filepath.Join(dir, "messages")+`"
parser = "asterisk"
timezone = "`+zone+`"
`)
		out, errOut, code := run(t, "", "scan", "-c", cfg, "--events", "--json", path)
		var ev struct{ Time time.Time }
		if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &ev) != nil {
			t.Fatalf("%s: exit %d: %s %s", name, code, out, errOut)
		}
		if !ev.Time.Equal(at) {
			t.Errorf("%s: event at %v; want %v (the source's zone)", name, ev.Time, at)
		}
	}
}

func TestRotationOf(t *testing.T) {
	for _, tc := range []struct {
		file string
		want bool
	}{
		{"/var/log/asterisk/messages.1", true},
		{"/var/log/asterisk/messages.12.gz", true},
		{"/var/log/asterisk/messages-20261127", true},
		{"/var/log/asterisk/messages-20261127.gz", true},
		{"/var/log/asterisk/messages_1764237600", true},
		{"/var/log/asterisk/./messages.1", true},
		{"/var/log/asterisk/messages", false}, // the live log: samePath's
		{"/var/log/asterisk/messages.old", false},
		{"/var/log/asterisk/messages2", false},
		{"/var/log/asterisk/messages.", false},
		{"/var/log/asterisk/full.1", false},
		{"/var/log/other/messages.1", false},
		{"messages.1", false}, // here, not in /var/log/asterisk
	} {
		if got := rotationOf("/var/log/asterisk/messages", tc.file); got != tc.want {
			t.Errorf("rotationOf(%q) = %v; want %v", tc.file, got, tc.want)
		}
	}
	if rotationOf("/var/log/asterisk/", "/var/log/asterisk/.1") {
		t.Error("a directory's path has no rotated copies")
	}
	// A source configured at the rotated copy's own path wins over the
	// source it is a rotation of, whatever their order.
	dir := t.TempDir()
	for _, order := range [][2]string{{"messages", "messages.1"}, {"messages.1", "messages"}} {
		os.WriteFile(filepath.Join(dir, "messages.1"), []byte(attack("198.51.100.7", start, 1)), 0o644)
		cfg := writeFile(t, "rules.toml", fmt.Sprintf(`[[source]]
name = "%[1]s"
path = "%[3]s/%[1]s"
parser = "asterisk"
timezone = "%[4]s"

[[source]]
name = "%[2]s"
path = "%[3]s/%[2]s"
parser = "asterisk"
timezone = "%[5]s"
`, order[0], order[1], dir, map[bool]string{true: "Asia/Tokyo", false: "UTC"}[order[0] == "messages"], map[bool]string{true: "UTC", false: "Asia/Tokyo"}[order[0] == "messages"]))
		out, errOut, _ := run(t, "", "scan", "-c", cfg, "--events", "--json", filepath.Join(dir, "messages.1"))
		if !strings.Contains(out, `"source":"messages.1"`) || !strings.Contains(out, `"time":"2026-11-26T10:00:00`) {
			t.Errorf("order %v: %s %s", order, out, errOut)
		}
	}
	// A relative path in the live log's directory.
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	if !rotationOf(filepath.Join(wd, "messages"), "messages.1") || !rotationOf("messages", filepath.Join(wd, "messages.1")) {
		t.Error("a relative rotated copy in the live log's directory not seen as one")
	}
}

// TestScanMix replays a generated mix and checks that scan finds exactly
// its failure lines and its attackers: nothing missed, nothing invented.
func TestScanMix(t *testing.T) {
	var buf bytes.Buffer
	truth, err := logmix.Generate(&buf, logmix.Options{Lines: 50_000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	log := writeFile(t, "mix.log", buf.String())
	cfg := writeFile(t, "rules.toml", "[allow]\nself = false\n")
	out, errOut, code := run(t, "", "scan", "-c", cfg, "--events", "--json", log)
	if code != 0 {
		t.Fatal(errOut)
	}
	ips := map[string]bool{}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			IP   string `json:"ip"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == "auth_succeeded" {
			continue // the mix's successful logins
		}
		ips[ev.IP] = true
		n++
	}
	if n != truth.Failures || len(ips) != truth.Attackers {
		t.Errorf("found %d events from %d addresses; the mix has %d failures from %d attackers", n, len(ips), truth.Failures, truth.Attackers)
	}
	if !strings.Contains(errOut, " 0 dropped lines") {
		t.Errorf("dropped lines in a clean mix:\n%s", errOut)
	}
}

// TestScanTimestampless: journal lines without a date take the time of the
// previous dated line, so a burst in them is still a burst.
func TestScanTimestampless(t *testing.T) {
	var b strings.Builder
	b.WriteString("[2026-11-26 09:00:00] NOTICE[1] chan_sip.c: Peer '100' is now Reachable. (1ms / 2000ms)\n")
	for range 5 {
		b.WriteString("NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '<sip:1@203.0.113.10>' failed for '198.51.100.7:5060' - Wrong password\n")
	}
	out, _, _ := run(t, "", "scan", "--json", writeFile(t, "journal.log", b.String()))
	if !strings.Contains(out, `"rule":"burst"`) {
		t.Errorf("no ban: %s", out)
	}
}

// TestScanCustomParser: a [[parser]] of the config reads a log.
func TestScanCustomParser(t *testing.T) {
	cfg := writeFile(t, "rules.toml", `
[[parser]]
name = "webpanel"
[[parser.pattern]]
kind = "admin_auth_failed"
service = "gui"
regex = '^(?P<time>\S+ \S+) login failed for (?P<user>\S*) from (?P<ip>[0-9a-fA-F:.]+)$'
example = "2026-11-26 10:00:00 login failed for admin from 198.51.100.7"
`)
	var b strings.Builder
	for i := range 5 {
		b.WriteString("2026-11-26 10:00:0" + string(rune('0'+i)) + " login failed for admin from 198.51.100.7\n")
	}
	b.WriteString("2026-11-26 10:00:09 login failed for x from 203.0.113.66 from 198.51.100.8\n") // not a match: no ban of .66
	log := writeFile(t, "panel.log", b.String())
	out, errOut, code := run(t, "", "scan", "-c", cfg, "--parser", "webpanel", "--json", log)
	if code != 0 || !strings.Contains(out, `"ip":"198.51.100.7"`) || strings.Contains(out, "203.0.113.66") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, _ = run(t, "", "scan", "-c", cfg, "--parser", "webpanel", "--events", "--json", log)
	if !strings.Contains(out, `"service":"gui"`) || !strings.Contains(out, `"kind":"admin_auth_failed"`) {
		t.Errorf("events: %s", out)
	}
}

// TestCLIConventions: help per command on stdout, --version, did-you-mean,
// -c before the command, "--" before arguments that look like flags, flags
// shown as people type them.
func TestCLIConventions(t *testing.T) {
	for _, args := range [][]string{{"help", "scan"}, {"scan", "--help"}, {"scan", "-h"}} {
		out, errOut, code := run(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: sipguard scan ") || errOut != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want the usage on stdout", args, code, out, errOut)
		}
		if !strings.Contains(out, "\n  --json\n") || !strings.Contains(out, "\n  -c FILE\n") {
			t.Errorf("%q: flags not shown as typed (--json, -c FILE):\n%s", args, out)
		}
	}
	for _, args := range [][]string{{"--version"}, {"-V"}} {
		if out, _, code := run(t, "", args...); code != 0 || !strings.HasPrefix(out, "sipguard ") {
			t.Errorf("%q: %d %q", args, code, out)
		}
	}
	if _, errOut, code := run(t, "", "stauts"); code != 2 || !strings.Contains(errOut, `did you mean "status"?`) {
		t.Errorf("stauts: %d %q", code, errOut)
	}
	if _, errOut, code := run(t, "", "scan", "--jsn", "x.log"); code != 2 || !strings.Contains(errOut, "Try: sipguard help scan") {
		t.Errorf("a mistake names the command's help: %d %q", code, errOut)
	}
	// -c before the command is the config of commands given none.
	bad := writeFile(t, "bad.toml", "[engine]\nmax_trakced = 5\n")
	if _, errOut, code := run(t, "", "-c", bad, "check"); code != 1 || !strings.Contains(errOut, "engine.max_trakced") {
		t.Errorf("-c FILE check: %d %q", code, errOut)
	}
	if _, errOut, code := run(t, "", "--config="+bad, "check"); code != 1 || !strings.Contains(errOut, "engine.max_trakced") {
		t.Errorf("--config=FILE check: %d %q", code, errOut)
	}
	good := writeFile(t, "good.toml", "[engine]\nmax_tracked = 500\n")
	if out, _, code := run(t, "", "-c", bad, "check", "-c", good); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("the command's own -c wins: %d %q", code, out)
	}
	// "--": a file named like a flag.
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("-a.log", []byte(attack("198.51.100.7", start, 1)), 0o644)
	os.WriteFile("-b.log", []byte(attack("198.51.100.8", start, 1)), 0o644)
	out, errOut, code := run(t, "", "scan", "--events", "--parser", "asterisk", "--", "-a.log", "-b.log")
	if code != 0 || !strings.Contains(out, "198.51.100.7") || !strings.Contains(out, "198.51.100.8") {
		t.Errorf("scan -- -a.log -b.log: %d %q %q", code, out, errOut)
	}
}

// TestJournalPriorities: under systemd (JOURNAL_STREAM names stderr) each
// JSON log line starts with its syslog priority, which journald turns into
// the entry's priority (journalctl -p warning).
func TestJournalPriorities(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	log := newLogger(f, "debug")
	log.Debug().Msg("d")
	log.Info().Msg("i")
	log.Warn().Msg("w")
	log.Error().Msg("e")
	log.Log().Msg("none")
	data, _ := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	want := []string{`<7>{"level":"debug"`, `<6>{"level":"info"`, `<4>{"level":"warn"`, `<3>{"level":"error"`, `<6>{`}
	if len(lines) != len(want) {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q; want it to start with %q", i, lines[i], w)
		}
	}
	// Another stream (a file, a pipe to something else): plain JSON.
	t.Setenv("JOURNAL_STREAM", "1:2")
	g, _ := os.Create(filepath.Join(t.TempDir(), "other"))
	defer g.Close()
	lg := newLogger(g, "info")
	lg.Warn().Msg("w")
	if data, _ := os.ReadFile(g.Name()); !strings.HasPrefix(string(data), `{"level":"warn"`) {
		t.Errorf("not the journal's stream: %q", data)
	}
	zerolog.SetGlobalLevel(zerolog.InfoLevel)
}

// TestLockoutWarnings: check and run warn when the SSH client or a
// default gateway could be banned.
func TestLockoutWarnings(t *testing.T) {
	check := func(env map[string]string, gws []string, cfg string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		m := &Main{
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, ConfigPath: "/nonexistent", Now: time.Now,
			HostAddrs: func() ([]netip.Prefix, error) { return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil },
			Getenv:    func(k string) string { return env[k] },
			Gateways: func() ([]netip.Addr, error) {
				var out []netip.Addr
				for _, g := range gws {
					out = append(out, netip.MustParseAddr(g))
				}
				return out, nil
			},
		}
		args := []string{"check"}
		if cfg != "" {
			args = append(args, "-c", writeFile(t, "rules.toml", cfg))
		}
		if code := m.Exit(m.Run(context.Background(), args)); code != 0 {
			t.Fatalf("check: %d %s", code, errOut.String())
		}
		// Without the warnings about source logs (the built-in config's
		// is missing here): TestCheckSources has them.
		var lockout strings.Builder
		for line := range strings.Lines(errOut.String()) {
			if !strings.HasPrefix(line, "warning: source ") {
				lockout.WriteString(line)
			}
		}
		return lockout.String()
	}
	got := check(map[string]string{"SSH_CONNECTION": "203.0.113.5 52000 192.0.2.10 22"}, []string{"192.0.2.1", "fe80::1"}, "")
	for _, want := range []string{"your SSH client 203.0.113.5 is not in [allow]", "default gateway 192.0.2.1 is not", "default gateway fe80::1 is not"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if got := check(map[string]string{"SSH_CLIENT": "::ffff:203.0.113.5 52000 22"}, nil, ""); !strings.Contains(got, "SSH client 203.0.113.5 ") {
		t.Errorf("SSH_CLIENT, mapped: %q", got)
	}
	allowAll := "[allow]\naddresses = [\"203.0.113.0/24\", \"192.0.2.1\", \"fe80::/10\"]\n"
	if got := check(map[string]string{"SSH_CONNECTION": "203.0.113.5 52000 192.0.2.10 22"}, []string{"192.0.2.1", "fe80::1"}, allowAll); got != "" {
		t.Errorf("allowlisted, still warned: %q", got)
	}
	if got := check(nil, nil, ""); got != "" {
		t.Errorf("no SSH, no gateway: %q", got)
	}
}

// TestGatewaysFromProc: the default gateways read from /proc are the ones
// `ip route` shows.
func TestGatewaysFromProc(t *testing.T) {
	gws, err := Gateways()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, family := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", family, "route", "show", "default").Output()
		if err != nil {
			testutil.Missing(t, "ip route: %v (apt-get install iproute2; .ci/run does)", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "default" && f[1] == "via" {
				want = append(want, f[2])
			}
		}
	}
	var got []string
	for _, g := range gws {
		got = append(got, g.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("gateways %v; ip route shows %v", got, want)
	}
}
