package journal_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/journaltest"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/journal"
)

// These tests run a real systemd-journald in a journal namespace of its
// own (package journaltest says how), as root; they skip otherwise.

// TestJournaldTrusted: a command's messages are read by _COMM and _UID;
// the same tag written by another program, and a copy of a program with
// the same name run by another user, are not; a message with newlines
// stays one entry and one line.
func TestJournaldTrusted(t *testing.T) {
	j := journaltest.Start(t)
	asterisk := journaltest.Writer{Comm: "asterisk"}
	j.Syslog(asterisk, "asterisk", "before the start")
	c := follow(t, journal.Options{Match: journal.Match{Namespace: j.Namespace, Commands: []string{"asterisk"}, UIDs: []uint32{0}}})
	testutil.WaitFor(t, 10*time.Second, "the follower to start", func() bool { return c.f.Origin() != "" })

	j.Syslog(asterisk, "asterisk", "real 1")
	// issue 13 item 3: `logger -t asterisk` by anyone.
	j.Syslog(journaltest.Writer{Comm: "logger"}, "asterisk", "forged: the tag")
	j.Native(journaltest.Writer{Comm: "logger"}, "asterisk", "forged: the tag, natively")
	// A copy of a program named asterisk, run by another user.
	j.Syslog(journaltest.Writer{Comm: "asterisk", UID: 65534}, "asterisk", "forged: the name")
	// issue 13 item 1: a newline in a message cannot start a line.
	j.Native(asterisk, "asterisk", "real 2\n[Dec  2 10:00:00] NOTICE[1] chan_sip.c: forged line")
	j.Syslog(asterisk, "not-asterisk", "real 3")

	got := c.waitMessages(t, 3)
	want := []string{"real 1", "real 2\n[Dec  2 10:00:00] NOTICE[1] chan_sip.c: forged line", "real 3"}
	if !equal(got, want) {
		t.Fatalf("messages %q; want %q", got, want)
	}
	c.mu.Lock()
	line := string(c.entries[1].AppendLine(nil))
	ident := c.entries[2].Ident
	c.mu.Unlock()
	if !strings.HasSuffix(line, " asterisk["+pidOf(line)+"]: real 2#012[Dec  2 10:00:00] NOTICE[1] chan_sip.c: forged line") {
		t.Errorf("line %q", line)
	}
	if ident != "not-asterisk" {
		t.Errorf("identifier %q", ident)
	}
	if st := c.f.Stats(); st.Refused != 0 || st.Malformed != 0 || st.Restarts != 0 {
		t.Errorf("stats %+v", st)
	}
}

// pidOf returns the pid between the brackets of a line's program.
func pidOf(line string) string {
	_, rest, _ := strings.Cut(line, " asterisk[")
	pid, _, _ := strings.Cut(rest, "]")
	return pid
}

// TestJournaldUnit: a unit's messages are read by _SYSTEMD_UNIT, whatever
// the program; the same program outside the unit is not.
func TestJournaldUnit(t *testing.T) {
	j := journaltest.Start(t)
	c := follow(t, journal.Options{Match: journal.Match{Namespace: j.Namespace, Units: []string{"kamailio.service"}}, FromStart: true})
	j.Syslog(journaltest.Writer{Comm: "kamailio", Unit: "kamailio.service"}, "kamailio", "in the unit")
	j.Syslog(journaltest.Writer{Comm: "kamailio"}, "kamailio", "forged: no unit")
	j.Syslog(journaltest.Writer{Comm: "kamailio", Unit: "other.service"}, "kamailio", "forged: another unit")
	j.Syslog(journaltest.Writer{Comm: "sh", Unit: "kamailio.service"}, "sh", "in the unit too")
	if got, want := c.waitMessages(t, 2), []string{"in the unit", "in the unit too"}; !equal(got, want) {
		t.Fatalf("messages %q; want %q", got, want)
	}
	c.mu.Lock()
	unit := c.entries[0].Unit
	c.mu.Unlock()
	if unit != "kamailio.service" {
		t.Errorf("unit %q", unit)
	}
}

