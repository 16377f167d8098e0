// Package journal follows the systemd journal for sipguard: the messages
// of chosen units or programs, admitted only by the fields journald
// writes itself, never by anything the writing program says of itself. It
// owns the match (Match), following journalctl across its restarts with a
// cursor (Follower), reading its JSON entries, and turning each message
// into the one line a parser reads (Entry.AppendLine). It knows nothing
// of log formats.
//
// # Trust
//
// A program that writes to the journal chooses MESSAGE, SYSLOG_IDENTIFIER
// (the tag: `logger -t asterisk` by any local user) and every field whose
// name does not start with "_". journald fills the fields that start with
// "_" itself, and drops those a client sends:
//
//	_PID, _UID     the sender's process and user, from the kernel (SCM_CREDENTIALS)
//	_SYSTEMD_UNIT  the system unit whose cgroup the sender is in: only root,
//	               or systemd for the unit, puts a process there (a user's
//	               own units are _SYSTEMD_USER_UNIT, with _SYSTEMD_UNIT=user@UID.service)
//	_COMM          the name of the sender's executable (15 bytes at most):
//	               any user can run a copy of logger named "asterisk"
//
// So a unit is proof of origin, a command is not: Match.Validate refuses
// commands without uids or units (a copy named "asterisk" run by another
// user is then refused by its _UID). journald reads _COMM and
// _SYSTEMD_UNIT from /proc when a message arrives: a process that has
// already exited has neither, and its messages match no unit or command
// (a PBX daemon is long-lived; a one-shot logger may lose them).
//
// # Following
//
// The Follower runs `journalctl --follow --output=json` with the match as
// arguments (journalctl ANDs different fields and ORs the values of one)
// and checks the fields of every entry again itself; an entry that does
// not match is counted and dropped. It resumes with --cursor=C and skips
// the entry C itself: --after-cursor skips one entry too many when the
// entry at C does not match the filter or has been deleted. Without a
// cursor it starts after the journal's last entry at the time (or reads
// it all from the beginning: Options.FromStart). There is no --boot: a
// cursor holds across reboots, so nothing logged while the host was down
// or restarting is lost. When journalctl stops, it is run again after a
// pause (1 s, doubling to 30 s), from the last entry read.
//
// # Lines
//
// Each entry becomes one syslog line, the form of rsyslog's RFC 3339 files
// that every parser of a PBX that logs to syslog reads:
//
//	2026-12-02T15:09:02.727103Z host asterisk[22997]: <MESSAGE>
//
// The time is the journal's own (__REALTIME_TIMESTAMP, when journald
// received the message), the program is _COMM (SYSLOG_IDENTIFIER only when
// journald could not read it: the entry was admitted by its unit), the pid
// _PID. A message is always one line: control characters in it (a newline an
// attacker put into a user name, a carriage return) are written as #ooo,
// as rsyslog does, so no part of a message can read as a line of its
// own. Tabs and the escape codes of console colours stay.
package journal

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Match says which entries a source admits, by the fields journald
// writes: an entry must match one of the values of every list that is set.
type Match struct {
	Namespace string   // the journal namespace (a unit's LogNamespace=); "" the system journal
	Units     []string // _SYSTEMD_UNIT
	Commands  []string // _COMM
	UIDs      []uint32 // _UID
}

// Empty reports whether m names nothing: not a journal source.
func (m Match) Empty() bool {
	return m.Namespace == "" && len(m.Units) == 0 && len(m.Commands) == 0 && len(m.UIDs) == 0
}

// String is m as journalctl's match arguments, each list sorted: a stable
// name of what m admits (a saved cursor is resumed only for the same).
func (m Match) String() string {
	var parts []string
	if m.Namespace != "" {
		parts = append(parts, "namespace="+m.Namespace)
	}
	m.Units, m.Commands, m.UIDs = slices.Sorted(slices.Values(m.Units)), slices.Sorted(slices.Values(m.Commands)), slices.Sorted(slices.Values(m.UIDs))
	parts = append(parts, m.args()...)
	return strings.Join(parts, " ")
}

// args returns m as journalctl's match arguments.
func (m Match) args() []string {
	var args []string
	for _, u := range m.Units {
		args = append(args, "_SYSTEMD_UNIT="+u)
	}
	for _, c := range m.Commands {
		args = append(args, "_COMM="+c)
	}
	for _, u := range m.UIDs {
		args = append(args, "_UID="+strconv.FormatUint(uint64(u), 10))
	}
	return args
}

// admits reports whether an entry's trusted fields match m. A field the
// entry lacks matches nothing.
func (m Match) admits(e *Entry) bool {
	return (len(m.Units) == 0 || e.Unit != "" && slices.Contains(m.Units, e.Unit)) &&
		(len(m.Commands) == 0 || e.Comm != "" && slices.Contains(m.Commands, e.Comm)) &&
		(len(m.UIDs) == 0 || e.UID >= 0 && slices.Contains(m.UIDs, uint32(e.UID)))
}

// FieldError is a problem with one field of a Match. Key names it as
// rules.toml does: "units", "commands[1]", "uids", "namespace".
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// maxComm is the longest _COMM: the kernel keeps 15 bytes of a name.
const maxComm = 15

// Validate reports every problem of m, each a *FieldError, joined: a
// match must name units, or commands with the uids that run them (a
// command alone is any user's copy of a program of that name).
func (m Match) Validate() error {
	var errs []error
	add := func(key string, i int, format string, args ...any) {
		if i >= 0 {
			key = fmt.Sprintf("%s[%d]", key, i)
		}
		errs = append(errs, &FieldError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	switch {
	case len(m.Units) == 0 && len(m.Commands) == 0:
		add("units", -1, "set units (systemd units) or commands (program names) whose messages to read")
	case len(m.Units) == 0 && len(m.UIDs) == 0:
		add("uids", -1, "commands alone admit any user's program of that name (a copy of logger named %q): add the uids the PBX runs as, or units", m.Commands[0])
	}
	for i, u := range m.Units {
		if !validUnit(u) {
			add("units", i, "%q is not a unit name such as \"kamailio.service\"", u)
		}
	}
	for i, c := range m.Commands {
		switch {
		case c == "" || strings.ContainsAny(c, "/=") || !printable(c):
			add("commands", i, "%q is not a program name such as \"asterisk\"", c)
		case len(c) > maxComm:
			add("commands", i, "%q is longer than the %d bytes the kernel keeps of a program's name: write %q", c, maxComm, c[:maxComm])
		}
	}
	for i, u := range m.UIDs {
		if u == 1<<32-1 {
			add("uids", i, "%d is not a user id", u)
		}
	}
	if m.Namespace != "" && !validNamespace(m.Namespace) {
		add("namespace", -1, "%q is not a journal namespace (letters, digits, - and _)", m.Namespace)
	}
	return errors.Join(errs...)
}

// validUnit reports whether s is a unit name: systemd's characters, and
// a type suffix.
func validUnit(s string) bool {
	dot := strings.LastIndexByte(s, '.')
	if len(s) > 255 || dot <= 0 || dot == len(s)-1 {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && !strings.ContainsRune(":-_.\\@", rune(c)) {
			return false
		}
	}
	return true
}

// validNamespace reports whether s is a journal namespace name (stricter
// than journald, which also allows dots).
func validNamespace(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
