package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// described is a command's synopsis and flags, as its -h shows them.
type described struct {
	synopsis string
	flags    *flag.FlagSet
}

// describe returns what command name shows for -h, without running it.
func (m *Main) describe(name string) described {
	d := &described{}
	sub := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, ConfigPath: "/nonexistent",
		Now: m.Now, HostAddrs: m.HostAddrs, described: d}
	sub.Run(context.Background(), []string{name, "-h"})
	if d.flags == nil {
		d.synopsis, d.flags = name, flag.NewFlagSet(name, flag.ContinueOnError)
	}
	return *d
}

// flagNames lists a command's flags as typed: "-c", "--json".
func flagNames(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			out = append(out, "-"+f.Name)
		} else {
			out = append(out, "--"+f.Name)
		}
	})
	return out
}

const completionSynopsis = `completion bash|zsh

Prints a completion script. bash: put it in
/usr/share/bash-completion/completions/sipguard (or source it from
~/.bashrc); zsh: save it as _sipguard in a directory of $fpath.`

func (m *Main) completion(args []string) error {
	fs := m.flagSet("completion", completionSynopsis)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("completion takes the shell: bash or zsh")
	}
	switch rest[0] {
	case "bash":
		fmt.Fprint(m.Stdout, m.bashCompletion())
	case "zsh":
		fmt.Fprint(m.Stdout, m.zshCompletion())
	default:
		return usagef("completion: %q is not bash or zsh", rest[0])
	}
	return nil
}

// flagValues are the words some flags take.
func flagValues() map[string]string {
	return map[string]string{
		"--parser": strings.Join(parsers.Names(), " "),
		"--format": "auto plain json fail2ban",
	}
}

func (m *Main) bashCompletion() string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for sipguard (sipguard completion bash)
_sipguard() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	case $prev in
	-c) COMPREPLY=($(compgen -f -- "$cur")); return ;;
`, strings.Join(append(names, "help"), " "))
	vals := flagValues()
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", k, vals[k])
	}
	b.WriteString("\t--for) return ;;\n\t--reason) return ;;\n\t--rule) return ;;\n\tesac\n\tlocal opts\n\tcase ${COMP_WORDS[1]} in\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t%s) opts=%q ;;\n", c.name, strings.Join(flagNames(m.describe(c.name).flags), " "))
	}
	b.WriteString(`	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ ${COMP_WORDS[1]} == unban ]]; then
		COMPREPLY=($(compgen -W "$(sipguard export 2>/dev/null | sed -n 's/^\([^# ]*\) .*/\1/p')" -- "$cur"))
	elif [[ ${COMP_WORDS[1]} == completion ]]; then
		COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _sipguard sipguard
`)
	return b.String()
}

func (m *Main) zshCompletion() string {
	var b strings.Builder
	b.WriteString("#compdef sipguard\n# zsh completion for sipguard (sipguard completion zsh)\n\n_sipguard() {\n\tlocal -a cmds\n\tcmds=(\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t\t%s\n", zshQuote(c.name+":"+c.summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'command' cmds\n\t\treturn\n\tfi\n\tcase $words[2] in\n")
	vals := flagValues()
	for _, c := range commands {
		d := m.describe(c.name)
		var specs []string
		d.flags.VisitAll(func(f *flag.Flag) {
			name := "--" + f.Name
			if len(f.Name) == 1 {
				name = "-" + f.Name
			}
			arg := ""
			if !isBoolFlag(f) {
				switch {
				case vals[name] != "":
					arg = ":" + f.Name + ":(" + vals[name] + ")"
				case f.Name == "c":
					arg = ":config file:_files"
				default:
					arg = ":" + f.Name + ":"
				}
			}
			specs = append(specs, zshQuote(name+"["+zshEscape(firstLine(f.Usage))+"]"+arg))
		})
		specs = append(specs, "'*:file:_files'")
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments %s\n\t\t;;\n", c.name, strings.Join(specs, " \\\n\t\t\t"))
	}
	b.WriteString("\tesac\n}\n\n_sipguard \"$@\"\n")
	return b.String()
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(strings.ReplaceAll(s, "`", ""), "\"", "")
}

