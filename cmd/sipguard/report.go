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
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/replay"
	"github.com/sipguard/sipguard/report"
	"github.com/sipguard/sipguard/sipwire"
)

var reportCommand = command{"report", "review logs: one HTML page with charts (or JSON) of attacks, bans and what got through", (*Main).report}

const reportSynopsis = `report [-c FILE] [--since DURATION] [--parser NAME] [--asterisk-dir DIR] [--geoip FILE] [-o FILE] [--json] FILE...
       sipguard report [-c FILE] [--since DURATION] [--asterisk-dir DIR] [--geoip FILE] [-o FILE] [--json] --pcap CAPTURE

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
GeoLite2-Country mmdb), or [geoip] database of the config. With --pcap,
the PBX's SIP responses in a pcap or pcapng capture go through the wire
sensor instead of logs, as for scan --pcap. Parsers: `

type reportOptions struct {
	config, parser, out string
	asteriskDir         string // whose weak passwords are marked
	asteriskDirSet      bool
	geoip               string // the country database ("": the config's)
	pcap                string // a capture read through the wire sensor instead of logs
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
	fs.StringVar(&o.pcap, "pcap", "", "read the SIP responses of capture `FILE` (pcap or pcapng; - for standard input) instead of logs")
	fs.StringVar(&o.asteriskDir, "asterisk-dir", "/etc/asterisk", "mark the accounts whose password sipguard audit finds weak in Asterisk's configuration `DIR` (skipped when the default is absent)")
	files, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case o.pcap != "" && (len(files) > 0 || o.parser != ""):
		return usagef("report --pcap reads one capture: no log FILE or --parser with it")
	case o.pcap == "" && len(files) == 0:
		return usagef("report needs at least one FILE (- for standard input), or --pcap CAPTURE")
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
	var (
		eng     *engine.Engine
		c       *report.Collector
		streams []replay.Stats
	)
	if o.pcap != "" {
		opts, err := cfg.EngineOptions(m.HostAddrs)
		if err != nil {
			return err
		}
		if eng, err = engine.New(opts); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		c = report.NewCollector(eng, ropts)
		var failures, successes int64
		run, err := m.replayPcap(ctx, o.pcap, func(ev *parsers.Event) {
			if ev.Kind == parsers.AuthSucceeded {
				successes++
			} else {
				failures++
			}
			c.Add(ev)
		})
		if err != nil {
			return err
		}
		st := pcapStats(run)
		st.Counts.Events, st.Counts.Successes = failures, successes
		streams = []replay.Stats{st}
	} else {
		var r *replay.Replay
		var done func()
		eng, r, done, err = m.startReplay(ctx, cfg, o.parser, o.files)
		if err != nil {
			return err
		}
		defer done()
		c = report.NewCollector(eng, ropts)
		for ev := r.Next(); ev != nil; ev = r.Next() {
			c.Add(ev)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.Err(); err != nil {
			return err
		}
		streams = r.Stats()
	}
	rep := c.Report(streams)
	write := rep.WriteHTML
	if o.json {
		write = rep.WriteJSON
	}
	if err := m.writeReport(o.out, write); err != nil {
		return err
	}
	m.scanSummary(streams, eng.Stats(), time.Since(start))
	return nil
}

// pcapStats counts a capture as report counts a log: its responses as
// lines, the sensor's events, and its drops by reason (a forged Via:
// diverted).
func pcapStats(run pcapRun) replay.Stats {
	ss := run.sensor
	c := parsers.Counts{Lines: int64(ss.Responses), DropBy: map[string]int64{}, ByKind: map[string]int64{}}
	for reason, n := range ss.Dropped {
		c.DropBy[reason] = int64(n)
		c.Dropped += int64(n)
	}
	return replay.Stats{Name: run.name, Parser: sipwire.Parser, Counts: c, Bytes: run.reader.Bytes}
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
