package main

import (
	"context"
	"fmt"

	"github.com/sipguard/sipguard/control"
)

var unbanCommand = command{"unban", "lift a ban (and clear the address's counters)", (*Main).unban}

const unbanSynopsis = `unban [-c FILE] [--cluster] ADDR|CIDR|--all

Lifts the bans covering an address or network (or all of them) and clears its counters.
With --cluster, on every node of the cluster ([cluster]) as well: nodes away now do it when they come back.`

func (m *Main) unban(ctx context.Context, args []string) error {
	fs := m.flagSet("unban", unbanSynopsis)
	client := m.daemonFlag(fs)
	all := fs.Bool("all", false, "lift every ban")
	onCluster := fs.Bool("cluster", false, "lift it on every node of the cluster too")
	rest, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *all == (len(rest) == 1) || len(rest) > 1 {
		return usagef("unban takes one address or network, or --all")
	}
	c, err := client()
	if err != nil {
		return err
	}
	req := control.UnbanRequest{All: *all, Cluster: *onCluster}
	if !*all {
		req.Target = rest[0]
	}
	res, err := c.Unban(ctx, req)
	if err != nil {
		return err
	}
	if len(res.Unbanned) == 0 {
		fmt.Fprintf(m.Stdout, "%s %s\n", res.Result, req.Target)
	}
	for _, t := range res.Unbanned {
		fmt.Fprintf(m.Stdout, "%s %s\n", res.Result, t)
	}
	if res.Cluster {
		fmt.Fprintf(m.Stdout, "unban of %s queued for the cluster (status shows when it is published)\n", req.Target)
	}
	return nil
}
