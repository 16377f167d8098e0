package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/natstest"
	"github.com/sipguard/sipguard/internal/testutil"
)

// The tests in this file run the real sipguard binary as a daemon in a
// fresh network namespace, against the kernel's nftables. They need root
// and the nft and ip commands; .ci/run runs them.

// sipguardBin builds the binary once per test run.
var sipguardBin string

// buildSipguard returns the sipguard binary: the one SIPGUARD_BIN names
// (built beforehand, as test/debian-kernel.sh does for a VM without Go), or one
// built once per test run.
func buildSipguard(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("SIPGUARD_BIN"); bin != "" {
		return bin
	}
	if sipguardBin != "" {
		return sipguardBin
	}
	dir, err := os.MkdirTemp("", "sgbin")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sipguard")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sipguardBin = bin
	return bin
}

func TestMain(m *testing.M) {
	if spec := os.Getenv("SIPGUARD_UDP_SINK"); spec != "" {
		udpSink(spec) // a helper process of TestGatewayMode
		return
	}
	if spec := os.Getenv("SIPGUARD_SCRAPERS"); spec != "" {
		scrapers(spec) // a helper process of TestScrapesDoNotDelayBans
		return
	}
	if conf := os.Getenv("SIPGUARD_NATS_SERVER"); conf != "" {
		natstest.Serve(conf, os.Getenv("SIPGUARD_NATS_STREAM")) // the NATS server of TestCluster
		return
	}
	code := m.Run()
	if sipguardBin != "" {
		os.RemoveAll(filepath.Dir(sipguardBin))
	}
	os.Exit(code)
}

func needRoot(t testing.TB) {
	t.Helper()
	testutil.NeedRoot(t, "for network namespaces and nftables (.ci/run runs it as root)")
	testutil.NeedCommands(t, "apt-get install iproute2 nftables; .ci/run installs them", "ip", "nft")
}

// netns creates a network namespace removed when the test ends.
func netns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "sge2e-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	exec.Command("ip", "-n", name, "link", "set", "lo", "up").Run()
	return name
}

// daemonProc is a `sipguard run` in a namespace.
type daemonProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stderr *testutil.Buffer // written by the output copier while tests read it
	done   chan struct{}
}

