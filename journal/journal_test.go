package journal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/journal"
)

// collector runs a Follower and keeps what it hands over.
type collector struct {
	f      *journal.Follower
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	entries  []journal.Entry
	cursor   string
	problems []string // "" for a problem over
}

func follow(t *testing.T, opts journal.Options) *collector {
	t.Helper()
	c := &collector{done: make(chan error, 1)}
	opts.OnProblem = func(err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err == nil {
			c.problems = append(c.problems, "")
		} else {
			c.problems = append(c.problems, err.Error())
		}
	}
	if opts.Backoff == 0 {
		opts.Backoff = 20 * time.Millisecond
	}
	c.f = journal.NewFollower(opts)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		c.done <- c.f.Run(ctx, func(b journal.Batch) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, e := range b.Entries {
				e.Message = append([]byte(nil), e.Message...)
				c.entries = append(c.entries, e)
			}
			if b.Cursor == "" {
				t.Error("a batch without a cursor")
			}
			c.cursor = b.Cursor
			return nil
		})
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	if err := <-c.done; !errors.Is(err, context.Canceled) {
		panic("Run returned " + err.Error())
	}
}

func (c *collector) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.entries {
		out = append(out, string(e.Message))
	}
	return out
}

func (c *collector) lastCursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

func (c *collector) problemList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// waitMessages waits until the collector holds n messages.
func (c *collector) waitMessages(t *testing.T, n int) []string {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "messages", func() bool { return len(c.messages()) >= n })
	return c.messages()
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// cursor is the cursor of a fake journal's entry n (0: its end).
func cursor(n int) string {
	return fmt.Sprintf("s=0123456789abcdef0123456789abcdef;i=%x;b=fedcba9876543210fedcba9876543210;m=%x;t=661a805f6d7bf;x=%x", n+100, n+100, n)
}

// fakeJournalctl writes a journalctl that answers the question for the
// journal's end with cursor(0), and prints output when following;
// every run's arguments are appended to the returned file.
func fakeJournalctl(t *testing.T, output string) (string, string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "output.json")
	args := filepath.Join(dir, "args")
	os.WriteFile(out, []byte(output), 0o644)
	script := "#!/bin/sh\necho \"$*\" >> " + args + `
case "$*" in *--follow*) cat ` + out + "; exec sleep 60;; esac\n" +
		`echo '{"__CURSOR":"` + cursor(0) + `","_PID":"1"}'` + "\n"
	path := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, args
}

