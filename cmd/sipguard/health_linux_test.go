package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/internal/testutil"
)

// exitCode runs the sipguard binary as cred (nil: as this process) and
// returns its stdout, stderr and exit code.
func exitCode(t *testing.T, cred *syscall.Credential, args ...string) (string, string, int) {
	t.Helper()
	bin := buildSipguard(t)
	if cred != nil {
		os.Chmod(filepath.Dir(bin), 0o755) // made 0700, for root
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	}
	t.Fatalf("run sipguard %s: %v", args, err)
	return "", "", 0
}

// fileSources is the TOML of one file source per name and path, for
// opsConfig's extra.
func fileSources(paths map[string]string) string {
	var b strings.Builder
	for name, path := range paths {
		b.WriteString("[[source]]\nname = \"" + name + "\"\npath = \"" + path + "\"\nparser = \"asterisk\"\nstart = \"beginning\"\n")
	}
	return b.String()
}

// openToAll lets every user reach path: the directories from it up to,
// not including, the temporary directory are opened (t.TempDir makes them
// 0700). The temporary directory itself is never touched.
func openToAll(t *testing.T, path string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(path); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckSources: check warns of each source log it cannot read, with
// its path and why, and fails with --strict. A FIFO is refused without
// being opened (check would hang). Root reads any file, so the permission
// cases run the binary as nobody (the test runs as root in CI).
func TestCheckSources(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A syslog source has no file to check.
	cfg, good := opsConfig(t, fileSources(map[string]string{"gone": filepath.Join(dir, "asterisk", "messages"), "dir": dir, "fifo": fifo})+
		"[[source]]\nname = \"yeastar\"\ntype = \"syslog\"\nparser = \"asterisk\"\nlisten = [\"udp://127.0.0.1:5140\"]\nsenders = [\"192.0.2.1\"]\n")
	wantWarnings := []string{
		"warning: source gone: " + filepath.Join(dir, "asterisk", "messages") + ": missing\n",
		"warning: source dir: " + dir + ": is a directory\n",
		"warning: source fifo: " + fifo + ": not a regular file (a FIFO)\n",
	}
	out, errOut, code := exitCode(t, nil, "check", "-c", cfg)
	if code != exitOK || !strings.Contains(out, cfg+": OK (5 sources, 1 rule)") {
		t.Errorf("check: exit %d, %q %q; want 0 and OK", code, out, errOut)
	}
	for _, w := range wantWarnings {
		if !strings.Contains(errOut, w) {
			t.Errorf("check: stderr %q; want %q", errOut, w)
		}
	}
	if n := strings.Count(errOut, "warning: source "); n != len(wantWarnings) {
		t.Errorf("%d warnings; want %d:\n%s", n, len(wantWarnings), errOut)
	}
	_, errOut, code = exitCode(t, nil, "check", "--strict", "-c", cfg)
	if code != exitError || !strings.Contains(errOut, "Error: 3 logs cannot be read (--strict)") || !strings.Contains(errOut, wantWarnings[0]) {
		t.Errorf("check --strict: exit %d, %q; want 1 and the warnings", code, errOut)
	}
	healthy, _ := opsConfig(t, "")
	if _, errOut, code := exitCode(t, nil, "check", "--strict", "-c", healthy); code != exitOK || strings.Contains(errOut, "warning: source ") {
		t.Errorf("check --strict, every log readable: exit %d, %q", code, errOut)
	}

	testutil.NeedRoot(t, "the permission cases run check as nobody")
	// As nobody: a 0640 log of another user (uid 1), and a readable log in
	// a directory only root may search.
	pdir := t.TempDir()
	private := filepath.Join(pdir, "private.log")
	os.WriteFile(private, []byte("a line\n"), 0o640)
	if err := os.Chown(private, 1, 1); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(pdir, "closed")
	os.Mkdir(closed, 0o700)
	inClosed := filepath.Join(closed, "messages")
	os.WriteFile(inClosed, []byte("a line\n"), 0o644)
	cfg, good = opsConfig(t, fileSources(map[string]string{"private": private, "closed": inClosed}))
	for _, p := range []string{private, cfg, good} {
		openToAll(t, p)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	_, errOut, code = exitCode(t, nobody, "check", "--strict", "-c", cfg)
	for _, w := range []string{
		"warning: source private: " + private + ": permission denied\n",
		"warning: source closed: " + inClosed + ": permission denied\n",
		"Error: 2 logs cannot be read (--strict)",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("check --strict as nobody: stderr %q; want %q", errOut, w)
		}
	}
	if code != exitError {
		t.Errorf("check --strict as nobody: exit %d; want 1", code)
	}
	// Root, as the unit runs it (with CAP_DAC_READ_SEARCH), reads both.
	if _, errOut, code := exitCode(t, nil, "check", "--strict", "-c", cfg); code != exitOK {
		t.Errorf("check --strict as root: exit %d, %q", code, errOut)
	}
}

// TestStatusExitCodes: status exits 0 while every source is read, 3 while
// one is not (naming it), 1 when the daemon is not running.
func TestStatusExitCodes(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "asterisk", "messages")
	cfg, good := opsConfig(t, fileSources(map[string]string{"gui": gone}))

	_, errOut, code := exitCode(t, nil, "status", "-c", cfg)
	if code != exitError || !strings.Contains(errOut, "Error: sipguard is not running (no daemon on") {
		t.Errorf("status, no daemon: exit %d, %q; want 1, not running", code, errOut)
	}

	logs := dryDaemon(t, cfg)
	if !soon(func() bool { _, _, code := exitCode(t, nil, "status", "-c", cfg); return code != exitError }) {
		t.Fatalf("daemon not up:\n%s", logs)
	}
	out, errOut, code := exitCode(t, nil, "status", "-c", cfg)
	if code != exitDegraded || errOut != "warning: degraded: source gui: missing\n" {
		t.Errorf("status, a log missing: exit %d, %q; want 3 and the source", code, errOut)
	}
	if !lineHas(out, "gui", gone, "missing") || !lineHas(out, "pbx", good, "reading") {
		t.Errorf("status table:\n%s", out)
	}
	js, _, code := exitCode(t, nil, "status", "--json", "-c", cfg)
	if code != exitDegraded || !strings.Contains(js, `"state": "missing"`) || !strings.Contains(js, `"state": "reading"`) {
		t.Errorf("status --json: exit %d\n%s", code, js)
	}

	if err := os.Mkdir(filepath.Dir(gone), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(gone, nil, 0o644)
	if !soon(func() bool { _, _, code := exitCode(t, nil, "status", "-c", cfg); return code == exitOK }) {
		out, errOut, code := exitCode(t, nil, "status", "-c", cfg)
		t.Fatalf("status once the log exists: exit %d, %q\n%s\n%s", code, errOut, out, logs)
	}
}

// lineHas reports whether a line of out holds every one of the fields.
func lineHas(out string, fields ...string) bool {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		all := true
		for _, want := range fields {
			found := false
			for _, got := range f {
				found = found || got == want
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

// TestDegraded: what makes status exit 3, and how it names it.
func TestDegraded(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   control.Status
		want []string
	}{
		{"healthy", control.Status{Sources: []control.SourceStatus{{Name: "pbx", State: "reading"}}}, nil},
		{"no sources", control.Status{}, nil},
		{"sources", control.Status{Sources: []control.SourceStatus{{Name: "pbx", State: "reading"}, {Name: "gui", State: "missing"},
			{Name: "cdr", State: "permission denied"}, {Name: "new", State: "starting"}}},
			[]string{"source gui: missing", "source cdr: permission denied", "source new: starting"}},
		{"firewall", control.Status{Sources: []control.SourceStatus{{Name: "pbx", State: "reading"}},
			Firewall: control.FirewallStatus{Error: "restore deleted bans: netlink: no buffer space"}},
			[]string{"firewall: restore deleted bans: netlink: no buffer space"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := degraded(tc.st)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}

// TestRunSystemdDegraded: systemd's STATUS= says "degraded" and why while
// a source is not read, and "running" once it is.
func TestRunSystemdDegraded(t *testing.T) {
	conn := systemdSocket(t)
	config, logPath := opsConfig(t, "")
	os.Remove(logPath)
	logs := dryDaemon(t, config)
	read := func() string {
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("systemd got nothing more: %v\n%s", err, logs)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1\nSTATUS=degraded: source pbx: missing" {
		t.Fatalf("first message %q; want READY=1 and degraded\n%s", got, logs)
	}
	os.WriteFile(logPath, nil, 0o644)
	for {
		got := read()
		if got == "STATUS=running" {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("got %q; want the watchdog, then STATUS=running", got)
		}
	}
}