// startDaemon starts `sipguard run` in ns; its output goes to the
// daemonProc's stderr, and as it comes to also.
func startDaemon(t *testing.T, ns, config string, also ...io.Writer) *daemonProc {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, buildSipguard(t), "run", "-c", config)
	stderr := &testutil.Buffer{}
	out := io.MultiWriter(append([]io.Writer{stderr}, also...)...)
	cmd.Stderr, cmd.Stdout = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{t: t, cmd: cmd, stderr: stderr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *daemonProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// ctl runs a sipguard command (not the daemon) and returns its stdout.
func ctl(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(buildSipguard(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// answers reports whether the daemon of config answers status: exit code
// 0, or 3 while it runs degraded (a log not written yet).
func answers(t *testing.T, config string) bool {
	t.Helper()
	_, _, code := exitCode(t, nil, "status", "-c", config)
	return code == exitOK || code == exitDegraded
}

// waitFor polls cond every 5 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool { return testutil.Eventually(d, cond) }

// nft runs nft with args in ns and returns its output; it fails t when
// nft fails. A set or table that cannot be read is an error, never "not
// banned": a check that something is not in the kernel would pass
// vacuously on a table deleted, a typo or nft missing.
func nft(t *testing.T, ns string, args ...string) string {
	t.Helper()
	var errOut bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nft %s in %s: %v %s", strings.Join(args, " "), ns, err, errOut.String())
	}
	return string(out)
}

// setHas reports whether the kernel set holds the address, read with nft;
// it fails t when nft fails.
func setHas(t *testing.T, ns, set, addr string) bool {
	t.Helper()
	return strings.Contains(nft(t, ns, "-j", "list", "set", "inet", "sipguard", set), `"`+addr+`"`)
}

// handled waits until the daemon of config has handled n events in all
// (allowlisted ones too): it enforces the bans they cause before it
// answers another request, so a ban not in the kernel then was not
// decided. The positive signal to wait for before asserting that a ban is
// not there; a fixed wait passes whenever the lines were not read yet.
func handled(t *testing.T, config string, n int64) {
	t.Helper()
	var st statusJSON
	if !waitFor(10*time.Second, func() bool {
		var err error
		st, err = status(t, config)
		return err == nil && st.Engine.Events >= n
	}) {
		t.Fatalf("the daemon handled %d events; want %d", st.Engine.Events, n)
	}
	if st.Engine.Events != n {
		t.Fatalf("the daemon handled %d events; want %d", st.Engine.Events, n)
	}
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// daemonConfig writes dir/rules.toml: a daemon with its state and socket
// in dir, following logPath with the asterisk parser, then extra TOML.
func daemonConfig(t *testing.T, dir, logPath, extra string) string {
	t.Helper()
	config := filepath.Join(dir, "rules.toml")
	data := fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\n\n[[source]]\nname = \"pbx\"\npath = %q\nparser = \"asterisk\"\n\n%s",
		filepath.Join(dir, "state"), filepath.Join(dir, "sipguard.sock"), logPath, extra)
	if err := os.WriteFile(config, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return config
}

func failures(addr string, n int) []string {
	var out []string
	now := time.Now().Format(time.DateTime)
	for range n {
		out = append(out, "["+now+"] NOTICE[4121] chan_sip.c: Registration from '<sip:100@203.0.113.10>' failed for '"+addr+":5060' - Wrong password")
	}
	return out
}

// TestDaemonEndToEnd follows the acceptance scenario with the real
// binary, kernel and files.
func TestDaemonEndToEnd(t *testing.T) {
	needRoot(t)
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	config := filepath.Join(dir, "rules.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
log_level = "debug"

[[source]]
name = "pbx"
path = %q
parser = "asterisk"
`, filepath.Join(dir, "state"), filepath.Join(dir, "run", "sipguard.sock"), logPath)), 0o644)

	d := startDaemon(t, ns, config)
	if !waitFor(10*time.Second, func() bool { _, _, err := ctl(t, "status", "-c", config); return err == nil }) {
		t.Fatalf("daemon did not come up:\n%s", d.stderr)
	}

	// Failures appended to the watched log: the attacker lands in ban4.
	start := time.Now()
	appendLines(t, logPath, failures("198.51.100.7", 5)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.7") }) {
		t.Fatalf("198.51.100.7 not banned:\n%s", d.stderr)
	}
	t.Logf("line written to element in ban4: %v (polling nft every 5 ms)", time.Since(start))

	// list --json shows it, with its rule.
	out, _, err := ctl(t, "list", "--json", "-c", config)
	var bans []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &bans) != nil || len(bans) != 1 || bans[0]["target"] != "198.51.100.7" || bans[0]["rule"] != "burst" {
		t.Fatalf("list --json: %v %s", err, out)
	}

	// unban removes it from the kernel.
	if out, _, err := ctl(t, "unban", "-c", config, "198.51.100.7"); err != nil || !strings.Contains(out, "unbanned 198.51.100.7") {
		t.Fatalf("unban: %v %s", err, out)
	}
	if setHas(t, ns, "ban4", "198.51.100.7") {
		t.Fatal("still in ban4 after unban")
	}

	// A manual ban survives a restart even after the set was flushed
	// behind the daemon's back while it was stopped.
	if out, _, err := ctl(t, "ban", "-c", config, "--for", "2h", "--reason", "e2e", "198.51.100.99"); err != nil || !strings.Contains(out, "banned 198.51.100.99") {
		t.Fatalf("ban: %v %s", err, out)
	}
	if !setHas(t, ns, "ban4", "198.51.100.99") {
		t.Fatal("manual ban not in ban4")
	}
	// An allowlisted address is refused.
	if _, errOut, err := ctl(t, "ban", "-c", config, "127.0.0.1"); err == nil || !strings.Contains(errOut, "allowlisted") {
		t.Errorf("ban of an allowlisted address: %v %s", err, errOut)
	}
	d.stop()
	if !setHas(t, ns, "ban4", "198.51.100.99") {
		t.Fatal("stopping the daemon removed the ban")
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "set", "inet", "sipguard", "ban4").CombinedOutput(); err != nil {
		t.Fatalf("nft flush: %v %s", err, out)
	}
	if _, _, err := ctl(t, "status", "-c", config); err == nil {
		t.Fatal("status answered with the daemon stopped")
	}
	d2 := startDaemon(t, ns, config)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.99") }) {
		t.Fatalf("manual ban not restored after restart:\n%s", d2.stderr)
	}
	out, _, _ = ctl(t, "list", "-c", config)
	if !strings.Contains(out, "198.51.100.99") || !strings.Contains(out, "e2e") {
		t.Errorf("list after restart:\n%s", out)
	}
	// The unbanned attacker was not banned again from re-read lines: once
	// the log was read to its end, where it was saved.
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		st, err := status(t, config)
		return err == nil && len(st.Sources) == 1 && st.Sources[0].Offset == fi.Size()
	}) {
		t.Fatalf("the log not read to its end (%d bytes) after the restart:\n%s", fi.Size(), d2.stderr)
	}
	if setHas(t, ns, "ban4", "198.51.100.7") {
		t.Error("198.51.100.7 banned again after restart: lines were read twice")
	}

	// Flushed behind its back while running: restored within 5 s.
	exec.Command("ip", "netns", "exec", ns, "nft", "flush", "set", "inet", "sipguard", "ban4").Run()
	if !waitFor(5*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.99") }) {
		t.Errorf("flushed set not restored within 5 s:\n%s", d2.stderr)
	}

	// check rejects an unknown key.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[daemon]\nstate_dir = \"/tmp\"\nsokcet = \"/tmp/x\"\n"), 0o644)
	if _, errOut, err := ctl(t, "check", "-c", bad); err == nil || !strings.Contains(errOut, bad+":3: daemon.sokcet: unknown key") {
		t.Errorf("check bad config: %v %s", err, errOut)
	}
}

// TestDaemonReload: SIGHUP with an invalid config keeps the running one;
// with a valid one, the new rules apply.
func TestDaemonReload(t *testing.T) {
	needRoot(t)
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	config := filepath.Join(dir, "rules.toml")
	write := func(maxRetry string) {
		os.WriteFile(config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q

[[source]]
name = "pbx"
path = %q
parser = "asterisk"
start = "beginning"

[[rule]]
name = "r"
max_retry = %s
find_time = "1h"
ban_time = "1h"
`, filepath.Join(dir, "state"), filepath.Join(dir, "sock"), logPath, maxRetry)), 0o644)
	}
	write("3")
	d := startDaemon(t, ns, config)
	// Degraded until the log is written: it does not exist yet.
	if !waitFor(10*time.Second, func() bool { return answers(t, config) }) {
		t.Fatalf("daemon did not come up:\n%s", d.stderr)
	}
	write(`"three"`) // invalid
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(5*time.Second, func() bool { return strings.Contains(d.stderr.String(), "config not reloaded") }) {
		t.Fatalf("no reload error logged:\n%s", d.stderr)
	}
	appendLines(t, logPath, failures("198.51.100.7", 3)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.7") }) {
		t.Fatalf("the running config (3 failures) was not kept:\n%s", d.stderr)
	}
	write("1")
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(5*time.Second, func() bool { return strings.Contains(d.stderr.String(), "configuration reloaded") }) {
		t.Fatalf("not reloaded:\n%s", d.stderr)
	}
	appendLines(t, logPath, failures("198.51.100.8", 1)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.8") }) {
		t.Fatalf("new rule (1 failure) not applied:\n%s", d.stderr)
	}
	if _, errOut, err := ctl(t, "status", "-c", config); err != nil {
		t.Errorf("status once the log is read: %v %s", err, errOut)
	}
}
