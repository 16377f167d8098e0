package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/journal"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/parsers"
)

// The methods of this file turn a valid Config into the settings of the
// packages that do the work. They do not check again what Validate
// checked.

// EngineOptions turns the config into engine options. With allow.self the
// host's own addresses are allowed too; hostAddrs lists them (HostAddrs).
func (c *Config) EngineOptions(hostAddrs func() ([]netip.Prefix, error)) (engine.Options, error) {
	opts := engine.Options{
		IPv6Prefix: c.Engine.IPv6Prefix,
		MaxTracked: c.Engine.MaxTracked,
		History:    time.Duration(c.Engine.History),
		Special:    bans.Special,
		Compromise: engine.CompromiseRule{
			Action: c.Compromise.OnSuccess, MinFailures: c.Compromise.MinFailures,
			Window: time.Duration(c.Compromise.Window), BanTime: time.Duration(c.Compromise.BanTime),
		},
	}
	// Host names of [allow] are resolved by the daemon (TrunkList).
	nets, _ := c.Allow.split()
	opts.Allow = targets(nets)
	if c.Allow.Self {
		self, err := hostAddrs()
		if err != nil {
			return engine.Options{}, fmt.Errorf("list own addresses for allow.self: %w", err)
		}
		opts.Allow = append(opts.Allow, self...)
	}
	_, _, byRule, err := c.PortProfiles()
	if err != nil {
		return engine.Options{}, err
	}
	for _, r := range c.Rules {
		opts.Rules = append(opts.Rules, engine.Rule{
			Name: r.Name, Kinds: r.kinds(), MaxRetry: r.MaxRetry,
			FindTime: time.Duration(r.FindTime), BanTime: time.Duration(r.BanTime),
			Factor: r.Factor, MaxBanTime: time.Duration(r.MaxBanTime), Ports: byRule[r.Name],
		})
	}
	return opts, nil
}

