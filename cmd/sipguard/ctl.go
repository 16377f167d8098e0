package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipguard/sipguard/control"
)

// client returns a control client for the daemon of the config named by
// -c (or the default one).
func (m *Main) client(path string) (*control.Client, error) {
	cfg, err := m.loadConfig(path)
	if err != nil {
		return nil, err
	}
	return control.NewClient(cfg.Daemon.Socket), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (m *Main) status(ctx context.Context, args []string) error {
	fs := m.flagSet("status", "status [-c FILE] [--json]\n\nShows the running daemon: sources, rules, bans in force, firewall and state.")
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("status takes no arguments")
	}
	c, err := m.client(*path)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, st)
	}
	w := m.Stdout
	fmt.Fprintf(w, "sipguard %s, pid %d, up %s, config %s\n", st.Version, st.PID, time.Duration(st.UptimeSeconds*float64(time.Second)).Round(time.Second), st.Config)
	f := st.Firewall
	fmt.Fprintf(w, "firewall: %s", f.Backend)
	if f.Table != "" {
		fmt.Fprintf(w, " table %s, hooks %s", f.Table, strings.Join(f.Hooks, ","))
	}
	fmt.Fprintf(w, "; %d bans in force; %d packets (%d bytes) dropped", st.Bans, f.Packets, f.Bytes)
	if f.Restored > 0 {
		fmt.Fprintf(w, "; restored %d times after outside changes", f.Restored)
	}
	fmt.Fprintln(w)
	if f.Error != "" {
		fmt.Fprintf(w, "firewall error: %s\n", f.Error)
	}
	fmt.Fprintf(w, "state: %s", st.State.Dir)
	if !st.State.LastSaved.IsZero() {
		fmt.Fprintf(w, ", saved %s", st.State.LastSaved.Format(time.DateTime))
	}
	if st.State.Error != "" {
		fmt.Fprintf(w, ", error: %s", st.State.Error)
	}
	e := st.Engine
	fmt.Fprintf(w, "\nengine: %d events, %d allowlisted, %d while banned, %d bans decided, %d addresses tracked\n",
		e.Events, e.Allowed, e.WhileBanned, e.Bans, e.Tracked)
	if e.Compromises > 0 {
		fmt.Fprintf(w, "COMPROMISE: %d successful logins after failures (guessed passwords?): see the daemon's log\n", e.Compromises)
	}
	if len(st.Unbans) > 0 {
		fmt.Fprintf(w, "unbans since start: %s\n", counts(st.Unbans))
	}
	if c := st.Cluster; c != nil {
		printCluster(w, c)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "source\tparser\tpath\toffset\tlines\tevents\tlogins\tdropped\trotations\tstate")
	for _, s := range st.Sources {
		state := "following"
		switch {
		case s.Error != "":
			state = "error: " + s.Error
		case s.Waiting:
			state = "waiting for the file"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Parser, s.Path, s.Offset, s.Lines, s.Events, s.Successes, s.Dropped, s.Rotated, state)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "rule\tevents\tmax_retry\tfind_time\tban_time\tfactor\tmax_ban_time\tbans")
	for _, r := range st.Rules {
		ev := strings.Join(r.Events, ",")
		if len(r.Events) == 6 {
			ev = "all"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%g\t%s\t%d\n", r.Name, ev, r.MaxRetry, r.FindTime, r.BanTime, r.Factor, dash(r.MaxBanTime), r.Bans)
	}
	if len(st.Notify) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "notify\tkind\tsent\tfailed\tdropped\tqueued\tlast error")
		for _, n := range st.Notify {
			last := "-"
			if n.LastError != "" {
				last = n.LastErrorTime.Local().Format(time.DateTime) + " " + n.LastError
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", n.Name, n.Kind, n.Sent, n.Failed, n.Dropped, n.Queued, last)
		}
	}
	if len(st.Feeds) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "feed\tlisted\tenforced\tskipped\tlast ok\tloads\tfailures\tstate")
		for _, f := range st.Feeds {
			state := "ok"
			if f.Error != "" {
				state = "error (last good list kept): " + f.Error
			}
			last := "-"
			if !f.LastOK.IsZero() {
				last = f.LastOK.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%d\t%s\n", f.Name, f.Listed, f.Enforced, f.Skipped, last, f.Loads, f.Failures, state)
		}
	}
	return tw.Flush()
}