func readArgs(t *testing.T, file string) []string {
	data, _ := os.ReadFile(file)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// TestFieldForms: MESSAGE as a string or as byte values; entries with no
// single MESSAGE, with several values of a trusted field, or whose trusted
// fields do not match are not handed over, yet the cursor passes them; the
// entry of the cursor journalctl starts at is skipped.
func TestFieldForms(t *testing.T) {
	const a = `"_COMM":"asterisk","_UID":"0","_PID":"42","_HOSTNAME":"pbx","__REALTIME_TIMESTAMP":"1796224142727103"`
	output := strings.Join([]string{
		`{"__CURSOR":"` + cursor(0) + `",` + a + `,"MESSAGE":"seen before"}`,
		`{"__CURSOR":"` + cursor(1) + `",` + a + `,"MESSAGE":"plain"}`,
		`{"__CURSOR":"` + cursor(2) + `",` + a + `,"MESSAGE":[98,105,110,10,27,91,49,109]}`,
		`{"__CURSOR":"` + cursor(3) + `",` + a + `,"MESSAGE":null}`,
		`{"__CURSOR":"` + cursor(4) + `",` + a + `,"MESSAGE":["one","two"]}`,
		`{"__CURSOR":"` + cursor(5) + `","_COMM":"logger","_UID":"0","_PID":"43","__REALTIME_TIMESTAMP":"1796224142727103","MESSAGE":"forged"}`,
		`{"__CURSOR":"` + cursor(6) + `","_COMM":["asterisk","asterisk"],"_UID":"0","_PID":"43","__REALTIME_TIMESTAMP":"1796224142727103","MESSAGE":"two names"}`,
		`{"__CURSOR":"` + cursor(7) + `","_COMM":"asterisk","_UID":"1000","_PID":"44","__REALTIME_TIMESTAMP":"1796224142727103","MESSAGE":"other user"}`,
		`not json`,
		`{"__CURSOR":"` + cursor(8) + `",` + a + `,"MESSAGE":"last"}`,
	}, "\n") + "\n"
	jctl, argsFile := fakeJournalctl(t, output)
	c := follow(t, journal.Options{Match: journal.Match{Commands: []string{"asterisk"}, UIDs: []uint32{0}}, Journalctl: jctl})
	got := c.waitMessages(t, 3)
	if want := []string{"plain", "bin\n\x1b[1m", "last"}; !equal(got, want) {
		t.Errorf("messages %q; want %q", got, want)
	}
	testutil.WaitFor(t, 5*time.Second, "the last cursor", func() bool { return c.lastCursor() == cursor(8) })
	st := c.f.Stats()
	if st.Entries != 8 || st.Refused != 3 || st.Malformed != 3 {
		t.Errorf("stats %+v; want 8 entries, 3 refused, 3 malformed", st)
	}
	if c.f.Origin() != cursor(0) {
		t.Errorf("origin %q; want the journal's last entry", c.f.Origin())
	}
	args := readArgs(t, argsFile)
	if len(args) != 2 || !strings.Contains(args[0], "--lines=1") ||
		!strings.Contains(args[1], "--follow") || !strings.Contains(args[1], "--cursor="+cursor(0)) ||
		!strings.HasSuffix(args[1], "_COMM=asterisk _UID=0") {
		t.Errorf("journalctl runs: %q", args)
	}
	c.mu.Lock()
	e := c.entries[0]
	c.mu.Unlock()
	if e.PID != 42 || e.UID != 0 || e.Comm != "asterisk" || e.Time.UnixMicro() != 1796224142727103 {
		t.Errorf("entry %+v", e)
	}
}

// TestAppendLine: one line per message, whatever the message holds; the
// program and host from trusted fields when they can stand as words.
func TestAppendLine(t *testing.T) {
	at := time.UnixMicro(1796224142727103)
	for _, tc := range []struct {
		name string
		e    journal.Entry
		want string
	}{
		{"plain", journal.Entry{Time: at, Comm: "asterisk", Ident: "forged", Host: "pbx", PID: 7, Message: []byte("NOTICE[1]: x")},
			"2026-12-02T15:09:02.727103Z pbx asterisk[7]: NOTICE[1]: x"},
		{"newline and CR", journal.Entry{Time: at, Comm: "asterisk", Host: "pbx", PID: 7, Message: []byte("a\nb\r\nc\x00d\x7f")},
			"2026-12-02T15:09:02.727103Z pbx asterisk[7]: a#012b#015#012c#000d#177"},
		{"tab and colour stay", journal.Entry{Time: at, Comm: "asterisk", Host: "pbx", PID: 7, Message: []byte("\x1b[1;31mNOTICE\x1b[0m\tx")},
			"2026-12-02T15:09:02.727103Z pbx asterisk[7]: \x1b[1;31mNOTICE\x1b[0m\tx"},
		{"no comm: the identifier", journal.Entry{Time: at, Ident: "/usr/sbin/kamailio", Host: "pbx", PID: 7, Message: []byte("m")},
			"2026-12-02T15:09:02.727103Z pbx /usr/sbin/kamailio[7]: m"},
		{"names that are not words", journal.Entry{Time: at, Comm: "a b", Ident: "x[1]: y", Host: "p q", PID: 7, Message: []byte("m")},
			"2026-12-02T15:09:02.727103Z localhost -[7]: m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(tc.e.AppendLine(nil))
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if strings.ContainsAny(got, "\n\r") {
				t.Error("the line holds a line break")
			}
		})
	}
}

