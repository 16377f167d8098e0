package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sipguard/sipguard/control"
)

var importCommand = command{"import", "ban a list of addresses at once (sipguard, JSON, fail2ban)", (*Main).importBans}

const importSynopsis = `import [-c FILE] [--for DURATION] [--reason TEXT] [--format FORMAT] FILE|-

Bans every address and network of a list at once, as manual bans (one
firewall transaction). FORMAT is
  plain     one address or network per line, "#" or ";" comments (the
            output of "sipguard export", a blocklist)
  json      "sipguard export --json" or "list --json": each ban keeps its
            remaining time and reason (--for and --reason override them)
  fail2ban  "fail2ban-client banned" ([{'jail': ['192.0.2.1', ...]}]) or
            "fail2ban-client get JAIL banip" (addresses separated by spaces)
  auto      (default) json, fail2ban or plain, by the look of the input
Entries that are allowlisted, special-purpose (loopback, link-local, ...),
longer than 3650d or inside another network of the list are refused and
listed; the rest is banned. A network inside a wider ban in force is
recorded beside it and put in force when that one goes.`

func (m *Main) importBans(ctx context.Context, args []string) error {
	fs := m.flagSet("import", importSynopsis)
	client := m.daemonFlag(fs)
	dur := fs.String("for", "", "ban `DURATION` (default: [daemon] manual_ban_time; json: each ban's remaining time)")
	reason := fs.String("reason", "", "`TEXT` shown by list (default: \"imported\", json: each ban's reason)")
	format := fs.String("format", "auto", "input `FORMAT`: auto, plain, json, fail2ban")
	file, err := m.parseOneArg(fs, args, "import takes one file (- for standard input)")
	if err != nil {
		return err
	}
	var data []byte
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(m.Stdin, 256<<20))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	reqs, err := readImport(data, *format, m.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for i := range reqs {
		if *dur != "" {
			reqs[i].For = *dur
		}
		if *reason != "" {
			reqs[i].Reason = *reason
		} else if reqs[i].Reason == "" {
			reqs[i].Reason = "imported"
		}
	}
	if len(reqs) > control.MaxImport {
		return fmt.Errorf("%s: %d entries; at most %d per import", file, len(reqs), control.MaxImport)
	}
	c, err := client()
	if err != nil {
		return err
	}
	res, err := c.Import(ctx, control.ImportRequest{Bans: reqs})
	if err != nil {
		return err
	}
	for _, r := range res.Refused {
		fmt.Fprintf(m.Stderr, "refused: %s\n", r)
	}
	fmt.Fprintf(m.Stdout, "imported %d: %d banned, %d renewed, %d kept (banned for longer already), %d refused\n",
		len(reqs), res.Banned, res.Renewed, res.Kept, len(res.Refused))
	if res.Covered > 0 {
		fmt.Fprintf(m.Stdout, "%d of them inside a wider ban in force: in the kernel when that one goes\n", res.Covered)
	}
	return nil
}