// printCluster shows the fleet part of status.
func printCluster(w io.Writer, c *control.ClusterStatus) {
	state := "DISCONNECTED"
	if c.Connected {
		state = "connected to " + c.Server
	}
	if !c.Since.IsZero() {
		state += " since " + c.Since.Local().Format(time.DateTime)
	}
	if c.Connected && !c.CaughtUp {
		state += ", catching up"
	}
	fmt.Fprintf(w, "cluster: node %s, stream %s, %s\n", c.Node, c.Stream, state)
	share, accept := "not shared", "not accepted"
	if c.Share {
		share = fmt.Sprintf("%d published, %d queued, %d refused, %d dropped (queue full)", c.Published, c.Queued, c.PublishErrors, c.QueueDropped)
	}
	if c.Accept {
		accept = fmt.Sprintf("%d received, %d applied", c.Received, c.Applied)
	}
	fmt.Fprintf(w, "  own bans: %s; fleet bans: %s", share, accept)
	if len(c.Ignored) > 0 {
		fmt.Fprintf(w, "; ignored: %s", counts(c.Ignored))
	}
	if c.Malformed+c.Oversize > 0 {
		fmt.Fprintf(w, "; dropped: %d malformed, %d oversize", c.Malformed, c.Oversize)
	}
	fmt.Fprintln(w)
	if c.LastError != "" {
		fmt.Fprintf(w, "  last error %s: %s\n", c.LastErrorAt.Local().Format(time.DateTime), c.LastError)
	}
}

// counts shows counts by reason: "2 expired, 1 manual".
func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (m *Main) list(ctx context.Context, args []string) error {
	fs := m.flagSet("list", "list [-c FILE] [--json]\n\nLists the bans in force.")
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("list takes no arguments")
	}
	c, err := m.client(*path)
	if err != nil {
		return err
	}
	bans, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, bans)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\trule\torigin\tsince\texpires\treason")
	for _, b := range bans {
		origin := "here"
		if b.Origin != "" {
			origin = b.Origin
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Target, b.Rule, origin, b.Since.Local().Format(time.DateTime),
			b.Expires.Local().Format(time.DateTime), b.Reason)
	}
	return tw.Flush()
}

func (m *Main) ban(ctx context.Context, args []string) error {
	fs := m.flagSet("ban", "ban [-c FILE] [--for DURATION] [--reason TEXT] ADDR|CIDR\n\nBans an address or network now (a manual ban). An allowlisted address is refused.")
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	dur := fs.String("for", "", "ban `DURATION` such as 30m, 12h, 7d (default: [daemon] manual_ban_time)")
	reason := fs.String("reason", "", "`TEXT` shown by list")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("ban takes one address or network")
	}
	c, err := m.client(*path)
	if err != nil {
		return err
	}
	res, err := c.Ban(ctx, control.BanRequest{Target: rest[0], For: *dur, Reason: *reason})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s %s until %s\n", res.Result, res.Ban.Target, res.Ban.Expires.Local().Format(time.DateTime))
	return nil
}

func (m *Main) unban(ctx context.Context, args []string) error {
	fs := m.flagSet("unban", "unban [-c FILE] [--cluster] ADDR|CIDR|--all\n\nLifts the bans covering an address or network (or all of them) and clears its counters.\nWith --cluster, on every node of the fleet ([cluster]) as well: nodes away now do it when they come back.")
	path := fs.String("c", "", "config `FILE` naming the daemon's socket")
	all := fs.Bool("all", false, "lift every ban")
	fleet := fs.Bool("cluster", false, "lift it on every node of the fleet too")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *all == (len(rest) == 1) || len(rest) > 1 {
		return usagef("unban takes one address or network, or --all")
	}
	c, err := m.client(*path)
	if err != nil {
		return err
	}
	req := control.UnbanRequest{All: *all, Cluster: *fleet}
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
		fmt.Fprintf(m.Stdout, "unban of %s queued for the fleet (status shows when it is published)\n", req.Target)
	}
	return nil
}
