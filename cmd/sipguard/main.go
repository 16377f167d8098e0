// Command sipguard protects PBX hosts from SIP brute force, scanning and
// toll fraud: it reads PBX logs, counts failures per attacker address and
// bans attackers in the kernel firewall.
//
// This package is the command line only: one file per command, each
// parsing its flags and calling the packages that do the work (config for
// rules.toml, daemon for run, control for the commands that talk to the
// daemon).
//
// Exit codes: exitCodes says what each one means; help, the manual page
// and docs/operations.md show it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/internal/didyoumean"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first SIGINT/SIGTERM stops cleanly; a second one does not wait.
	// Notify is called on the goroutine, beside the command: it took 1 ms
	// (the signal loop's start, a system call per signal), a tenth of
	// scan's start.
	go func() {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		cancel()
		<-sig
		fmt.Fprintln(os.Stderr, "sipguard: second signal, exiting now")
		os.Exit(exitError)
	}()
	m := NewMain()
	os.Exit(m.Exit(m.Run(ctx, os.Args[1:])))
}

// Main runs sipguard's commands. Its fields let tests run commands in
// process without touching the host.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// ConfigPath is read when no -c is given and it exists.
	ConfigPath string
	// Now is the wall clock.
	Now func() time.Time
	// HostAddrs lists the host's own addresses for allow.self.
	HostAddrs func() ([]netip.Prefix, error)
	// Getenv reads the environment ($SSH_CONNECTION: see lockout.go).
	Getenv func(string) string
	// Gateways lists the host's default gateways.
	Gateways func() ([]netip.Addr, error)

	// config is the -c FILE given before the command, used by commands
	// given no -c of their own.
	config string
	// usage prints the usage of the command being run (see flagSet).
	usage func(io.Writer)

	// described, when set, receives the synopsis and flags of the command
	// run (with -h): how man and completion learn them.
	described *described
}

// NewMain returns a Main for the real process.
func NewMain() *Main {
	return &Main{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ConfigPath: config.DefaultPath, Now: time.Now, HostAddrs: config.HostAddrs,
		Getenv: os.Getenv, Gateways: Gateways,
	}
}

// The process's exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitDegraded = 3
)

// exitCodes says what each exit code means, as help and the manual page
// show it.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "success; status: the daemon runs healthy"},
	{exitError, "error; status: the daemon is not running; check --strict: a log cannot be read; audit: a finding at or above --fail-on"},
	{exitUsage, "usage error (an unknown command or flag)"},
	{exitDegraded, "status: the daemon runs degraded (a source is not read, or a firewall error)"},
}

// degradedError is status's answer for a daemon that runs but does not
// protect fully (exit code 3): what is wrong.
type degradedError struct{ problems []string }

func (e *degradedError) Error() string { return "degraded: " + strings.Join(e.problems, "; ") }

// usageError is a mistake on the command line (exit code 2); cmd is the
// command it was made with, if known.
type usageError struct{ msg, cmd string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Exit prints err and returns the process exit code for it.
func (m *Main) Exit(err error) int {
	var ue *usageError
	var de *degradedError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(m.Stderr, "Error: %v\nTry: sipguard help %s\n", err, ue.cmd)
		return exitUsage
	case errors.As(err, &de):
		fmt.Fprintf(m.Stderr, "warning: %v\n", err)
		return exitDegraded
	default:
		fmt.Fprintf(m.Stderr, "Error: %v\n", err)
		return exitError
	}
}

// command is one of sipguard's commands.
type command struct {
	name, summary string
	run           func(m *Main, ctx context.Context, args []string) error
}

// commands lists the commands, in the order help shows them; man and
// completion are built from it and from each command's own flags. Each
// command's file declares its entry. init fills it in because completion
// and man read it.
var commands []command

func init() {
	commands = []command{runCommand, statusCommand, listCommand, whyCommand, trunksCommand, banCommand, unbanCommand, exportCommand,
		importCommand, scanCommand, reportCommand, checkCommand, auditCommand, completionCommand, manCommand, versionCommand}
	// The access policy's (issue 15), after status and list in help.
	commands = slices.Insert(commands, 3, learnedCommand, policyCommand)
}

