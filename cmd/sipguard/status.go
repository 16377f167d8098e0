package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/duration"
)

var statusCommand = command{"status", "show the running daemon", (*Main).status}

const statusSynopsis = `status [-c FILE] [--json]

Shows the running daemon: sources, rules, bans in force, firewall and state.
Each source's state is reading, missing (its log or a directory on its path
does not exist), or why it is not read (permission denied, ...).

The exit code is 0 when the daemon runs healthy, 3 when it runs degraded (a
source not read, a firewall error, or a trunk host name that admits
nothing: resolution failed for longer than keep; each is named on stderr),
1 when it is not running.`

func (m *Main) status(ctx context.Context, args []string) error {
	var st control.Status
	ask := func(c *control.Client, ctx context.Context) (control.Status, error) {
		var err error
		st, err = c.Status(ctx)
		return st, err
	}
	if err := query(m, ctx, args, "status", statusSynopsis, ask, printStatus); err != nil {
		return err
	}
	if problems := degraded(st); len(problems) > 0 {
		return &degradedError{problems}
	}
	return nil
}

// degraded lists what keeps a running daemon from protecting fully: the
// sources it does not read, and a firewall error. None: healthy.
func degraded(st control.Status) []string {
	var problems []string
	for _, s := range st.Sources {
		if s.State != control.SourceReading {
			problems = append(problems, "source "+s.Name+": "+s.State)
		}
	}
	if st.Firewall.Error != "" {
		problems = append(problems, "firewall: "+st.Firewall.Error)
	}
	for _, t := range st.Trunks {
		for _, h := range t.Hosts {
			if h.Error != "" && len(h.Addresses) == 0 {
				problems = append(problems, "trunk "+t.Name+": "+h.Host+" admits nothing: "+h.Error)
			}
		}
	}
	return problems
}

