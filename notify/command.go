package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxOutput is how much of a failed command's output LastError keeps: its
// end, where the reason usually is.
const maxOutput = 4 << 10

// commandPATH is the only PATH a command gets: it should name its own
// programs absolutely, and never depend on how sipguard was started.
const commandPATH = "/usr/sbin:/usr/bin:/sbin:/bin"

// waitDelay bounds the wait for a command's output once it has exited or
// been killed, in case a process it started outside its process group
// still holds the pipe.
const waitDelay = 2 * time.Second

// field is an Event field as a command sees it, in Argv and in its
// environment.
type field struct {
	name string
	get  func(Event) string
}

var fields = []field{
	{"type", func(e Event) string { return e.Type }},
	{"target", func(e Event) string { return e.Target }},
	{"addr", func(e Event) string { return e.Addr }},
	{"rule", func(e Event) string { return e.Rule }},
	{"reason", func(e Event) string { return e.Reason }},
	{"source", func(e Event) string { return e.Source }},
	{"user", func(e Event) string { return e.User }},
	{"count", func(e Event) string { return strconv.Itoa(e.Count) }},
	{"offences", func(e Event) string { return strconv.Itoa(e.Offences) }},
	{"time", func(e Event) string { return rfc3339(e.Time) }},
	{"expires", func(e Event) string { return rfc3339(e.Expires) }},
	{"host", func(e Event) string { return e.Host }},
	{"country", func(e Event) string { return e.Country }},
}

// Placeholders are the names a command's Argv may use in braces, "{target}",
// each replaced by that Event field as text: times in RFC 3339 (empty when
// zero), counts in decimal. Each is also in the command's environment as
// SIPGUARD_EVENT_ and its name in capitals (SIPGUARD_EVENT_TARGET).
var Placeholders = func() []string {
	var names []string
	for _, f := range fields {
		names = append(names, f.name)
	}
	return names
}()

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// command runs a program once per Event.
type command struct {
	argv    [][]argPart // argv[0] is a single literal
	timeout time.Duration
}

// argPart is a literal piece of an argument, or a placeholder when name is
// set.
type argPart struct {
	lit, name string
}

// problems lists what is wrong with c.
func (c Command) problems() []error {
	errs := checkCommon(c.Name, c.Events, c.Timeout, c.Queue)
	argError := func(i int, err error) { errs = append(errs, &FieldError{Field: "argv", Index: i, Err: err}) }
	for i, a := range c.Argv {
		parts, err := parseArg(a)
		switch {
		case strings.IndexByte(a, 0) >= 0:
			argError(i, errors.New("holds a NUL byte"))
		case err != nil:
			argError(i, err)
		case i == 0 && !filepath.IsAbs(a):
			// No PATH search: which program runs must not depend on the
			// environment sipguard was started in.
			argError(i, fmt.Errorf("%q is not an absolute path", a))
		case i == 0 && (len(parts) != 1 || parts[0].name != ""):
			// An Event must never choose the program.
			argError(i, fmt.Errorf("%q: placeholders are not allowed in the program", a))
		}
	}
	if len(c.Argv) == 0 {
		errs = append(errs, fieldError("argv", errors.New("empty")))
	}
	return errs
}

// newCommand returns the deliverer of a valid c.
func newCommand(c Command) *command {
	argv := make([][]argPart, len(c.Argv))
	for i, a := range c.Argv {
		argv[i], _ = parseArg(a)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultCommandTimeout
	}
	return &command{argv: argv, timeout: timeout}
}

// parseArg splits an argument into literals and placeholders. A placeholder
// is "{" word characters "}"; an unknown name is an error, so that a typo
// such as "{adress}" is found at start, not passed on literally. Any other
// brace is literal text ('{"a":1}', "{}", "{ x }").
func parseArg(s string) ([]argPart, error) {
	var parts []argPart
	lit := 0 // where the pending literal starts
	for i := 0; i < len(s); {
		if s[i] != '{' {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && isWord(s[j]) {
			j++
		}
		if j == i+1 || j == len(s) || s[j] != '}' {
			i++
			continue
		}
		name := s[i+1 : j]
		if !isPlaceholder(name) {
			return nil, fmt.Errorf("%w {%s} (known: %s)", ErrUnknownPlaceholder, name, strings.Join(Placeholders, " "))
		}
		if lit < i {
			parts = append(parts, argPart{lit: s[lit:i]})
		}
		parts = append(parts, argPart{name: name})
		i = j + 1
		lit = i
	}
	if lit < len(s) || len(parts) == 0 {
		parts = append(parts, argPart{lit: s[lit:]})
	}
	return parts, nil
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isPlaceholder(name string) bool {
	for _, f := range fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// deliver runs the command for ev and waits for it, at most timeout.
func (c *command) deliver(ctx context.Context, ev Event) error {
	stdin, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	stdin = append(stdin, '\n')

	// Every value once, with NUL removed: execve cannot pass a NUL inside
	// an argument or a variable, and would refuse to run the command.
	vals := make(map[string]string, len(fields))
	env := make([]string, 0, len(fields)+1)
	env = append(env, "PATH="+commandPATH)
	for _, f := range fields {
		v := strings.ReplaceAll(f.get(ev), "\x00", "")
		vals[f.name] = v
		env = append(env, "SIPGUARD_EVENT_"+strings.ToUpper(f.name)+"="+v)
	}
	// One pass over the parsed template: a value is never scanned for
	// placeholders, so text such as "{target}" in a Reason stays as it is.
	args := make([]string, len(c.argv))
	for i, parts := range c.argv {
		var b strings.Builder
		for _, p := range parts {
			if p.name == "" {
				b.WriteString(p.lit)
				continue
			}
			v := vals[p.name]
			if b.Len() == 0 && optionLike(v) {
				// The argument would start with the Event's text: a user
				// name "-f/etc/shadow" must not become an option.
				b.WriteByte(' ')
			}
			b.WriteString(v)
		}
		args[i] = b.String()
	}

	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, args[0])
	cmd.Args = args
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(stdin)
	out := &tailBuffer{}
	// The same comparable writer for both: os/exec then uses one pipe and
	// never calls Write concurrently.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	killGroup(cmd)

	err = cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return err // shutdown, not the command's fault
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return out.annotate(fmt.Errorf("killed after %v", c.timeout))
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// It exited 0 but left a process behind holding its output:
		// delivered all the same.
		return nil
	}
	if _, ok := errors.AsType[*exec.ExitError](err); ok {
		return out.annotate(err)
	}
	return err // could not start, e.g. no such file
}

// optionLike reports whether a program could read an argument starting
// with v as an option: "-x", "--x", and "+x" (date, dig, set).
func optionLike(v string) bool { return v != "" && (v[0] == '-' || v[0] == '+') }

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct {
	b   []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= maxOutput {
		t.b = append(t.b[:0], p[len(p)-maxOutput:]...)
		t.cut = true
		return n, nil
	}
	if over := len(t.b) + len(p) - maxOutput; over > 0 {
		t.b = t.b[:copy(t.b, t.b[over:])]
		t.cut = true
	}
	t.b = append(t.b, p...)
	return n, nil
}

// annotate adds the output kept, if any, to err.
func (t *tailBuffer) annotate(err error) error {
	s := strings.TrimSpace(strings.ToValidUTF8(string(t.b), "\uFFFD"))
	if s == "" {
		return err
	}
	if t.cut {
		s = "…" + s
	}
	return fmt.Errorf("%w: %s", err, s)
}
