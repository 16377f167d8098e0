package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/internal/testutil"
)

// freePort returns a loopback address nothing listens on (for a moment).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// dryDaemon runs `sipguard run --dry-run -c config` in this process until
// the test ends, and returns its log.
func dryDaemon(t *testing.T, path string) *testutil.Buffer {
	t.Helper()
	logs := &testutil.Buffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: logs, Stderr: logs, ConfigPath: "/nonexistent", Now: time.Now, HostAddrs: config.HostAddrs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"run", "--dry-run", "-c", path}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v\n%s", err, logs)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("run did not stop\n%s", logs)
		}
	})
	return logs
}

// opsConfig writes a config for dryDaemon with extra TOML appended.
func opsConfig(t *testing.T, extra string) (config, logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "messages.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	config = writeFile(t, "rules.toml", `
[daemon]
state_dir = "`+filepath.Join(dir, "state")+`"
socket = "`+filepath.Join(dir, "sipguard.sock")+`"
[allow]
addresses = ["127.0.0.0/8"]
self = false
[[source]]
name = "pbx"
path = "`+logPath+`"
parser = "asterisk"
start = "beginning"
[[rule]]
name = "burst"
max_retry = 5
find_time = "1m"
ban_time = "1h"
`+extra)
	return config, logPath
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func get(url string) (string, error) {
	res, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// TestRunMetrics: the daemon serves Prometheus metrics on [metrics]
// listen, and they follow what it does.
func TestRunMetrics(t *testing.T) {
	addr := freePort(t)
	config, logPath := opsConfig(t, "[metrics]\nlisten = \""+addr+"\"\n")
	logs := dryDaemon(t, config)
	var out string
	if !soon(func() bool {
		var err error
		out, err = get("http://" + addr + "/metrics")
		return err == nil && strings.Contains(out, "sipguard_up 1")
	}) {
		t.Fatalf("no metrics: %s\n%s", out, logs)
	}
	appendTo(t, logPath, attack("198.51.100.7", time.Now().Add(-10*time.Second), 5))
	want := []string{
		`sipguard_bans_total{rule="burst"} 1`,
		"sipguard_ban_latency_seconds_count 1",
		`sipguard_lines_total{parser="asterisk",source="pbx"} 5`,
		`sipguard_events_total{kind="auth_failed",parser="asterisk",source="pbx"} 5`,
		"sipguard_bans_in_force 1",
	}
	if !soon(func() bool {
		out, _ = get("http://" + addr + "/metrics")
		for _, w := range want {
			if !strings.Contains(out, w+"\n") {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("metrics after a ban:\n%s\nlog:\n%s", out, logs)
	}
	// A busy metrics address is an error at start, not later.
	_, errOut, code := run(t, "", "run", "--dry-run", "-c", config)
	if code == 0 || !strings.Contains(errOut, "metrics") {
		t.Errorf("second daemon on the same metrics address: exit %d %s", code, errOut)
	}
}

// soon waits up to 10 s for cond.
func soon(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// ctlNow runs a sipguard command in process with the real clock.
func ctlNow(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, ConfigPath: "/nonexistent", Now: time.Now, HostAddrs: config.HostAddrs}
	code := m.Exit(m.Run(context.Background(), args))
	return out.String(), errOut.String(), code
}

// TestExportImport: bans move between daemons, and from fail2ban.
func TestExportImport(t *testing.T) {
	a, _ := opsConfig(t, "")
	b, _ := opsConfig(t, "")
	logsA, logsB := dryDaemon(t, a), dryDaemon(t, b)
	for _, c := range [][]string{{"-c", a}, {"-c", b}} {
		if !soon(func() bool { _, _, code := ctlNow(t, "", append([]string{"status"}, c...)...); return code == 0 }) {
			t.Fatalf("daemons not up:\n%s\n%s", logsA, logsB)
		}
	}
	for _, args := range [][]string{
		{"ban", "-c", a, "--for", "2h", "--reason", "abuse report", "198.51.100.7"},
		{"ban", "-c", a, "--for", "30m", "203.0.113.0/24"},
		{"ban", "-c", a, "2001:db8:bad::/48"},
	} {
		if out, errOut, code := ctlNow(t, "", args...); code != 0 {
			t.Fatalf("%v: %s %s", args, out, errOut)
		}
	}
	plain, _, code := ctlNow(t, "", "export", "-c", a)
	if code != 0 || !strings.Contains(plain, "198.51.100.7 # manual until ") || !strings.Contains(plain, "# sipguard export") {
		t.Fatalf("export: %d\n%s", code, plain)
	}
	js, _, _ := ctlNow(t, "", "export", "-c", a, "--json")

	// JSON keeps each ban's remaining time and reason.
	out, errOut, code := ctlNow(t, js, "import", "-c", b, "-")
	if code != 0 || !strings.Contains(out, "imported 3: 3 banned, 0 renewed, 0 kept (banned for longer already), 0 refused") {
		t.Fatalf("import json: %d %s %s\n%s", code, out, errOut, logsB)
	}
	listB, _, _ := ctlNow(t, "", "export", "-c", b, "--json")
	var got []struct {
		Target  string
		Reason  string
		Expires time.Time
	}
	if err := json.Unmarshal([]byte(listB), &got); err != nil || len(got) != 3 {
		t.Fatalf("%v %s", err, listB)
	}
	for _, g := range got {
		left := time.Until(g.Expires)
		switch g.Target {
		case "198.51.100.7":
			if left < 119*time.Minute || left > 2*time.Hour || g.Reason != "abuse report" {
				t.Errorf("%s: %v left, reason %q", g.Target, left, g.Reason)
			}
		case "203.0.113.0/24":
			if left < 29*time.Minute || left > 30*time.Minute {
				t.Errorf("%s: %v left", g.Target, left)
			}
		case "2001:db8:bad::/48":
		default:
			t.Errorf("unexpected %s", g.Target)
		}
	}
	// The plain export imports again for 1h: every entry exists; the 30m
	// one is renewed, the two that last longer are kept as they are.
	if out, errOut, code := ctlNow(t, plain, "import", "-c", b, "--for", "1h", "-"); code != 0 || !strings.Contains(out, "0 banned, 1 renewed, 2 kept") {
		t.Errorf("import plain: %d %s %s", code, out, errOut)
	}

	// fail2ban-client banned, with an allowlisted address and one inside
	// a network of the same import.
	f2b := `[{'asterisk': ['192.0.2.1', '2001:db8::1', '127.0.0.1']}, {'sshd': ['198.18.0.0/15', '198.18.3.0/24']}, {'recidive': []}]`
	out, errOut, code = ctlNow(t, f2b, "import", "-c", b, "-")
	if code != 0 || !strings.Contains(out, "imported 5: 3 banned, 0 renewed, 0 kept (banned for longer already), 2 refused") ||
		!strings.Contains(errOut, "127.0.0.1: allowlisted") || !strings.Contains(errOut, "198.18.3.0/24: inside another entry") {
		t.Errorf("import fail2ban: %d %s %s", code, out, errOut)
	}
	// "fail2ban-client get JAIL banip": addresses separated by spaces.
	if out, errOut, code := ctlNow(t, "192.0.2.2 192.0.2.3\n", "import", "-c", b, "--format", "fail2ban", "-"); code != 0 || !strings.Contains(out, "2 banned") {
		t.Errorf("import banip: %d %s %s", code, out, errOut)
	}
	// Inside 198.18.0.0/15, banned above: recorded, and said so.
	if out, errOut, code := ctlNow(t, "", "ban", "-c", b, "198.18.7.0/24"); code != 0 || !strings.Contains(out, "(inside 198.18.0.0/15, which the kernel holds") {
		t.Errorf("ban inside a banned network: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := ctlNow(t, "198.18.9.0/24\n", "import", "-c", b, "-"); code != 0 || !strings.Contains(out, "1 banned") ||
		!strings.Contains(out, "1 of them inside a wider ban in force") {
		t.Errorf("import inside a banned network: %d %s %s", code, out, errOut)
	}
	// Not a list: nothing is banned.
	if _, errOut, code := ctlNow(t, "<html>\n<body>oops</body>\n</html>\n", "import", "-c", b, "-"); code != 1 || !strings.Contains(errOut, "not") {
		t.Errorf("import html: %d %s", code, errOut)
	}
}

// TestImportMany: 10,000 bans in one request, one firewall transaction.
func TestImportMany(t *testing.T) {
	a, _ := opsConfig(t, "")
	logs := dryDaemon(t, a)
	if !soon(func() bool { _, _, code := ctlNow(t, "", "status", "-c", a); return code == 0 }) {
		t.Fatalf("daemon not up:\n%s", logs)
	}
	var b strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&b, "10.%d.%d.%d\n", i>>16&255, i>>8&255, i&255)
	}
	start := time.Now()
	out, errOut, code := ctlNow(t, b.String(), "import", "-c", a, "-")
	took := time.Since(start)
	if code != 0 || !strings.Contains(out, "imported 10000: 10000 banned") {
		t.Fatalf("%d %s %s", code, out, errOut)
	}
	t.Logf("10,000 bans imported in %v", took)
	if n := strings.Count(logs.String(), `"message":"import"`); n != 1 {
		t.Errorf("%d import log lines; want 1", n)
	}
}

// success is an Asterisk SuccessfulAuth security line with a password.
func successLine(addr, user string, at time.Time) string {
	return "[" + at.Format(time.DateTime) + "] SECURITY[1] res_security_log.c: SecurityEvent=\"SuccessfulAuth\",EventTV=\"" +
		at.Format("2006-01-02T15:04:05.000-0700") + "\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"" + user +
		"\",SessionID=\"x\",LocalAddress=\"IPV4/UDP/203.0.113.10/5060\",RemoteAddress=\"IPV4/UDP/" + addr + "/5060\",UsingPassword=\"1\"\n"
}

// TestRunNotify: bans and a compromise reach a webhook and a command; a
// webhook that never answers slows nothing.
func TestRunNotify(t *testing.T) {
	type event struct {
		Type, Target, Addr, Rule, Reason, Source, User, Host string
		Count                                                int
	}
	got := make(chan event, 16)
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev event
		if r.Header.Get("Authorization") != "Bearer s3cret" || json.NewDecoder(r.Body).Decode(&ev) != nil {
			w.WriteHeader(400)
			return
		}
		got <- ev
	}))
	t.Cleanup(live.Close)
	// A webhook that accepts connections and never answers.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	go func() {
		for {
			c, err := dead.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	script, record := hookScript(t, t.TempDir())
	config, logPath := opsConfig(t, `
[compromise]
on_success_after_failures = "alert"
min_failures = 3
[[notify]]
name = "live"
url = "`+live.URL+`"
headers = ["Authorization: Bearer s3cret"]
[[notify]]
name = "dead"
url = "http://`+dead.Addr().String()+`/hook"
timeout = "30s"
[[notify]]
name = "script"
command = ["/bin/sh", "`+script+`", "{type}", "{target}", "{user}"]
events = ["compromise"]
`)
	logs := upDaemon(t, config)
	now := time.Now()
	// 198.51.100.7 is banned; 198.51.100.8 fails 3 times, then logs in.
	appendTo(t, logPath, attack("198.51.100.7", now.Add(-10*time.Second), 5)+attack("198.51.100.8", now.Add(-5*time.Second), 3)+
		successLine("198.51.100.8", "1001", now))
	want := map[string]bool{"ban": false, "compromise": false}
	deadline := time.After(10 * time.Second)
	for !want["ban"] || !want["compromise"] {
		select {
		case ev := <-got:
			switch ev.Type {
			case "ban":
				if ev.Target != "198.51.100.7" || ev.Rule != "burst" || ev.Count != 5 || ev.Source != "pbx" || ev.Host == "" {
					t.Errorf("ban event %+v", ev)
				}
			case "compromise":
				if ev.Addr != "198.51.100.8" || ev.User != "1001" || ev.Count != 3 {
					t.Errorf("compromise event %+v", ev)
				}
			}
			want[ev.Type] = true
		case <-deadline:
			t.Fatalf("events seen %v\n%s", want, logs)
		}
	}
	if !soon(func() bool { b, _ := os.ReadFile(record); return string(b) == "compromise|198.51.100.8|1001|\n" }) {
		b, _ := os.ReadFile(record)
		t.Errorf("command hook got %q\n%s", b, logs)
	}
	// The dead webhook holds its first event; the daemon goes on banning.
	start := time.Now()
	appendTo(t, logPath, attack("198.51.100.9", time.Now().Add(-5*time.Second), 5))
	if !soon(func() bool {
		out, _, _ := ctlNow(t, "", "list", "-c", config)
		return strings.Contains(out, "198.51.100.9")
	}) {
		t.Fatalf("no ban while a webhook hangs:\n%s", logs)
	}
	t.Logf("ban in force %v after its lines, with a webhook hanging", time.Since(start))
	out, _, _ := ctlNow(t, "", "status", "-c", config)
	if !strings.Contains(out, "notify") || !strings.Contains(out, "dead") {
		t.Errorf("status:\n%s", out)
	}
	var st struct {
		Notify []struct {
			Name         string
			Sent, Queued int
		}
	}
	js, _, _ := ctlNow(t, "", "status", "-c", config, "--json")
	json.Unmarshal([]byte(js), &st)
	for _, n := range st.Notify {
		if n.Name == "dead" && (n.Sent != 0 || n.Queued == 0) {
			t.Errorf("dead webhook: %+v", n)
		}
		if n.Name == "live" && n.Sent < 2 {
			t.Errorf("live webhook: %+v", n)
		}
	}
}

// hookScript writes a script for a [[notify]] command that appends its
// arguments, each followed by "|", as a line to record. Run it through
// /bin/sh rather than executed: executing a file this process has just
// written can fail with ETXTBSY when another goroutine forks meanwhile
// (golang.org/issue/22315).
func hookScript(t *testing.T, dir string) (script, record string) {
	t.Helper()
	script, record = filepath.Join(dir, "hook.sh"), filepath.Join(dir, "hook.out")
	if err := os.WriteFile(script, []byte("printf '%s|' \"$@\" >> \""+record+"\"\necho >> \""+record+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return script, record
}

// upDaemon is dryDaemon, once its control socket answers.
func upDaemon(t *testing.T, config string) *testutil.Buffer {
	t.Helper()
	logs := dryDaemon(t, config)
	if !soon(func() bool { _, _, code := ctlNow(t, "", "status", "-c", config); return code == 0 }) {
		t.Fatalf("daemon not up:\n%s", logs)
	}
	return logs
}

// systemdSocket plays systemd for a daemon started by the test: it
// listens on $NOTIFY_SOCKET, with a watchdog of 200 ms (pings, and health
// checks, every 100 ms). The test must not be parallel (t.Setenv).
func systemdSocket(t *testing.T) *net.UnixConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	return conn
}

// TestRunSystemd: under systemd (Type=notify, WatchdogSec) the daemon says
// READY=1 once running and pings the watchdog.
func TestRunSystemd(t *testing.T) {
	conn := systemdSocket(t)
	config, _ := opsConfig(t, "")
	logs := dryDaemon(t, config)
	var got []string
	buf := make([]byte, 512)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(got) < 3; {
		conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	if len(got) < 3 || !strings.HasPrefix(got[0], "READY=1") || got[1] != "WATCHDOG=1" || got[2] != "WATCHDOG=1" {
		t.Fatalf("systemd got %q\n%s", got, logs)
	}
	// Ready means ready: the control socket answers.
	if _, errOut, code := ctlNow(t, "", "status", "-c", config); code != 0 {
		t.Errorf("status after READY=1: %s", errOut)
	}
}

// TestRunFeedHTTP: a [[feed]] served over HTTP is enforced, and a broken
// reply later changes nothing (the loader's own tests cover reloading).
func TestRunFeedHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "; a DROP-style list\n198.18.0.0/15 ; SBL1\n192.0.2.99\n")
	}))
	t.Cleanup(srv.Close)
	config, _ := opsConfig(t, "[[feed]]\nname = \"drop\"\nurl = \""+srv.URL+"/drop.txt\"\ninterval = \"1h\"\n")
	logs := dryDaemon(t, config)
	if !soon(func() bool {
		out, _, _ := ctlNow(t, "", "list", "-c", config)
		return strings.Count(out, "feed:drop") == 2
	}) {
		out, _, _ := ctlNow(t, "", "list", "-c", config)
		t.Fatalf("feed not enforced:\n%s\n%s", out, logs)
	}
	out, _, _ := ctlNow(t, "", "status", "-c", config)
	if !strings.Contains(out, "drop") || !strings.Contains(out, "feed") {
		t.Errorf("status:\n%s", out)
	}
	// A plain export is itself a feed: round trip through the parser.
	exp, _, _ := ctlNow(t, "", "export", "-c", config, "--rule", "feed:drop")
	if !strings.Contains(exp, "198.18.0.0/15 # feed:drop until") || !strings.Contains(exp, "192.0.2.99 # feed:drop") {
		t.Errorf("export:\n%s", exp)
	}
}

// TestWhyCommand: why shows the ban, the counters and the lines, the
// attacker's text quoted (an escape code stays an escape, never reaches
// the terminal).
func TestWhyCommand(t *testing.T) {
	cfg, log := opsConfig(t, "")
	logs := dryDaemon(t, cfg)
	if !soon(func() bool { _, _, code := ctlNow(t, "", "status", "-c", cfg); return code == 0 || code == 3 }) {
		t.Fatalf("daemon did not answer:\n%s", logs)
	}
	var lines strings.Builder
	for i := range 5 {
		ts := time.Now().Add(time.Duration(i) * time.Second).Format(time.DateTime)
		lines.WriteString("[" + ts + "] NOTICE[1] chan_sip.c: Registration from '<sip:\x1b[31mroot@x>' failed for '198.51.100.7:5060' - Wrong password\n")
	}
	appendTo(t, log, lines.String())
	var out string
	if !soon(func() bool {
		out, _, _ = ctlNow(t, "", "why", "-c", cfg, "198.51.100.7")
		return strings.Contains(out, "banned as")
	}) {
		t.Fatalf("why: %q\n%s", out, logs)
	}
	for _, want := range []string{"198.51.100.7: banned as 198.51.100.7 (burst)", "counted as 198.51.100.7; 1 earlier ban", "log lines that led to the ban:", `\x1b[31mroot@x`} {
		if !strings.Contains(out, want) {
			t.Errorf("why lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a raw escape code reached the output:\n%q", out)
	}
	if js, _, code := ctlNow(t, "", "why", "-c", cfg, "--json", "198.51.100.7"); code != 0 || !strings.Contains(js, `"counted_as": "198.51.100.7"`) {
		t.Errorf("why --json: %d %s", code, js)
	}
}
