//go:build unix

package notify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/notify"
)

// script writes body to a shell script in dir and returns its path. It is
// run as "/bin/sh PATH": not executing a file just written avoids ETXTBSY
// when another test forks meanwhile.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordScript records its arguments after the first (each followed by a
// NUL) in $1.args, its standard input in $1.stdin, its environment in
// $1.env and its directory in $1.pwd.
const recordScript = `out=$1
shift
for a in "$@"; do printf '%s\0' "$a"; done > "$out.args"
cat > "$out.stdin"
env > "$out.env"
pwd > "$out.pwd"
`

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCommand_Argv(t *testing.T) {
	dir := t.TempDir()
	rec := script(t, dir, "rec.sh", recordScript)
	out := filepath.Join(dir, "out")
	pwned := filepath.Join(dir, "PWNED")
	t.Setenv("SIPGUARD_TEST_LEAK", "leaked")

	d := newDispatcher(t, nil, []notify.Command{
		{Name: "rec", Argv: []string{"/bin/sh", rec, out,
			"{reason}", "--user={user}", "{target}", "x{type}y{count}z{offences}", "{expires}", "{time}",
			"{rule}", "{addr}", "{source}", "{host}", "cc={country}", `{"a":1} {} { x }`, ""}},
		{Name: "only-compromise", Argv: []string{"/bin/sh", rec, filepath.Join(dir, "never")}, Events: []string{"compromise"}},
	})
	run(t, d)

	ev := notify.Event{
		Type:   "ban",
		Target: "2001:db8::/64",
		Addr:   "2001:db8::7",
		// What an attacker may put in a SIP user name or a log line.
		Reason:   `$(touch ` + pwned + `); reboot "dq" 'sq'  two  spaces {target} ` + "`touch " + pwned + "`",
		User:     "100\"1'; touch " + pwned + " #\n|& >" + pwned,
		Rule:     "asterisk\x00nul",
		Source:   "pbx security",
		Count:    5,
		Offences: 2,
		Time:     fixedTime,
		Expires:  expires,
		Host:     "pbx1",
		Country:  "DE",
	}
	d.Notify(ev)
	if s := waitDone(t, d, "rec", 1); s.Sent != 1 {
		t.Fatalf("got %+v; want Sent 1", s)
	}

	got := strings.Split(strings.TrimSuffix(readFile(t, out+".args"), "\x00"), "\x00")
	want := []string{
		ev.Reason,
		"--user=" + ev.User,
		"2001:db8::/64",
		"xbany5z2",
		"2026-11-26T11:00:00Z",
		"2026-11-26T10:00:00Z",
		"asterisknul", // execve cannot pass a NUL
		"2001:db8::7",
		"pbx security",
		"pbx1",
		"cc=DE",
		`{"a":1} {} { x }`,
		"",
	}
	if strings.Join(got, "\n---\n") != strings.Join(want, "\n---\n") {
		t.Errorf("arguments:\ngot  %q\nwant %q", got, want)
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (err %v): a shell ran the event's text", pwned, err)
	}

	wantStdin, _ := json.Marshal(ev)
	if got := readFile(t, out+".stdin"); got != string(wantStdin)+"\n" {
		t.Errorf("stdin:\ngot  %s\nwant %s", got, wantStdin)
	}

	env := readFile(t, out+".env")
	for _, v := range []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"SIPGUARD_EVENT_TYPE=ban",
		"SIPGUARD_EVENT_TARGET=2001:db8::/64",
		"SIPGUARD_EVENT_EXPIRES=2026-11-26T11:00:00Z",
		"SIPGUARD_EVENT_COUNT=5",
	} {
		if !strings.Contains(env, v+"\n") {
			t.Errorf("environment lacks %s:\n%s", v, env)
		}
	}
	if strings.Contains(env, "SIPGUARD_TEST_LEAK") {
		t.Errorf("sipguard's environment leaked into the command:\n%s", env)
	}
	if got := readFile(t, out+".pwd"); got != "/\n" {
		t.Errorf("ran in %q; want /", got)
	}

	if s := stats(t, d, "only-compromise"); s != (notify.TargetStats{Name: "only-compromise", Kind: "command"}) {
		t.Errorf("a ban reached a compromise-only command: %+v", s)
	}
}

