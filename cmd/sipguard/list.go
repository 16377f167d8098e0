package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/sipguard/sipguard/control"
)

var listCommand = command{"list", "list the bans in force", (*Main).list}

const listSynopsis = "list [-c FILE] [--json]\n\nLists the bans in force."

func (m *Main) list(ctx context.Context, args []string) error {
	return query(m, ctx, args, "list", listSynopsis, (*control.Client).List, printBans)
}

// printBans shows the bans in force for people.
func printBans(w io.Writer, bans []control.Ban) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The country column is there when the daemon has a [geoip] database
	// (and knows a banned address).
	countries := slices.ContainsFunc(bans, func(b control.Ban) bool { return b.Country != "" })
	header := "target\trule\torigin\tsince\texpires\treason"
	if countries {
		header = "target\tcountry\trule\torigin\tsince\texpires\treason"
	}
	fmt.Fprintln(tw, header)
	for _, b := range bans {
		origin := "here"
		if b.Origin != "" {
			origin = b.Origin
		}
		target := b.Target
		if countries {
			target += "\t" + cmp.Or(b.Country, "-")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\n", target, withPorts(b.Rule, b.Ports), origin, b.Since.Local().Format(time.DateTime),
			b.Expires.Local().Format(time.DateTime), coveredBy(b), b.Reason)
	}
	return tw.Flush()
}

// coveredBy says, before a ban's reason, which wider ban holds it (the
// one in the kernel meanwhile), if any.
func coveredBy(b control.Ban) string {
	if b.CoveredBy == "" {
		return ""
	}
	return "(inside " + b.CoveredBy + ", which the kernel holds) "
}

// withPorts shows a rule with its own ports, if any: "gui [80/tcp,443/tcp]".
func withPorts(rule, ports string) string {
	if ports == "" {
		return rule
	}
	return rule + " [" + ports + "]"
}
