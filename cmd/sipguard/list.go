package main

import (
	"context"
	"fmt"
	"io"
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
	fmt.Fprintln(tw, "target\trule\torigin\tsince\texpires\treason")
	for _, b := range bans {
		origin := "here"
		if b.Origin != "" {
			origin = b.Origin
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Target, withPorts(b.Rule, b.Ports), origin, b.Since.Local().Format(time.DateTime),
			b.Expires.Local().Format(time.DateTime), b.Reason)
	}
	return tw.Flush()
}

// withPorts shows a rule with its own ports, if any: "gui [80/tcp,443/tcp]".
func withPorts(rule, ports string) string {
	if ports == "" {
		return rule
	}
	return rule + " [" + ports + "]"
}