// TestCommand_OptionLike: an argument that would begin with an Event's
// text starting with "-" or "+" gets a space in front, so that no program
// reads it as an option; text after a literal start, the JSON on stdin
// and the environment are unchanged.
func TestCommand_OptionLike(t *testing.T) {
	dir := t.TempDir()
	rec := script(t, dir, "rec.sh", recordScript)
	out := filepath.Join(dir, "out")
	d := newDispatcher(t, nil, []notify.Command{{Name: "rec", Argv: []string{"/bin/sh", rec, out,
		"{user}", "{reason}", "{rule}", "{addr}{user}", "--user={user}", "{source}", "--", "{user}"}}})
	run(t, d)
	ev := notify.Event{Type: "compromise", Target: "198.51.100.7", User: "-f/etc/shadow", Reason: "--help", Rule: "+short", Source: "pbx-1"}
	d.Notify(ev)
	if s := waitDone(t, d, "rec", 1); s.Sent != 1 {
		t.Fatalf("got %+v; want Sent 1", s)
	}
	got := strings.Split(strings.TrimSuffix(readFile(t, out+".args"), "\x00"), "\x00")
	want := []string{" -f/etc/shadow", " --help", " +short", " -f/etc/shadow", "--user=-f/etc/shadow", "pbx-1", "--", " -f/etc/shadow"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("arguments:\ngot  %q\nwant %q", got, want)
	}
	if env := readFile(t, out+".env"); !strings.Contains(env, "SIPGUARD_EVENT_USER=-f/etc/shadow\n") {
		t.Errorf("environment:\n%s", env)
	}
	if stdin := readFile(t, out+".stdin"); !strings.Contains(stdin, `"user":"-f/etc/shadow"`) {
		t.Errorf("stdin: %s", stdin)
	}
}

// TestCommand_Logger: with a real logger, a user name "-f FILE" once
// made logger read a 0600 file into the log. The message is the name.
func TestCommand_Logger(t *testing.T) {
	testutil.NeedCommands(t, "util-linux", "logger")
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("SECRET-PASSWORD\n"), 0o600)
	sock := filepath.Join(dir, "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := newDispatcher(t, nil, []notify.Command{{Name: "syslog", Argv: []string{logger, "-u", sock, "-t", "sipguard", "{user}"}}})
	run(t, d)
	d.Notify(notify.Event{Type: "compromise", Target: "198.51.100.7", User: "-f" + secret})
	if s := waitDone(t, d, "syslog", 1); s.Sent != 1 {
		t.Fatalf("got %+v; want Sent 1", s)
	}
	conn.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if msg := string(buf[:n]); strings.Contains(msg, "SECRET") || !strings.HasSuffix(msg, "sipguard:  -f"+secret) {
		t.Errorf("logged %q; want the user name, not the file", msg)
	}
}

func TestCommand_ExitStatus(t *testing.T) {
	dir := t.TempDir()
	fail := script(t, dir, "fail.sh", "echo to stdout\necho no route to pbx >&2\nexit 3\n")
	d := newDispatcher(t, nil, []notify.Command{{Name: "c", Argv: []string{"/bin/sh", fail}}})
	run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	s := waitDone(t, d, "c", 1)
	if want := "exit status 3: to stdout\nno route to pbx"; s.Failed != 1 || s.LastError != want || s.LastErrorTime.IsZero() {
		t.Errorf("got %+v; want Failed 1, LastError %q", s, want)
	}
}

