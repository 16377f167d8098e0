package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipguard/sipguard/trunks"
)

// TrunksConfig is [trunks]: how every [[trunk]] (and the host names of
// [allow]) is resolved. Zero values are the defaults of package trunks,
// as the shipped rules.toml says.
type TrunksConfig struct {
	MinTTL     Duration `toml:"min_ttl" json:",omitzero"`
	MaxTTL     Duration `toml:"max_ttl" json:",omitzero"`
	Keep       Duration `toml:"keep" json:",omitzero"`
	ResolvConf string   `toml:"resolv_conf" json:",omitzero"` // default /etc/resolv.conf
	Servers    []string `toml:"servers" json:",omitempty"`    // HOST:PORT; instead of resolv_conf
}

// TrunkConfig is a [[trunk]]: a provider admitted by name and by its
// published networks.
type TrunkConfig struct {
	Name     string   `toml:"name"`
	Hosts    []string `toml:"hosts" json:",omitempty"`
	Networks []string `toml:"networks" json:",omitempty"`
	SRV      bool     `toml:"srv"`
	MinTTL   Duration `toml:"min_ttl" json:",omitzero"`
	MaxTTL   Duration `toml:"max_ttl" json:",omitzero"`
	Keep     Duration `toml:"keep" json:",omitzero"`
}

// DefaultResolvConf is where the DNS servers are read from.
const DefaultResolvConf = "/etc/resolv.conf"

// AllowTrunk is the name of the trunk made of the host names of [allow].
const AllowTrunk = "allow"

// isHostName reports whether s is written as a DNS host name (not an
// address or network): labels of letters, digits, - and _, at least two,
// the last holding a letter (so that "10.0.0" is a typo, not a name).
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return strings.ContainsAny(strings.ToLower(labels[len(labels)-1]), "abcdefghijklmnopqrstuvwxyz")
}

// split returns the entries of [allow] that are addresses or networks,
// and those that are host names.
func (a AllowConfig) split() (targets, names []string) {
	for _, s := range a.Addresses {
		if _, err := target(s); err != nil && isHostName(s) {
			names = append(names, s)
			continue
		}
		targets = append(targets, s)
	}
	return targets, names
}

// Validate checks [trunks].
func (t TrunksConfig) Validate() []FieldError {
	var p problems
	validateTTLs(&p, t.MinTTL, t.MaxTTL, t.Keep)
	for i, s := range t.Servers {
		if _, err := netip.ParseAddrPort(s); err != nil {
			p.add(fmt.Sprintf("servers[%d]", i), "%q: write ADDRESS:PORT, e.g. \"127.0.0.1:53\"", s)
		}
	}
	return p
}

// validateTTLs checks min_ttl, max_ttl and keep where set.
func validateTTLs(p *problems, minTTL, maxTTL, keep Duration) {
	for _, f := range []struct {
		key string
		d   Duration
	}{{"min_ttl", minTTL}, {"max_ttl", maxTTL}, {"keep", keep}} {
		if f.d < 0 {
			p.add(f.key, "must be positive")
		}
	}
	if minTTL > 0 && time.Duration(minTTL) < time.Second {
		p.add("min_ttl", "%s is shorter than 1s", minTTL)
	}
	if keep > 0 && time.Duration(keep) < time.Minute {
		p.add("keep", "%s is shorter than 1m: a trunk would drop out at every slow answer", keep)
	}
	if minTTL > 0 && maxTTL > 0 && maxTTL < minTTL {
		p.add("max_ttl", "%s is shorter than min_ttl %s", maxTTL, minTTL)
	}
}

// Validate checks a [[trunk]]; Config.Validate checks that its name is
// unique.
func (t TrunkConfig) Validate() []FieldError {
	var p problems
	switch {
	case t.Name == "":
		p.add("name", "missing")
	case t.Name == AllowTrunk:
		p.add("name", "%q is the name of [allow]'s host names", t.Name)
	}
	if len(t.Hosts) == 0 && len(t.Networks) == 0 {
		p.add("hosts", "missing: the provider's host names (hosts) or networks (networks), or both")
	}
	for i, h := range t.Hosts {
		if !isHostName(h) {
			p.add(fmt.Sprintf("hosts[%d]", i), "%q is not a host name (addresses and CIDRs go in networks)", h)
		}
	}
	for i, n := range t.Networks {
		if _, err := target(n); err != nil {
			p.err(fmt.Sprintf("networks[%d]", i), err)
		}
	}
	if t.SRV && len(t.Hosts) == 0 {
		p.add("srv", "srv = true looks up the SIP SRV records of hosts: set hosts")
	}
	validateTTLs(&p, t.MinTTL, t.MaxTTL, t.Keep)
	return p
}

// TrunkList returns the trunks to resolve: each [[trunk]], and one named
// "allow" for the host names of [allow], their timings defaulting to
// [trunks]'s (then to package trunks' defaults).
func (c *Config) TrunkList() []trunks.Trunk {
	or := func(d, def Duration) time.Duration {
		if d > 0 {
			return time.Duration(d)
		}
		return time.Duration(def)
	}
	var out []trunks.Trunk
	add := func(t TrunkConfig) {
		out = append(out, trunks.Trunk{
			Name: t.Name, Hosts: t.Hosts, Networks: targets(t.Networks), SRV: t.SRV,
			MinTTL: or(t.MinTTL, c.TrunkDefaults.MinTTL), MaxTTL: or(t.MaxTTL, c.TrunkDefaults.MaxTTL),
			Keep: or(t.Keep, c.TrunkDefaults.Keep),
		})
	}
	if _, names := c.Allow.split(); len(names) > 0 {
		add(TrunkConfig{Name: AllowTrunk, Hosts: names})
	}
	for _, t := range c.Trunks {
		add(t)
	}
	return out
}

// Resolver returns the DNS resolver of [trunks]: its servers, or those of
// resolv_conf.
func (c *Config) Resolver() (*trunks.Resolver, error) {
	if len(c.TrunkDefaults.Servers) > 0 {
		return &trunks.Resolver{Servers: c.TrunkDefaults.Servers, Timeout: trunks.DefaultTimeout}, nil
	}
	path := c.TrunkDefaults.ResolvConf
	if path == "" {
		path = DefaultResolvConf
	}
	return trunks.FromResolvConf(path)
}