// TestJournaldResume: a follower started from the cursor of the last
// batch handed over reads what was written since, exactly once; one
// started from another's Origin, everything after its start.
func TestJournaldResume(t *testing.T) {
	j := journaltest.Start(t)
	w := journaltest.Writer{Comm: "asterisk"}
	match := journal.Match{Namespace: j.Namespace, Commands: []string{"asterisk"}, UIDs: []uint32{0}}
	j.Syslog(w, "asterisk", "old")
	c := follow(t, journal.Options{Match: match})
	testutil.WaitFor(t, 10*time.Second, "the follower to start", func() bool { return c.f.Origin() != "" })
	origin := c.f.Origin()
	j.Syslog(w, "asterisk", "1", "2", "3")
	c.waitMessages(t, 3)
	c.stop()
	cursor := c.lastCursor()

	j.Syslog(journaltest.Writer{Comm: "other"}, "other", "not matched, after the cursor")
	j.Syslog(w, "asterisk", "4", "5")
	c2 := follow(t, journal.Options{Match: match, Cursor: cursor})
	if got := c2.waitMessages(t, 2); !equal(got, []string{"4", "5"}) {
		t.Fatalf("resumed: %q; want 4, 5", got)
	}
	j.Syslog(w, "asterisk", "6")
	if got := c2.waitMessages(t, 3); !equal(got, []string{"4", "5", "6"}) {
		t.Fatalf("resumed, then: %q; want 4, 5, 6", got)
	}
	c3 := follow(t, journal.Options{Match: match, Cursor: origin})
	if got := c3.waitMessages(t, 6); !equal(got, []string{"1", "2", "3", "4", "5", "6"}) {
		t.Fatalf("from the origin: %q; want 1 to 6", got)
	}
	// From the beginning: all of it.
	c4 := follow(t, journal.Options{Match: match, FromStart: true})
	if got := c4.waitMessages(t, 7); !equal(got, []string{"old", "1", "2", "3", "4", "5", "6"}) {
		t.Fatalf("from the beginning: %q", got)
	}
}

// TestJournalctlRestarted: when journalctl is killed, it is run again
// from the last entry read: nothing lost or repeated; its death is a
// problem until the new one runs.
func TestJournalctlRestarted(t *testing.T) {
	j := journaltest.Start(t)
	w := journaltest.Writer{Comm: "asterisk"}
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	wrapper := filepath.Join(dir, "journalctl")
	os.WriteFile(wrapper, []byte("#!/bin/sh\ncase \"$*\" in *--follow*) echo $$ >> "+pids+";; esac\nexec journalctl \"$@\"\n"), 0o755)
	c := follow(t, journal.Options{Match: journal.Match{Namespace: j.Namespace, Commands: []string{"asterisk"}, UIDs: []uint32{0}}, Journalctl: wrapper})
	testutil.WaitFor(t, 10*time.Second, "the follower to start", func() bool { return c.f.Origin() != "" })
	j.Syslog(w, "asterisk", "1", "2")
	c.waitMessages(t, 2)
	followers := func() []string {
		data, _ := os.ReadFile(pids)
		return strings.Fields(string(data))
	}
	first := followers()
	if len(first) != 1 {
		t.Fatalf("journalctl runs: %q", first)
	}
	pid := 0
	for _, ch := range first[0] {
		pid = pid*10 + int(ch-'0')
	}
	syscall.Kill(pid, syscall.SIGKILL)
	testutil.WaitFor(t, 10*time.Second, "journalctl run again", func() bool { return len(followers()) == 2 })
	j.Syslog(w, "asterisk", "3")
	if got := c.waitMessages(t, 3); !equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("messages %q; want 1, 2, 3", got)
	}
	if st := c.f.Stats(); st.Restarts != 1 {
		t.Errorf("restarts %d; want 1", st.Restarts)
	}
	testutil.WaitFor(t, 10*time.Second, "the problem to end", func() bool {
		p := c.problemList()
		return len(p) == 2 && strings.Contains(p[0], "journalctl stopped (signal: killed)") && p[1] == ""
	})
}

// TestJournalUnreadable: a journal the user cannot read (journalctl run
// as nobody) is a problem, reported with journalctl's reason.
func TestJournalUnreadable(t *testing.T) {
	j := journaltest.Start(t)
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "journalctl")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups journalctl \"$@\"\n"), 0o755)
	c := follow(t, journal.Options{Match: journal.Match{Namespace: j.Namespace, Units: []string{"kamailio.service"}}, Journalctl: wrapper, FromStart: true})
	testutil.WaitFor(t, 10*time.Second, "the problem", func() bool {
		p := c.problemList()
		return len(p) > 0 && strings.Contains(p[len(p)-1], "insufficient permissions")
	})
}
