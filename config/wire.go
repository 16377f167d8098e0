package config

import (
	"fmt"
	"slices"

	"github.com/sipguard/sipguard/firewall"
)

// WireConfig is [wire]: the wire sensor, which reads the PBX's own SIP
// responses (docs/wire.md): nftables rules in sipguard's table copy them
// to an NFLOG group (package firewall, Wire), package wirecap reads the
// group.
type WireConfig struct {
	Enabled bool `toml:"enabled"`
	// Hook: "output" (a PBX on this host), "forward" (a PBX behind this
	// router), or both as a list.
	Hook  StringList `toml:"hook"`
	PBX   []string   `toml:"pbx"`
	Ports []string   `toml:"ports"`
	Group int        `toml:"group"`
}

// Validate checks [wire], whether enabled or not: a sensor switched on
// later must not hide a mistake until then. Only what needs the sensor on
// (the PBX addresses of the forward hook) is checked when enabled.
func (w WireConfig) Validate() []FieldError {
	var p problems
	if len(w.Hook) == 0 {
		p.add("hook", "needs \"output\", \"forward\" or both")
	}
	seen := map[string]bool{}
	for i, h := range w.Hook {
		if h != "output" && h != "forward" || seen[h] {
			p.add(hookKey(w.Hook, i), "%q: each of \"output\" and \"forward\" at most once", h)
		}
		seen[h] = true
	}
	for i, a := range w.PBX {
		if _, err := target(a); err != nil {
			p.err(fmt.Sprintf("pbx[%d]", i), err)
		}
	}
	if w.Enabled && seen["forward"] && len(w.PBX) == 0 {
		p.add("pbx", "the forward hook reads the responses of the PBX addresses listed here: none is")
	}
	if len(w.Ports) == 0 {
		p.add("ports", "needs the PBX's SIP ports, such as [\"5060/udp\", \"5060/tcp\"]")
	}
	validatePorts(&p, w.Ports)
	if w.Group < 0 || w.Group > 65535 {
		p.add("group", "%d is out of range 0-65535", w.Group)
	}
	return p
}

// validateWire checks [wire], and that no [[source]] takes the name of
// the sensor's events when it is on.
func (c *Config) validateWire(p *problems) {
	p.in("wire", c.Wire.Validate())
	if !c.Wire.Enabled {
		return
	}
	for i, s := range c.Sources {
		if s.Name == "wire" {
			p.add(fmt.Sprintf("source[%d].name", i), "\"wire\" is the wire sensor's: [wire] is on")
		}
	}
}

// hookKey names hook i as the file wrote it: "hook" for a single string.
func hookKey(hooks StringList, i int) string {
	if len(hooks) == 1 {
		return "hook"
	}
	return fmt.Sprintf("hook[%d]", i)
}

// FirewallWire returns the log rules the firewall adds for the sensor;
// nil when [wire] is off.
func (w WireConfig) FirewallWire() (*firewall.Wire, error) {
	if !w.Enabled {
		return nil, nil
	}
	fw := &firewall.Wire{Hooks: slices.Clone(w.Hook), Group: uint16(w.Group)}
	for _, s := range w.Ports {
		port, err := firewall.ParsePort(s)
		if err != nil {
			return nil, fmt.Errorf("[wire] ports: %w", err)
		}
		fw.Ports = append(fw.Ports, port)
	}
	fw.PBX = targets(w.PBX)
	return fw, nil
}
