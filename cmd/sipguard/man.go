package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

var manCommand = command{"man", "print the manual page (roff)", (*Main).man}

const manSynopsis = `man

Prints the manual page sipguard(8), in roff, built from each command's
help: man <(sipguard man), or install it as
/usr/share/man/man8/sipguard.8.`

func (m *Main) man(_ context.Context, args []string) error {
	fs := m.flagSet("man", manSynopsis)
	if err := m.parseNoArgs(fs, args); err != nil {
		return err
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
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR", roff(flagName(f.Name)))
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
