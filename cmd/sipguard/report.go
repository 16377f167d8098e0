package main

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sipguard/sipguard/audit"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/report"
)

var reportCommand = command{"report", "review logs: one HTML page with charts (or JSON) of attacks, bans and what got through", (*Main).report}

const reportSynopsis = `report [-c FILE] [--since DURATION] [--parser NAME] [--asterisk-dir DIR] [--geoip FILE] [-o FILE] [--json] FILE...

Replays logs through the parsers and rules as scan does, and writes a
review: failures per hour by kind, the bans the rules would make, the top
attacking addresses, networks, accounts and extensions, successful logins
after failures, services attacked, dropped lines, and the failures that
stayed below every rule. The HTML page is self-contained (no script, no
font, nothing loaded): open it offline, attach it to a ticket.

FILE, --parser and -c are as for scan. --since 7d reports only the events
of the last seven days (before the current time). -o writes to FILE
instead of standard output. The accounts being guessed whose password
sipguard audit finds weak in --asterisk-dir (default /etc/asterisk, when
present) are marked. The top addresses and networks have a country column
with a country database: --geoip FILE (a DB-IP Lite country or
GeoLite2-Country mmdb), or [geoip] database of the config. Parsers: `

type reportOptions struct {
	config, parser, out string
	asteriskDir         string // whose weak passwords are marked
	asteriskDirSet      bool
	geoip               string // the country database ("": the config's)
	since               time.Duration
	json                bool
	files               []string
}

func (m *Main) report(ctx context.Context, args []string) error {
	fs := m.flagSet("report", reportSynopsis+strings.Join(parsers.Names(), ", "))
	var o reportOptions
	var since string
	fs.StringVar(&o.config, "c", "", "config `FILE`")
	fs.StringVar(&o.parser, "parser", "", "parse every FILE with parser `NAME`")
	fs.StringVar(&since, "since", "", "report only the events of the last `DURATION` (30m, 24h, 7d)")
	fs.StringVar(&o.out, "o", "", "write the report to `FILE` instead of standard output")
	fs.BoolVar(&o.json, "json", false, "write JSON instead of HTML")
	fs.StringVar(&o.geoip, "geoip", "", "show countries from the country database `FILE` (default: [geoip] database of the config)")
	fs.StringVar(&o.asteriskDir, "asterisk-dir", "/etc/asterisk", "mark the accounts whose password sipguard audit finds weak in Asterisk's configuration `DIR` (skipped when the default is absent)")
	files, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("report needs at least one FILE (- for standard input)")
	}
	if since != "" {
		if o.since, err = duration.Parse(since); err != nil || o.since <= 0 {
			return usagef("--since %q: not a positive duration (30m, 24h, 7d)", since)
		}
	}
	o.files = files
	fs.Visit(func(f *flag.Flag) { o.asteriskDirSet = o.asteriskDirSet || f.Name == "asterisk-dir" })
	if isCallParser(o.parser) {
		return usagef("report reads logs of failures; call logs (%s) go through the toll-fraud rules with sipguard scan --parser %s", o.parser, o.parser)
	}
	cfg, err := m.replayConfig(o.config, o.parser)
	if err != nil {
		return err
	}
	return m.runReport(ctx, cfg, o)
}

func (m *Main) runReport(ctx context.Context, cfg *config.Config, o reportOptions) error {
	start := time.Now()
	now := m.Now()
	ropts := report.Options{Generated: now}
	weak, err := m.weakAccounts(o)
	if err != nil {
		return err
	}
	ropts.WeakAccounts = weak
	if o.since > 0 {
		ropts.Since = now.Add(-o.since)
	}
	if path := cmp.Or(o.geoip, cfg.GeoIP.Database); path != "" {
		db, err := geoip.Open(path)
		if err != nil {
			return err
		}
		defer db.Close()
		ropts.Country = db.Country
	}
	eng, r, done, err := m.startReplay(ctx, cfg, o.parser, o.files)
	if err != nil {
		return err
	}
	defer done()
	c := report.NewCollector(eng, ropts)
	for ev := r.Next(); ev != nil; ev = r.Next() {
		c.Add(ev)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	rep := c.Report(r.Stats())
	write := rep.WriteHTML
	if o.json {
		write = rep.WriteJSON
	}
	if err := m.writeReport(o.out, write); err != nil {
		return err
	}
	m.scanSummary(r.Stats(), eng.Stats(), time.Since(start))
	return nil
}

// weakAccounts audits Asterisk's configuration in o.asteriskDir for the
// accounts whose password is weak. The default directory may be absent
// (a report made on another machine than the PBX): then none is marked.
func (m *Main) weakAccounts(o reportOptions) (map[string]bool, error) {
	dir, err := filepath.Abs(o.asteriskDir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if o.asteriskDirSet {
			return nil, usagef("--asterisk-dir %s: not a readable directory", o.asteriskDir)
		}
		return nil, nil
	}
	r, err := audit.Run(audit.Host{FS: os.DirFS("/"), Dir: dir, Now: m.Now()})
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", dir, err)
	}
	return r.WeakAccounts(), nil
}

// writeReport writes to path, or to standard output when path is empty.
// A file is written beside its final name and renamed into place, so a
// failed run never leaves half a report where the last one was.
func (m *Main) writeReport(path string, write func(w io.Writer) error) error {
	if path == "" || path == "-" {
		out := bufio.NewWriterSize(m.Stdout, 64<<10)
		if err := write(out); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, nothing to remove
	out := bufio.NewWriterSize(f, 64<<10)
	err = write(out)
	if err == nil {
		err = out.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
