// Package journaltest runs a real systemd-journald for a test, apart from
// the host's journal, and writes to it from processes that have the
// trusted fields a test chooses: the executable's name (_COMM), the user
// (_UID) and the unit (_SYSTEMD_UNIT).
//
// # How journald runs
//
// Without systemd as PID 1: `/lib/systemd/systemd-journald NAMESPACE`, as
// root, serves a journal namespace of its own (what a unit's
// LogNamespace= gets): sockets in /run/systemd/journal.NAMESPACE/ (socket
// for the native protocol, dev-log for syslog, stdout), files in
// /var/log/journal/MACHINE-ID.NAMESPACE/ (or /run/log/journal/), read
// with `journalctl --namespace=NAMESPACE`. The system journal, its sockets
// and /dev/log are never touched, and the namespace's directories are
// removed when the test ends. journald needs /etc/machine-id (Debian's
// systemd package writes it).
//
// # How writers get their fields
//
// A writer is the test binary itself, run again (init in this package
// sees the environment variable) under the name the test chooses,
// hard-linked into a directory of its own: the kernel names a process
// after the file it executes, so its _COMM is that name. It runs as the
// user of Writer.UID, and for Writer.Unit it moves itself into a cgroup
// named after the unit (under a slice of its own at the top of the cgroup
// v2 hierarchy), from which journald takes _SYSTEMD_UNIT. journald reads
// _COMM and the cgroup from /proc when a message arrives, so a writer
// stays alive until the test has seen its messages stored: after them the
// test sends a marker through the same socket, and journald, which reads
// a socket in order, has stored everything before it once the marker is
// in the journal.
package journaltest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
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
)

// The environment of a writer process.
const (
	envMode   = "SIPGUARD_JOURNALTEST_WRITER" // "syslog" or "native"
	envSocket = "SIPGUARD_JOURNALTEST_SOCKET"
	envIdent  = "SIPGUARD_JOURNALTEST_IDENT"
	envCgroup = "SIPGUARD_JOURNALTEST_CGROUP"
)

func init() {
	if mode := os.Getenv(envMode); mode != "" {
		if err := writer(mode, os.Getenv(envSocket), os.Getenv(envIdent), os.Getenv(envCgroup), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "journaltest writer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// Journald is a systemd-journald serving a namespace of its own.
type Journald struct {
	Namespace string
	t         testing.TB
	run       string // its sockets
	bin       string // writer executables
	cgroups   string // the slice writers' units go in ("" until needed)
	marks     int
}

// Start starts a systemd-journald for t, stopped and removed when t
// ends. It skips t (fails it under SIPGUARD_REQUIRE=all, as in CI) when
// not root or when journald or journalctl is not installed.
func Start(t testing.TB) *Journald {
	t.Helper()
	testutil.NeedRoot(t, "to run systemd-journald (test.sh runs the tests as root)")
	journald := ""
	for _, p := range []string{"/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"} {
		if _, err := os.Stat(p); err == nil {
			journald = p
			break
		}
	}
	if _, err := exec.LookPath("journalctl"); err != nil || journald == "" {
		testutil.Missing(t, "systemd-journald or journalctl is not installed (apt-get install systemd; test.sh does)")
	}
	mid, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(bytes.TrimSpace(mid)) == 0 {
		t.Fatalf("journald needs /etc/machine-id (systemd-machine-id-setup writes it): %v", err)
	}
	j := &Journald{Namespace: "sipguardtest" + random(6), t: t}
	j.run = "/run/systemd/journal." + j.Namespace
	bin, err := os.MkdirTemp("", "journaltest-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(bin, 0o755) // writers of other users run from it
	j.bin = bin

	var out bytes.Buffer
	cmd := exec.Command(journald, j.Namespace)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", journald, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		machine := string(bytes.TrimSpace(mid))
		for _, dir := range []string{j.run, bin, "/run/log/journal/" + machine + "." + j.Namespace, "/var/log/journal/" + machine + "." + j.Namespace} {
			os.RemoveAll(dir)
		}
		if j.cgroups != "" {
			subs, _ := filepath.Glob(filepath.Join(j.cgroups, "*.service"))
			for _, s := range subs {
				os.Remove(s)
			}
			os.Remove(j.cgroups)
		}
	})
	testutil.WaitFor(t, 10*time.Second, "journald's sockets", func() bool {
		select {
		case <-exited:
			t.Fatalf("systemd-journald %s exited: %s", j.Namespace, out.String())
		default:
		}
		_, err1 := os.Stat(filepath.Join(j.run, "socket"))
		_, err2 := os.Stat(filepath.Join(j.run, "dev-log"))
		return err1 == nil && err2 == nil
	})
	// Its first entry ("Journal started") is in: the journal is not empty,
	// so a follower that starts at its end has a cursor to start from.
	testutil.WaitEvery(t, 10*time.Second, 20*time.Millisecond, "journald's first entry", func() bool {
		out, _ := exec.Command("journalctl", "--namespace="+j.Namespace, "--no-pager", "--quiet", "--lines=1").Output()
		return len(out) > 0
	})
	return j
}

// Writer is who writes an entry.
type Writer struct {
	Comm string // the executable's name, the entry's _COMM ("": journaltest)
	UID  uint32 // the user it runs as, the entry's _UID (0: root)
	Unit string // the unit it runs in, the entry's _SYSTEMD_UNIT ("": none)
}

// Syslog writes each message as a syslog datagram "<13>tag: message" to
// the namespace's dev-log, from a process as w says, and returns once
// journald has stored them.
func (j *Journald) Syslog(w Writer, tag string, msgs ...string) {
	j.t.Helper()
	j.write("syslog", w, tag, msgs)
}

// Native writes each message with journald's native protocol (a message
// may hold newlines; SYSLOG_IDENTIFIER=ident), as Syslog does.
func (j *Journald) Native(w Writer, ident string, msgs ...string) {
	j.t.Helper()
	j.write("native", w, ident, msgs)
}

func (j *Journald) write(mode string, w Writer, ident string, msgs []string) {
	t := j.t
	t.Helper()
	if w.Comm == "" {
		w.Comm = "journaltest"
	}
	exe := filepath.Join(j.bin, w.Comm)
	if _, err := os.Stat(exe); err != nil {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Link(self, exe); err != nil {
			copyFile(t, self, exe)
		}
	}
	socket := j.socket(mode)
	cmd := exec.Command(exe, msgs...)
	cmd.Env = append(os.Environ(), envMode+"="+mode, envSocket+"="+socket, envIdent+"="+ident)
	if w.Unit != "" {
		cmd.Env = append(cmd.Env, envCgroup+"="+j.cgroup(w.Unit))
	}
	if w.UID != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: w.UID, Gid: w.UID}}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start writer %s: %v", exe, err)
	}
	sent, _ := io.ReadAll(io.LimitReader(stdout, 5))
	if string(sent) != "sent\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("writer %s: %s", w.Comm, stderr.String())
	}
	j.mark(mode, socket)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("writer %s: %v: %s", w.Comm, err, stderr.String())
	}
}