// usage is the text of sipguard help.
func usage() string {
	var b strings.Builder
	b.WriteString(`sipguard protects PBX hosts from SIP brute force, scanning and toll fraud.

Usage:
  sipguard [-c FILE] <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString(`
Every command takes -c FILE (default: /etc/sipguard/rules.toml when it
exists, else the built-in defaults, which are the shipped rules.toml);
status, list, ban, unban, export and import find the daemon's socket
there. Run "sipguard help <command>" for a command's flags.

Exit codes:
`)
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.code, e.meaning)
	}
	return b.String()
}

// Run runs the command in args, after sipguard's own flags: -c FILE (the
// config of every command given none of its own), --version, --help.
func (m *Main) Run(ctx context.Context, args []string) error {
	for len(args) > 0 {
		switch a := args[0]; {
		case a == "-c" || a == "--c" || a == "--config":
			if len(args) < 2 {
				return usagef("%s needs a FILE", a)
			}
			m.config, args = args[1], args[2:]
			continue
		case strings.HasPrefix(a, "-c=") || strings.HasPrefix(a, "--c=") || strings.HasPrefix(a, "--config="):
			_, m.config, _ = strings.Cut(a, "=")
			args = args[1:]
			continue
		case a == "--version" || a == "-version" || a == "-V":
			return m.version(ctx, args[1:])
		}
		break
	}
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage())
		return usagef("no command given")
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 0 && name == "help" {
			// sipguard help CMD is sipguard CMD --help.
			name, args = args[0], []string{"--help"}
			break
		}
		fmt.Fprint(m.Stdout, usage())
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(m, ctx, args)
		}
	}
	if guess, _, ok := didyoumean.Closest(name, commandNames()); ok {
		return usagef("unknown command %q (did you mean %q?)", name, guess)
	}
	return usagef("unknown command %q", name)
}

// flagSet returns a flag set that reports errors instead of exiting. Its
// usage goes to stdout when asked for (-h, --help, sipguard help CMD), to
// stderr with a mistake.
func (m *Main) flagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseArgs reports errors, with the usage
	if m.described != nil {
		m.described.synopsis, m.described.flags = synopsis, fs
	}
	fs.Usage = func() {}
	m.usage = func(w io.Writer) { printUsage(w, synopsis, fs) }
	return fs
}

// printUsage prints a command's synopsis and flags, each flag as people
// type it: -c with one dash, --json with two.
func printUsage(w io.Writer, synopsis string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: sipguard %s\n", synopsis)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(w, "\nFlags:\n")
			first = false
		}
		arg, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  %s", flagName(f.Name))
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		if f.DefValue != "" && f.DefValue != "false" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "\n    \t%s\n", text)
	})
}

// flagName is a flag as people type it: "-c", "--json".
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// described is a command's synopsis and flags, as its -h shows them.
type described struct {
	synopsis string
	flags    *flag.FlagSet
}

// describe returns what command name shows for -h, without running it.
func (m *Main) describe(name string) described {
	d := &described{}
	sub := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, ConfigPath: "/nonexistent",
		Now: m.Now, HostAddrs: m.HostAddrs, Getenv: m.Getenv, Gateways: m.Gateways, described: d}
	sub.Run(context.Background(), []string{name, "-h"})
	if d.flags == nil {
		d.synopsis, d.flags = name, flag.NewFlagSet(name, flag.ContinueOnError)
	}
	return *d
}

// parseArgs parses flags anywhere among the arguments, as users type them
// ("scan messages.log --json"), and returns the positional arguments. "--"
// ends the flags: everything after it is an argument ("scan -- -a.log").
// -h and --help print the command's usage to stdout.
func (m *Main) parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			m.usage(m.Stdout)
			return nil, err
		}
		if err != nil {
			var b strings.Builder
			m.usage(&b)
			synopsis, _, _ := strings.Cut(b.String(), "\n")
			return nil, &usageError{msg: err.Error() + "\n" + synopsis, cmd: fs.Name()}
		}
		rest := fs.Args()
		// The flag package consumes a "--" it stops at: everything after
		// it is an argument, flag-like or not.
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseNoArgs parses the flags of a command that takes no arguments.
func (m *Main) parseNoArgs(fs *flag.FlagSet, args []string) error {
	rest, err := m.parseArgs(fs, args)
	if err == nil && len(rest) > 0 {
		err = &usageError{msg: fs.Name() + " takes no arguments", cmd: fs.Name()}
	}
	return err
}

// parseOneArg parses the flags of a command that takes one argument, and
// returns it; usage is the error for any other number of arguments.
func (m *Main) parseOneArg(fs *flag.FlagSet, args []string, usage string) (string, error) {
	rest, err := m.parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(rest) != 1 {
		return "", &usageError{msg: usage, cmd: fs.Name()}
	}
	return rest[0], nil
}

// loadConfig reads the config named by -c (the command's, else the one
// before the command), or the default one.
func (m *Main) loadConfig(path string) (*config.Config, error) {
	if path == "" {
		path = m.config
	}
	if path == "" {
		if _, err := os.Stat(m.ConfigPath); err != nil {
			return config.DefaultConfig(), nil
		}
		path = m.ConfigPath
	}
	return config.Load(path)
}

// daemonFlag adds the -c of the commands that talk to the daemon, and
// returns how to reach the daemon the config it names runs.
func (m *Main) daemonFlag(fs *flag.FlagSet) func() (*control.Client, error) {
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	return func() (*control.Client, error) {
		cfg, err := m.loadConfig(*path)
		if err != nil {
			return nil, err
		}
		return control.NewClient(cfg.Daemon.Socket), nil
	}
}

// query runs a command that asks the daemon one thing and prints the
// answer, for people or with --json as JSON. It takes -c and no arguments.
func query[T any](m *Main, ctx context.Context, args []string, name, synopsis string,
	ask func(*control.Client, context.Context) (T, error), print func(io.Writer, T) error) error {
	fs := m.flagSet(name, synopsis)
	client := m.daemonFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := m.parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	answer, err := ask(c, ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, answer)
	}
	return print(m.Stdout, answer)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
