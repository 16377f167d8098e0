package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/control"
)

var trunksCommand = command{"trunks", "show the trunks admitted by name: addresses, TTL, last success, error", (*Main).trunks}

const trunksSynopsis = `trunks [-c FILE] [--json]

Shows each trunk the running daemon admits ([[trunk]], and "allow" for the
host names of [allow]): its networks, and for each host name the addresses
admitted now (each until keep after the last answer that held it), the
TTL it is resolved again after, the last success, and the error of the
last resolution if it failed. A host name with an error and no address
left admits nothing: check its name and the DNS servers.`

func (m *Main) trunks(ctx context.Context, args []string) error {
	ask := func(c *control.Client, ctx context.Context) ([]control.TrunkStatus, error) { return c.Trunks(ctx) }
	return query(m, ctx, args, "trunks", trunksSynopsis, ask, printTrunks)
}

// printTrunks shows trunks for people: one line per host name, and one
// per trunk's networks.
func printTrunks(w io.Writer, ts []control.TrunkStatus) error {
	if len(ts) == 0 {
		_, err := fmt.Fprintln(w, "no trunks configured ([[trunk]] in rules.toml)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeTrunks(tw, ts)
	return tw.Flush()
}

// writeTrunks writes the trunks' table (status shows it too).
func writeTrunks(tw io.Writer, ts []control.TrunkStatus) {
	fmt.Fprintln(tw, "trunk\thost\taddresses\tttl\tlast success\tstate")
	for _, t := range ts {
		if len(t.Networks) > 0 {
			fmt.Fprintf(tw, "%s\t(networks)\t%s\t-\t-\tok\n", t.Name, strings.Join(t.Networks, ","))
		}
		for _, h := range t.Hosts {
			addrs := make([]string, len(h.Addresses))
			for i, a := range h.Addresses {
				addrs[i] = a.Address
			}
			var until time.Time
			for _, a := range h.Addresses {
				if a.Until.After(until) {
					until = a.Until
				}
			}
			state := "ok"
			switch {
			case h.Error != "" && len(addrs) > 0:
				state = "error since " + localTime(h.ErrorSince) + " (last answer kept until " + localTime(until) + "): " + h.Error
			case h.Error != "":
				state = "error since " + localTime(h.ErrorSince) + ", nothing admitted: " + h.Error
			case h.LastSuccess.IsZero():
				state = "resolving"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, h.Host, dash(strings.Join(addrs, ",")), dash(seconds(h.TTLSeconds)),
				localTime(h.LastSuccess), state)
		}
	}
}

// checkTimeout bounds how long check spends resolving trunks (it runs
// before each reload too).
const checkTimeout = 10 * time.Second

// checkTrunks resolves each trunk's host names once, as the daemon would,
// and prints what they answer to w; it returns what the trunks allow (the
// addresses answered and their networks), and a warning for each name
// that does not resolve.
func checkTrunks(ctx context.Context, cfg *config.Config, w io.Writer) (allow []netip.Prefix, warnings []string) {
	ts := cfg.TrunkList()
	if len(ts) == 0 {
		return nil, nil
	}
	r, err := cfg.Resolver()
	if err != nil {
		return nil, []string{fmt.Sprintf("trunks: %v: no host name can be resolved", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, t := range ts {
		allow = append(allow, t.Networks...)
		for _, h := range t.Hosts {
			ans, err := r.Resolve(ctx, h, t.SRV)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("trunk %s: %v", t.Name, err))
			}
			if len(ans.Addrs) == 0 {
				continue // a partial answer is admitted, as the daemon does
			}
			addrs := make([]string, len(ans.Addrs))
			for i, a := range ans.Addrs {
				addrs[i] = a.String()
				allow = append(allow, netip.PrefixFrom(a, a.BitLen()))
			}
			fmt.Fprintf(w, "trunk %s: %s: %s (TTL %s)\n", t.Name, h, strings.Join(addrs, ", "), ans.TTL)
		}
	}
	return allow, warnings
}
