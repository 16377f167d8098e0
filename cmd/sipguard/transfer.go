package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/feeds"
)

const exportSynopsis = `export [-c FILE] [--json] [--rule NAME]

Writes the bans in force to standard output: one address or network per
line with its rule and expiry as a comment (a list "sipguard import" and
[[feed]] read), or with --json the list as "sipguard list --json" prints
it, which import reads back with each ban's remaining time and reason.`

func (m *Main) export(ctx context.Context, args []string) error {
	fs := m.flagSet("export", exportSynopsis)
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	asJSON := fs.Bool("json", false, "write JSON")
	rule := fs.String("rule", "", "only the bans of rule `NAME` (\"manual\", \"feed:NAME\", ...)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("export takes no arguments")
	}
	c, err := m.client(*path)
	if err != nil {
		return err
	}
	bans, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *rule != "" {
		kept := bans[:0]
		for _, b := range bans {
			if b.Rule == *rule {
				kept = append(kept, b)
			}
		}
		bans = kept
	}
	if *asJSON {
		return printJSON(m.Stdout, bans)
	}
	fmt.Fprintf(m.Stdout, "# sipguard export, %s: %d bans\n", m.Now().UTC().Format(time.RFC3339), len(bans))
	for _, b := range bans {
		fmt.Fprintf(m.Stdout, "%s # %s until %s\n", b.Target, b.Rule, b.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

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
Entries that are allowlisted or inside a wider ban are refused and listed;
the rest is banned.`

func (m *Main) importBans(ctx context.Context, args []string) error {
	fs := m.flagSet("import", importSynopsis)
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	dur := fs.String("for", "", "ban `DURATION` (default: [daemon] manual_ban_time; json: each ban's remaining time)")
	reason := fs.String("reason", "", "`TEXT` shown by list (default: \"imported\", json: each ban's reason)")
	format := fs.String("format", "auto", "input `FORMAT`: auto, plain, json, fail2ban")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("import takes one file (- for standard input)")
	}
	var data []byte
	if rest[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(m.Stdin, 256<<20))
	} else {
		data, err = os.ReadFile(rest[0])
	}
	if err != nil {
		return err
	}
	reqs, err := readImport(data, *format, m.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
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
		return fmt.Errorf("%s: %d entries; at most %d per import", rest[0], len(reqs), control.MaxImport)
	}
	c, err := m.client(*path)
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
	fmt.Fprintf(m.Stdout, "imported %d: %d banned, %d renewed, %d refused\n", len(reqs), res.Banned, res.Renewed, len(res.Refused))
	return nil
}

// readImport reads a list of bans in format (see importSynopsis).
func readImport(data []byte, format string, now time.Time) ([]control.BanRequest, error) {
	trimmed := bytes.TrimSpace(data)
	if format == "auto" {
		switch {
		case len(trimmed) > 0 && trimmed[0] == '[' && json.Valid(trimmed):
			format = "json"
		case bytes.Contains(trimmed, []byte("{'")) || bytes.Contains(trimmed, []byte("['")):
			format = "fail2ban"
		default:
			format = "plain"
		}
	}
	switch format {
	case "json":
		var bans []control.Ban
		if err := json.Unmarshal(trimmed, &bans); err != nil {
			return nil, fmt.Errorf("not a sipguard JSON ban list: %w", err)
		}
		var out []control.BanRequest
		for _, b := range bans {
			left := b.Expires.Sub(now).Round(time.Second)
			if left < time.Second {
				continue // over already
			}
			reason := b.Reason
			if b.Rule != "" && b.Rule != "manual" {
				reason = strings.TrimSpace(b.Rule + ": " + reason)
			}
			out = append(out, control.BanRequest{Target: b.Target, For: fmt.Sprintf("%ds", int64(left.Seconds())), Reason: reason})
		}
		return out, nil
	case "plain":
		list, err := feeds.Parse(bytes.NewReader(data), control.MaxImport)
		if err != nil {
			return nil, err
		}
		if list.Invalid > 0 || list.TooWide > 0 {
			return nil, fmt.Errorf("%d lines are not addresses or networks (the first: %s), %d networks are too wide (the first: %s)",
				list.Invalid, dash(list.FirstInvalid), list.TooWide, dash(list.FirstTooWide))
		}
		return targets(list.Prefixes), nil
	case "fail2ban":
		return readFail2ban(trimmed)
	default:
		return nil, usagef("--format %q is not auto, plain, json or fail2ban", format)
	}
}

// readFail2ban reads what fail2ban-client prints: the Python repr of
// "banned" ([{'asterisk': ['192.0.2.1']}, {'sshd': []}]), whose quoted
// strings are jail names and addresses, or "get JAIL banip", addresses
// separated by spaces.
func readFail2ban(data []byte) ([]control.BanRequest, error) {
	var out []netip.Prefix
	if bytes.ContainsAny(data, `'"`) {
		for s := string(data); ; {
			i := strings.IndexAny(s, `'"`)
			if i < 0 {
				break
			}
			j := strings.IndexByte(s[i+1:], s[i])
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote in fail2ban output")
			}
			tok := s[i+1 : i+1+j]
			s = s[i+2+j:]
			if p, ok := fail2banTarget(tok); ok {
				out = append(out, p)
			} // otherwise a jail name
		}
	} else {
		for _, tok := range strings.FieldsFunc(string(data), func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' }) {
			p, ok := fail2banTarget(tok)
			if !ok {
				return nil, fmt.Errorf("%q is not an address", tok)
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address in the fail2ban output")
	}
	return targets(out), nil
}

// fail2banTarget reads an address or network of fail2ban's output, which
// masks nothing: a network with host bits set is taken masked.
func fail2banTarget(s string) (netip.Prefix, bool) {
	p, err := bans.ParseTarget(s)
	var hostBits *bans.HostBitsError
	if errors.As(err, &hostBits) {
		return hostBits.Masked, true
	}
	return p, err == nil
}

func targets(ps []netip.Prefix) []control.BanRequest {
	out := make([]control.BanRequest, 0, len(ps))
	for _, p := range ps {
		out = append(out, control.BanRequest{Target: bans.String(p)})
	}
	return out
}