// printStatus shows the daemon's status for people.
func printStatus(w io.Writer, st control.Status) error {
	fmt.Fprintf(w, "sipguard %s, pid %d, up %s, config %s\n", st.Version, st.PID, time.Duration(st.UptimeSeconds*float64(time.Second)).Round(time.Second), st.Config)
	f := st.Firewall
	fmt.Fprintf(w, "firewall: %s", f.Backend)
	if f.Table != "" {
		fmt.Fprintf(w, " table %s, hooks %s", f.Table, strings.Join(f.Hooks, ","))
	}
	fmt.Fprintf(w, "; %d bans in force; %d packets (%d bytes) dropped", st.Bans, f.Packets, f.Bytes)
	if f.Allowed > 0 {
		fmt.Fprintf(w, ", %d allowlisted let through", f.Allowed)
	}
	if f.WireCopied > 0 {
		fmt.Fprintf(w, "; %d SIP responses copied to the wire sensor", f.WireCopied)
	}
	if f.PolicyDropped > 0 {
		fmt.Fprintf(w, "; %d dropped on the SIP ports by [policy]", f.PolicyDropped)
	}
	if f.Restored > 0 {
		fmt.Fprintf(w, "; restored %d times after outside changes", f.Restored)
	}
	fmt.Fprintln(w)
	if f.Error != "" {
		fmt.Fprintf(w, "firewall error: %s\n", f.Error)
	}
	if p := st.Policy; p.Mode != "" && p.Mode != "open" {
		fmt.Fprintf(w, "policy of the SIP ports: %s; %d learned, %d %s not learned\n", p.Mode, p.Learned, p.Refused, plural(int(p.Refused), "login"))
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
	if e.Narrowed > 0 || f.Refused > 0 {
		fmt.Fprintf(w, "allowlist: %d IPv6 bans narrowed to the address (their network holds an allowlisted address), %d bans refused\n",
			e.Narrowed, f.Refused)
	}
	if e.Special > 0 || f.RefusedSpecial > 0 {
		fmt.Fprintf(w, "special-purpose addresses (loopback, link-local, ...), never banned: %d events dropped, %d bans refused\n",
			e.Special, f.RefusedSpecial)
	}
	if e.Compromises > 0 {
		fmt.Fprintf(w, "COMPROMISE: %d successful logins after failures (guessed passwords?): see the daemon's log\n", e.Compromises)
	}
	if len(st.Unbans) > 0 {
		fmt.Fprintf(w, "unbans since start: %s\n", counts(st.Unbans))
	}
	for _, s := range st.Sources {
		if s.LFFramed > 0 {
			fmt.Fprintf(w, "warning: source %s: %d syslog messages over TCP framed by newlines, where a newline inside a message forges another: make the sender count octets (see the daemon's log)\n",
				s.Name, s.LFFramed)
		}
	}
	if c := st.Cluster; c != nil {
		printCluster(w, c)
	}
	if f := st.Fraud; f != nil {
		fmt.Fprintf(w, "toll fraud: calls by destination: %s; alerts: %s\n", dash(counts(f.Calls)), dash(counts(f.Alerts)))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "source\tparser\tpath\toffset\tlines\tevents\tlogins\tdropped\trotations\tstate")
	for _, s := range st.Sources {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Parser, s.Path, s.Offset, s.Lines, s.Events, s.Successes, s.Dropped, s.Rotated, dash(s.State))
	}
	startTable(tw, "rule\tevents\tmax_retry\tfind_time\tban_time\tfactor\tmax_ban_time\tbans")
	for _, r := range st.Rules {
		ev := strings.Join(r.Events, ",")
		if len(r.Events) == 6 {
			ev = "all"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%g\t%s\t%d\n", withPorts(r.Name, r.Ports), ev, r.MaxRetry, seconds(r.FindTime), seconds(r.BanTime), r.Factor,
			dash(seconds(r.MaxBanTime)), r.Bans)
	}
	if len(st.Notify) > 0 {
		startTable(tw, "notify\tkind\tsent\tfailed\tdropped\tqueued\tlast error")
		for _, n := range st.Notify {
			last := "-"
			if n.LastError != "" {
				last = localTime(n.LastErrorTime) + " " + n.LastError
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", n.Name, n.Kind, n.Sent, n.Failed, n.Dropped, n.Queued, last)
		}
	}
	if len(st.Trunks) > 0 {
		fmt.Fprintln(tw)
		writeTrunks(tw, st.Trunks)
	}
	if len(st.Feeds) > 0 {
		startTable(tw, "feed\tlisted\tenforced\tskipped\tlast ok\tloads\tfailures\tstate")
		for _, f := range st.Feeds {
			state := "ok"
			if f.Error != "" {
				state = "error (last good list kept): " + f.Error
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%d\t%s\n", f.Name, f.Listed, f.Enforced, f.Skipped, localTime(f.LastOK), f.Loads, f.Failures, state)
		}
	}
	return tw.Flush()
}

// startTable starts one more table of status, after a blank line.
func startTable(tw io.Writer, header string) {
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, header)
}

// localTime shows a time of status in the local zone, or "-" for none.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// printCluster shows the cluster part of status.
func printCluster(w io.Writer, c *control.ClusterStatus) {
	state := "DISCONNECTED"
	if c.Connected {
		state = "connected to " + c.Server
	}
	if !c.Since.IsZero() {
		state += " since " + c.Since.Local().Format(time.DateTime)
	}
	if c.Connected && !c.CaughtUp && c.StreamError == "" {
		state += ", catching up"
	}
	fmt.Fprintf(w, "cluster: node %s, stream %s, %s\n", c.Node, c.Stream, state)
	if c.StreamError != "" {
		fmt.Fprintf(w, "  STREAM NOT USED (nothing shared or received): %s\n", c.StreamError)
	}
	share, accept := "not shared", "not accepted"
	if c.Share {
		share = fmt.Sprintf("%d published, %d queued, %d retried, %d refused, %d dropped (queue full)",
			c.Published, c.Queued, c.PublishRetries, c.PublishErrors, c.QueueDropped)
	}
	if c.Accept {
		accept = fmt.Sprintf("%d received, %d applied", c.Received, c.Applied)
	}
	fmt.Fprintf(w, "  own bans: %s; cluster bans: %s", share, accept)
	if len(c.Ignored) > 0 {
		fmt.Fprintf(w, "; ignored: %s", counts(c.Ignored))
	}
	if c.Malformed+c.Oversize > 0 {
		fmt.Fprintf(w, "; dropped: %d malformed, %d oversize", c.Malformed, c.Oversize)
	}
	fmt.Fprintln(w)
	if !c.ClockChecked.IsZero() {
		fmt.Fprintf(w, "  clock: %+.1fs from the server's", c.ClockSkew)
		if math.Abs(c.ClockSkew) > 30 {
			fmt.Fprint(w, " (FIX THIS NODE'S TIME)")
		}
		if len(c.PeerSkews) > 0 {
			nodes := slices.Sorted(maps.Keys(c.PeerSkews))
			fmt.Fprint(w, "; nodes off by more than 30s:")
			for _, n := range nodes {
				fmt.Fprintf(w, " %s %+.0fs", n, c.PeerSkews[n])
			}
		}
		fmt.Fprintln(w)
	}
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

// seconds shows a duration of the status as rules.toml writes it: "1h";
// "" for none.
func seconds(s float64) string {
	if s <= 0 {
		return ""
	}
	return duration.Format(time.Duration(s * float64(time.Second)))
}