// TestMatch: what a match may name, and its stable form.
func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    journal.Match
		want string // the errors, "" none
	}{
		{"unit", journal.Match{Units: []string{"kamailio.service"}}, ""},
		{"command and uid", journal.Match{Commands: []string{"asterisk"}, UIDs: []uint32{0}}, ""},
		{"command alone", journal.Match{Commands: []string{"asterisk"}}, `uids: commands alone admit any user's program of that name (a copy of logger named "asterisk"): add the uids the PBX runs as, or units`},
		{"nothing", journal.Match{UIDs: []uint32{0}}, "units: set units (systemd units) or commands (program names) whose messages to read"},
		{"bad names", journal.Match{Units: []string{"kamailio", "a b.service"}, Commands: []string{"a=b", "averyveryverylongname"}, Namespace: "x/y"},
			`units[0]: "kamailio" is not a unit name such as "kamailio.service"` + "\n" +
				`units[1]: "a b.service" is not a unit name such as "kamailio.service"` + "\n" +
				`commands[0]: "a=b" is not a program name such as "asterisk"` + "\n" +
				`commands[1]: "averyveryverylongname" is longer than the 15 bytes the kernel keeps of a program's name: write "averyveryverylo"` + "\n" +
				`namespace: "x/y" is not a journal namespace (letters, digits, - and _)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := tc.m.Validate(); err != nil {
				got = err.Error()
				var fe *journal.FieldError
				if !errors.As(err, &fe) {
					t.Errorf("not a *FieldError: %v", err)
				}
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	m := journal.Match{Namespace: "pbx", Units: []string{"b.service", "a.service"}, Commands: []string{"x"}, UIDs: []uint32{5, 0}}
	if got, want := m.String(), "namespace=pbx _SYSTEMD_UNIT=a.service _SYSTEMD_UNIT=b.service _COMM=x _UID=0 _UID=5"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	if m.Units[0] != "b.service" {
		t.Error("String sorted the match's own lists")
	}
}

// TestNoJournalctl: a journalctl that cannot be run is a problem reported
// (and logged) once and tried again, not the end of the Follower.
func TestNoJournalctl(t *testing.T) {
	logs := &testutil.Buffer{}
	c := follow(t, journal.Options{Match: journal.Match{Units: []string{"kamailio.service"}}, Journalctl: "/nonexistent/journalctl", Logger: zerolog.New(logs)})
	testutil.WaitFor(t, 5*time.Second, "three tries", func() bool { return c.f.Stats().Restarts >= 3 })
	p := c.problemList()
	if len(p) != 1 || !strings.Contains(p[0], "/nonexistent/journalctl") || !strings.Contains(p[0], "no such file") {
		t.Errorf("problems %q; want one, naming the program", p)
	}
	if n := logs.Count("journal not followed"); n != 1 {
		t.Errorf("the same problem logged %d times; want once:\n%s", n, logs)
	}
}

// TestBadCursors: a saved cursor journalctl could not read is dropped
// (the Follower starts as at first start rather than fail at every run);
// an entry whose cursor is not one is not handed over and moves nothing.
func TestBadCursors(t *testing.T) {
	const a = `"_COMM":"asterisk","_UID":"0","_PID":"42","__REALTIME_TIMESTAMP":"1796224142727103"`
	output := `{"__CURSOR":"` + cursor(1) + `",` + a + `,"MESSAGE":"one"}` + "\n" +
		`{"__CURSOR":"s=1;i=2;--output=x",` + a + `,"MESSAGE":"bad cursor"}` + "\n" +
		`{"__CURSOR":"` + cursor(2) + `",` + a + `,"MESSAGE":"` + strings.Repeat("x", journal.MaxMessage+1) + `"}` + "\n"
	jctl, argsFile := fakeJournalctl(t, output)
	c := follow(t, journal.Options{Match: journal.Match{Commands: []string{"asterisk"}, UIDs: []uint32{0}}, Journalctl: jctl, Cursor: "garbage;--lines=0"})
	testutil.WaitFor(t, 5*time.Second, "the last cursor", func() bool { return c.lastCursor() == cursor(2) })
	if got := c.messages(); !equal(got, []string{"one"}) {
		t.Errorf("messages %q; want one", got)
	}
	if st := c.f.Stats(); st.Entries != 2 || st.Malformed != 1 || st.TooLong != 1 {
		t.Errorf("stats %+v; want 2 entries, 1 malformed, 1 too long", st)
	}
	args := readArgs(t, argsFile)
	if len(args) != 2 || !strings.Contains(args[0], "--lines=1") || strings.Contains(args[1], "garbage") {
		t.Errorf("journalctl runs: %q; want the journal's end found, the bad cursor unused", args)
	}
}
