package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sipguard/sipguard/control"
)

var banCommand = command{"ban", "ban an address or network now", (*Main).ban}

const banSynopsis = `ban [-c FILE] [--for DURATION] [--reason TEXT] [--force] ADDR|CIDR

Bans an address or network now (a manual ban). An allowlisted address is
refused, and so is a network wider than an IPv4 /8 or an IPv6 /19 unless
--force. Special-purpose addresses (loopback, link-local, multicast, ...)
and a --for longer than 3650d are refused, --force or not. A ban in force
for longer than --for is kept as it is. A network inside a wider ban in
force (another node's, a feed's) is recorded beside it and put in force
when that one goes.`

func (m *Main) ban(ctx context.Context, args []string) error {
	fs := m.flagSet("ban", banSynopsis)
	client := m.daemonFlag(fs)
	dur := fs.String("for", "", "ban `DURATION` such as 30m, 12h, 7d (default: [daemon] manual_ban_time)")
	reason := fs.String("reason", "", "`TEXT` shown by list")
	force := fs.Bool("force", false, "ban a network wider than an IPv4 /8 or an IPv6 /19")
	target, err := m.parseOneArg(fs, args, "ban takes one address or network")
	if err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	res, err := c.Ban(ctx, control.BanRequest{Target: target, For: *dur, Reason: *reason, Force: *force})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s %s until %s", res.Result, res.Ban.Target, res.Ban.Expires.Local().Format(time.DateTime))
	if res.Kept {
		fmt.Fprintf(m.Stdout, " (kept: the %s ban in force lasts longer than --for)", res.Ban.Rule)
	}
	if res.Ban.CoveredBy != "" {
		fmt.Fprintf(m.Stdout, " (inside %s, which the kernel holds; in force when that ban goes)", res.Ban.CoveredBy)
	}
	fmt.Fprintln(m.Stdout)
	return nil
}