// mark writes a marker through the socket the messages went to, and waits
// until it is in the journal: journald has then stored the messages.
func (j *Journald) mark(mode, socket string) {
	j.t.Helper()
	j.marks++
	marker := fmt.Sprintf("journaltest-mark-%d-%s", j.marks, random(4))
	if err := send(mode, socket, "journaltest", []string{marker}); err != nil {
		j.t.Fatal(err)
	}
	testutil.WaitEvery(j.t, 10*time.Second, 20*time.Millisecond, "journald to store "+marker, func() bool {
		out, _ := exec.Command("journalctl", "--namespace="+j.Namespace, "--no-pager", "--quiet", "--output=cat", "MESSAGE="+marker).Output()
		return len(out) > 0
	})
}

func (j *Journald) socket(mode string) string {
	if mode == "native" {
		return filepath.Join(j.run, "socket")
	}
	return filepath.Join(j.run, "dev-log")
}

// cgroup returns the cgroup of unit, made under a slice of the test's own
// at the top of the cgroup v2 hierarchy: journald takes _SYSTEMD_UNIT from
// the first name after the slices in a process's cgroup path.
func (j *Journald) cgroup(unit string) string {
	j.t.Helper()
	if j.cgroups == "" {
		root := cgroup2Root()
		if root == "" {
			testutil.Missing(j.t, "no cgroup v2 hierarchy mounted: a writer cannot be put in a unit")
		}
		j.cgroups = filepath.Join(root, j.Namespace+".slice")
		if err := os.Mkdir(j.cgroups, 0o755); err != nil {
			j.t.Fatal(err)
		}
	}
	dir := filepath.Join(j.cgroups, unit)
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		j.t.Fatal(err)
	}
	return dir
}

// cgroup2Root returns where the cgroup v2 hierarchy is mounted (the
// unified one of a hybrid setup too), "" when it is not.
func cgroup2Root() string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if ok && len(f) >= 5 && f[3] == "/" && strings.HasPrefix(post, "cgroup2 ") {
			return f[4]
		}
	}
	return ""
}

// Journalctl runs journalctl on the namespace with args and returns its
// output.
func (j *Journald) Journalctl(args ...string) string {
	j.t.Helper()
	out, err := exec.Command("journalctl", append([]string{"--namespace=" + j.Namespace, "--no-pager"}, args...)...).CombinedOutput()
	if err != nil {
		j.t.Fatalf("journalctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writer is what a writer process does: join the cgroup, send the
// messages, say "sent" and wait for stdin to close (the test has seen the
// messages stored).
func writer(mode, socket, ident, cgroup string, msgs []string) error {
	if cgroup != "" {
		if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return err
		}
	}
	if err := send(mode, socket, ident, msgs); err != nil {
		return err
	}
	fmt.Println("sent")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// send writes each message to socket as a datagram: "<13>ident: message"
// (syslog) or the fields SYSLOG_IDENTIFIER and MESSAGE (native).
func send(mode, socket, ident string, msgs []string) error {
	c, err := net.Dial("unixgram", socket)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, m := range msgs {
		var d []byte
		if mode == "native" {
			d = nativeField(nil, "SYSLOG_IDENTIFIER", ident)
			d = nativeField(d, "MESSAGE", m)
		} else {
			d = []byte("<13>" + ident + ": " + m)
		}
		if _, err := c.Write(d); err != nil {
			return err
		}
	}
	return nil
}

// nativeField appends a field in journald's native protocol: KEY=value,
// or, when value holds a newline, KEY, a newline, its length (64-bit
// little endian) and the value.
func nativeField(d []byte, key, value string) []byte {
	if !strings.Contains(value, "\n") {
		return append(d, key+"="+value+"\n"...)
	}
	d = append(d, key+"\n"...)
	d = binary.LittleEndian.AppendUint64(d, uint64(len(value)))
	return append(d, value+"\n"...)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