// PortProfiles reads [firewall] ports and the rules' own ports: the
// default ports, the firewall's other ports profiles, and the profile of
// each rule with ports of its own (those equal to the default's are the
// default).
func (c *Config) PortProfiles() (def []firewall.Port, profiles [][]firewall.Port, byRule map[string]string, err error) {
	parse := func(ss []string) ([]firewall.Port, error) {
		var out []firewall.Port
		for _, s := range ss {
			p, err := firewall.ParsePort(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	if def, err = parse(c.Firewall.Ports); err != nil {
		return nil, nil, nil, err
	}
	defKey, err := firewall.PortsKey(def)
	if err != nil {
		return nil, nil, nil, err
	}
	byRule = map[string]string{}
	for _, r := range c.Rules {
		if len(r.Ports) == 0 {
			continue
		}
		ports, err := parse(r.Ports)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		key, err := firewall.PortsKey(ports)
		if err != nil || key == defKey {
			continue
		}
		byRule[r.Name] = key
		profiles = append(profiles, ports)
	}
	return def, profiles, byRule, nil
}

// FirewallPolicy reads [policy] and [firewall] early: who reaches the SIP
// ports.
func (c *Config) FirewallPolicy() (firewall.Policy, error) {
	pol := firewall.Policy{Mode: c.Policy.Mode, Early: c.Firewall.Early, IPv6Prefix: c.Engine.IPv6Prefix}
	for _, s := range c.Policy.SIPPorts {
		p, err := firewall.ParsePort(s)
		if err != nil {
			return firewall.Policy{}, fmt.Errorf("policy.sip_ports: %w", err)
		}
		pol.SIPPorts = append(pol.SIPPorts, p)
	}
	rate, err := firewall.ParseRate(c.Policy.Rate)
	if err != nil {
		return firewall.Policy{}, fmt.Errorf("policy.rate: %w", err)
	}
	pol.Rate = rate
	return pol, nil
}

// targets reads validated addresses and networks.
func targets(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		p, _ := bans.ParseTarget(s)
		out = append(out, p)
	}
	return out
}

// kinds returns the set of kinds a rule counts (parsers.DefaultKinds when
// none are listed).
func (r RuleConfig) kinds() parsers.KindSet {
	if len(r.Events) == 0 {
		return parsers.DefaultKinds
	}
	var set parsers.KindSet
	for _, name := range r.Events {
		k, _ := parsers.ParseKind(name)
		set = set.With(k)
	}
	return set
}

// HostAddrs lists this host's interface addresses and the loopback
// networks, for allow.self.
func HostAddrs() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		if p := bans.Host(ip); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ParserFactory returns how to make the parser called name: a [[parser]]
// of the config, or a built-in one.
func (c *Config) ParserFactory(name string) parsers.Factory {
	if cp, ok := c.custom[name]; ok {
		return cp.New
	}
	return func(opts parsers.Options) (parsers.Parser, error) { return parsers.New(name, opts) }
}

// Location returns the zone for a source's timestamps without one.
func (s SourceConfig) Location() *time.Location {
	if s.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}

// JournalMatch returns which journal entries a journald source reads.
// User ids out of range (refused by Validate) are left out.
func (s SourceConfig) JournalMatch() journal.Match {
	m := journal.Match{Namespace: s.Namespace, Units: s.Units, Commands: s.Commands}
	for _, u := range s.UIDs {
		if u >= 0 && u < 1<<32-1 {
			m.UIDs = append(m.UIDs, uint32(u))
		}
	}
	return m
}

// SenderPrefixes returns the networks a syslog source accepts lines from.
func (s SourceConfig) SenderPrefixes() []netip.Prefix { return targets(s.Senders) }

// Feed returns the feeds package's view of a [[feed]].
func (f FeedConfig) Feed() feeds.Feed {
	return feeds.Feed{Name: f.Name, URL: f.URL, Path: f.Path, Interval: time.Duration(f.Interval), MaxEntries: f.MaxEntries, Timeout: time.Duration(f.Timeout)}
}

// NotifyTargets returns the notify package's view of the [[notify]]
// tables: webhooks (url) and commands.
func (c *Config) NotifyTargets() ([]notify.Webhook, []notify.Command) {
	var hooks []notify.Webhook
	var cmds []notify.Command
	for _, n := range c.Notify {
		if n.URL == "" {
			cmds = append(cmds, n.command())
			continue
		}
		h, _ := n.webhook()
		hooks = append(hooks, h)
	}
	return hooks, cmds
}

// webhook returns a [[notify]] with a url, or the error in its headers.
func (n NotifyConfig) webhook() (notify.Webhook, error) {
	h := notify.Webhook{Name: n.Name, URL: n.URL, Events: n.Events, Timeout: time.Duration(n.Timeout), Retries: n.Retries, Queue: n.Queue}
	for _, line := range n.Headers {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t") {
			return h, fmt.Errorf("%q is not \"Name: value\"", line)
		}
		if h.Headers == nil {
			h.Headers = map[string]string{}
		}
		h.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return h, nil
}

// command returns a [[notify]] with a command.
func (n NotifyConfig) command() notify.Command {
	return notify.Command{Name: n.Name, Argv: n.Command, Events: n.Events, Timeout: time.Duration(n.Timeout), Queue: n.Queue}
}

// Node returns the cluster package's view of [cluster]; the node's name
// defaults to the host's.
func (c ClusterConfig) Node() cluster.Config {
	name := c.Name
	if name == "" {
		name, _ = os.Hostname()
		name, _, _ = strings.Cut(name, ".")
	}
	return cluster.Config{
		Servers: c.Servers, Name: name, Creds: c.Creds, NKey: c.NKey, User: c.User, Password: c.Password,
		CA: c.CA, Cert: c.Cert, Key: c.Key, Stream: c.Stream, Subject: c.Subject, CreateStream: c.CreateStream,
		Share: c.Share, Rules: c.Rules, Accept: c.Accept, Queue: c.Queue,
	}
}