func TestCommand_OutputLimit(t *testing.T) {
	dir := t.TempDir()
	noisy := script(t, dir, "noisy.sh", `i=0
while [ $i -lt 3000 ]; do echo "line $i of noise"; i=$((i+1)); done
echo the reason >&2
exit 1
`)
	d := newDispatcher(t, nil, []notify.Command{{Name: "c", Argv: []string{"/bin/sh", noisy}}})
	run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	s := waitDone(t, d, "c", 1)
	const prefix = "exit status 1: …"
	if !strings.HasPrefix(s.LastError, prefix) || !strings.HasSuffix(s.LastError, "line 2999 of noise\nthe reason") {
		t.Errorf("LastError %.80q…; want %q, then the end of the output", s.LastError, prefix)
	}
	if n := len(s.LastError) - len(prefix); n > 4096 {
		t.Errorf("LastError keeps %d bytes of output; want at most 4096", n)
	}
}

func TestCommand_NotFound(t *testing.T) {
	d := newDispatcher(t, nil, []notify.Command{{Name: "c", Argv: []string{"/nonexistent/notify-admin"}}})
	run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	if s := waitDone(t, d, "c", 1); s.Failed != 1 || !strings.Contains(s.LastError, "no such file") {
		t.Errorf("got %+v; want a failure saying no such file", s)
	}
}

// sleepScript starts "sleep 60" as a child, writes its pid to $1 and waits
// for it, as a script calling a slow program would.
const sleepScript = `echo started
sleep 60 &
echo $! > "$1"
wait
`

// readPid waits for sleepScript to write the pid of its sleep.
func readPid(t *testing.T, pidFile string) int {
	t.Helper()
	var pid int
	waitFor(t, "the pid file", func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0 && bytes.HasSuffix(b, []byte("\n"))
	})
	return pid
}

// processGone waits until the process pid has ended, failing the test
// after a while.
func processGone(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, "sleep (pid "+strconv.Itoa(pid)+") to be killed", func() bool {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		// Killed but not reaped yet, where nothing reaps orphans.
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return errors.Is(err, os.ErrNotExist)
		}
		_, after, _ := bytes.Cut(stat, []byte(") "))
		return bytes.HasPrefix(after, []byte("Z"))
	})
}

func TestCommand_Timeout(t *testing.T) {
	dir := t.TempDir()
	slow := script(t, dir, "slow.sh", sleepScript)
	pidFile := filepath.Join(dir, "pid")
	d := newDispatcher(t, nil, []notify.Command{{Name: "c", Argv: []string{"/bin/sh", slow, pidFile}, Timeout: 200 * time.Millisecond}})
	run(t, d)
	start := time.Now()
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	s := waitDone(t, d, "c", 1)
	took := time.Since(start)
	t.Logf("killed %v after Notify (timeout 200ms)", took)
	// On a starved machine the shell may be killed before it printed
	// anything.
	if s.Failed != 1 || s.LastError != "killed after 200ms: started" && s.LastError != "killed after 200ms" {
		t.Errorf("got %+v; want Failed 1, LastError %q", s, "killed after 200ms: started")
	}
	if took > 5*time.Second {
		t.Errorf("took %v; want about the 200ms timeout", took)
	}
	// The script's child is killed with it, not left running. (If the
	// shell was killed before it wrote the pid, TestRun_StuckCommand
	// still checks this.)
	if b, _ := os.ReadFile(pidFile); bytes.HasSuffix(b, []byte("\n")) {
		processGone(t, readPid(t, pidFile))
	} else {
		t.Logf("killed before it started sleep")
	}
}

func TestRun_StuckCommand(t *testing.T) {
	dir := t.TempDir()
	slow := script(t, dir, "slow.sh", sleepScript)
	pidFile := filepath.Join(dir, "pid")
	d := newDispatcher(t, nil, []notify.Command{{Name: "c", Argv: []string{"/bin/sh", slow, pidFile}, Timeout: time.Hour}})
	r := run(t, d)
	d.Notify(notify.Event{Type: "ban", Target: "192.0.2.1"})
	pid := readPid(t, pidFile) // the command runs
	took := r.stop(t)
	t.Logf("Run returned %v after cancel", took)
	if took > 5*time.Second {
		t.Errorf("Run took %v to return; want prompt", took)
	}
	if s := stats(t, d, "c"); s.Dropped != 1 || s.Failed != 0 {
		t.Errorf("got %+v; want Dropped 1", s)
	}
	processGone(t, pid)
}
