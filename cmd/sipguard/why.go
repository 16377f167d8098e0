package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"
)

var whyCommand = command{"why", "explain an address: its bans, its counters now, the lines that banned it", (*Main).why}

const whySynopsis = `why [-c FILE] [--json] ADDR|CIDR

Explains what the running daemon holds about an address or network: the
allowlist entry that holds it, the bans in force that cover it, and for an
address what the engine counts it as, its events in each rule's window now
and its offences (escalation); then the log lines that led to its bans
(the last lines of the last bans made since the daemon started). Log text
is written by attackers: it is shown quoted.`

func (m *Main) why(ctx context.Context, args []string) error {
	fs := m.flagSet("why", whySynopsis)
	client := m.daemonFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	target, err := m.parseOneArg(fs, args, "why takes one address or network")
	if err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	res, err := c.Why(ctx, target)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, res)
	}
	w := m.Stdout
	switch {
	case res.Allowlisted != "":
		fmt.Fprintf(w, "%s: allowlisted by %s: never counted, never banned\n", res.Target, res.Allowlisted)
	case len(res.Bans) == 0:
		fmt.Fprintf(w, "%s: not banned\n", res.Target)
	}
	for _, b := range res.Bans {
		origin := ""
		if b.Origin != "" {
			origin = ", by " + b.Origin
		}
		fmt.Fprintf(w, "%s: banned as %s (%s%s) until %s: %s%s\n", res.Target, b.Target, withPorts(b.Rule, b.Ports), origin,
			b.Expires.Local().Format(time.DateTime), coveredBy(b), b.Reason)
	}
	if res.CountedAs != "" {
		fmt.Fprintf(w, "counted as %s; %d earlier %s remembered for escalation\n", res.CountedAs, res.Offences, plural(res.Offences, "ban"))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "rule\tevents now\tmax_retry\tfind_time")
		for _, r := range res.Rules {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Name, r.Events, r.MaxRetry, seconds(r.FindTime))
		}
		tw.Flush()
	}
	if len(res.Lines) > 0 {
		fmt.Fprintln(w, "log lines that led to the ban:")
		for _, l := range res.Lines {
			fmt.Fprintf(w, "  %s:%d %s %s\n", l.Source, l.Line, l.Time.Local().Format(time.DateTime), strconv.Quote(l.Text))
		}
	}
	return nil
}
