// Command sipguard protects PBX hosts from SIP brute force, scanning and
// toll fraud: it reads PBX logs, counts failures per attacker address and
// bans attackers in the kernel firewall.
//
// Exit codes: 0 success, 1 error (a bad config, an unreadable file, a
// failed command), 2 usage error (unknown command or flag).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sipguard/sipguard/config"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first SIGINT/SIGTERM stops cleanly; a second one does not wait.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cancel()
		<-sig
		fmt.Fprintln(os.Stderr, "sipguard: second signal, exiting now")
		os.Exit(1)
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

	// described, when set, receives the synopsis and flags of the command
	// run (with -h): how man and completion learn them.
	described *described
}

// NewMain returns a Main for the real process.
func NewMain() *Main {
	return &Main{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ConfigPath: config.DefaultPath, Now: time.Now, HostAddrs: config.HostAddrs,
	}
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// Exit prints err and returns the process exit code for it.
func (m *Main) Exit(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(m.Stderr, "Error: %v\nTry: sipguard help\n", err)
		return 2
	default:
		fmt.Fprintf(m.Stderr, "Error: %v\n", err)
		return 1
	}
}

// commands lists the commands, in the order help shows them; man and
// completion are built from it and from each command's own flags.
var commands = []struct{ name, summary string }{
	{"run", "run the daemon: follow the logs, ban in nftables (as root)"},
	{"status", "show the running daemon"},
	{"list", "list the bans in force"},
	{"ban", "ban an address or network now"},
	{"unban", "lift a ban (and clear the address's counters)"},
	{"export", "write the bans in force (a list, or JSON)"},
	{"import", "ban a list of addresses at once (sipguard, JSON, fail2ban)"},
	{"scan", "replay logs offline and print the bans the rules would make"},
	{"check", "validate a configuration file"},
	{"completion", "print a shell completion script (bash, zsh)"},
	{"man", "print the manual page (roff)"},
	{"version", "print the version"},
}

// usage is the text of sipguard help.
var usage = func() string {
	var b strings.Builder
	b.WriteString(`sipguard protects PBX hosts from SIP brute force, scanning and toll fraud.

Usage:
  sipguard <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString(`
Every command takes -c FILE (default: /etc/sipguard/rules.toml when it
exists, else the built-in defaults, which are the shipped rules.toml);
status, list, ban, unban, export and import find the daemon's socket
there. Run "sipguard <command> -h" for a command's flags.

Exit codes: 0 success, 1 error, 2 usage error.
`)
	return b.String()
}()

// Run runs the command in args.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return usagef("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return m.run(ctx, args)
	case "status":
		return m.status(ctx, args)
	case "list":
		return m.list(ctx, args)
	case "ban":
		return m.ban(ctx, args)
	case "unban":
		return m.unban(ctx, args)
	case "export":
		return m.export(ctx, args)
	case "import":
		return m.importBans(ctx, args)
	case "completion":
		return m.completion(args)
	case "man":
		return m.man(args)
	case "scan":
		return m.scan(ctx, args)
	case "check":
		return m.check(args)
	case "version":
		return m.version(args)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

// flagSet returns a flag set that reports errors instead of exiting.
func (m *Main) flagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	if m.described != nil {
		m.described.synopsis, m.described.flags = synopsis, fs
	}
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: sipguard %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags anywhere among the arguments, as users type them
// ("scan messages.log --json"), and returns the positional arguments. "--"
// ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" && len(args) > 0 {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadConfig reads the config named by -c, or the default one.
func (m *Main) loadConfig(path string) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat(m.ConfigPath); err != nil {
			return config.DefaultConfig(), nil
		}
		path = m.ConfigPath
	}
	return config.Load(path)
}

// check validates a config file.
func (m *Main) check(args []string) error {
	fs := m.flagSet("check", "check [-c FILE]\n\nValidates a configuration file: every key, value and [[parser]] pattern (on\nits example lines). Errors name the file, line and key; the exit code is 1.")
	path := fs.String("c", "", "config `FILE` to check")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("check takes no arguments (use -c FILE)")
	}
	cfg, err := m.loadConfig(*path)
	if err != nil {
		return err
	}
	name := cfg.File
	if name == "" {
		name = "built-in config"
	}
	fmt.Fprintf(m.Stdout, "%s: OK (%d %s, %d %s)\n", name,
		len(cfg.Sources), plural(len(cfg.Sources), "source"), len(cfg.Rules), plural(len(cfg.Rules), "rule"))
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func (m *Main) version(args []string) error {
	fs := m.flagSet("version", "version\n\nPrints the version.")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintf(m.Stdout, "sipguard %s\n", strings.TrimSpace(Version()))
	return nil
}