// zshQuote quotes s in single quotes for zsh.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshEscape escapes the characters _arguments gives a meaning in a
// description.
func zshEscape(s string) string {
	return strings.NewReplacer("[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

const manSynopsis = `man

Prints the manual page sipguard(8), in roff, built from each command's
help: man <(sipguard man), or install it as
/usr/share/man/man8/sipguard.8.`

func (m *Main) man(args []string) error {
	fs := m.flagSet("man", manSynopsis)
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("man takes no arguments")
	}
	w := m.Stdout
	date := m.Now()
	// Reproducible builds: the packager's date, not today's.
	if sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		date = time.Unix(sec, 0)
	}
	fmt.Fprintf(w, ".TH SIPGUARD 8 %q %q \"System Administration\"\n", date.UTC().Format(time.DateOnly), "sipguard "+strings.TrimSpace(Version()))
	fmt.Fprint(w, `.SH NAME
sipguard \- ban SIP brute force, scanners and toll fraud in nftables
.SH SYNOPSIS
.B sipguard
.I command
.RI [ flags ]
.RI [ arguments ]
.SH DESCRIPTION
sipguard follows the logs of a PBX (Asterisk, FreePBX, Yeastar by syslog,
Kamailio, and any other through patterns of your own), counts each
attacker's failed registrations, calls and logins, taking the attacker's
address only from the position the log format gives the packet source, and
bans attackers in its own nftables table
.RB ( "inet sipguard" ),
with per-element timeouts that hold while the daemon is stopped.
Rules, sources and tuning are in
.IR /etc/sipguard/rules.toml ;
.B sipguard check
validates it.
.SH COMMANDS
`)
	for _, c := range commands {
		d := m.describe(c.name)
		syn, body, _ := strings.Cut(d.synopsis, "\n")
		fmt.Fprintf(w, ".SS %s\n.B sipguard %s\n.PP\n", roff(c.name), roff(syn))
		for _, para := range strings.Split(strings.TrimSpace(body), "\n\n") {
			if para = strings.TrimSpace(para); para != "" {
				fmt.Fprintf(w, "%s\n.PP\n", roffPara(para))
			}
		}
		d.flags.VisitAll(func(f *flag.Flag) {
			arg, text := flag.UnquoteUsage(f)
			flagName := "--" + f.Name
			if len(f.Name) == 1 {
				flagName = "-" + f.Name
			}
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR", roff(flagName))
			if arg != "" {
				fmt.Fprintf(w, " \\fI%s\\fR", roff(arg))
			}
			if f.DefValue != "" && f.DefValue != "false" {
				text += " (default: " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "\n%s\n", roff(text))
		})
	}
	fmt.Fprint(w, `.SH FILES
.TP
.I /etc/sipguard/rules.toml
the configuration; without it, the built-in defaults (the shipped rules.toml)
.TP
.I /var/lib/sipguard
the state: bans in force, offence history, log positions
.TP
.I /run/sipguard/sipguard.sock
the control socket (root only)
.SH EXIT STATUS
0 on success, 1 on an error (a bad configuration, an unreadable file, a
failed request), 2 on a usage error.
.SH SEE ALSO
.BR nft (8),
.BR systemctl (1),
.BR fail2ban-client (1)
`)
	return nil
}

// roff escapes text for a roff line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffPara writes a help paragraph: lines indented in the help (lists)
// keep their line breaks.
func roffPara(p string) string {
	lines := strings.Split(p, "\n")
	indented := false
	for _, l := range lines[1:] {
		indented = indented || strings.HasPrefix(l, "  ")
	}
	if !indented {
		return roff(strings.Join(lines, " "))
	}
	var b strings.Builder
	b.WriteString(".nf\n")
	for _, l := range lines {
		b.WriteString(roff(l) + "\n")
	}
	b.WriteString(".fi")
	return b.String()
}
