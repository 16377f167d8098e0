package main

import (
	"maps"
	"testing"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/firewall"
)

// TestPortProfiles (config.PortProfiles, as run uses it): the firewall gets one profile per rule with ports of
// its own, and the daemon each such rule's key; a rule whose ports are the
// default's, or who has none, bans on the default ports.
func TestPortProfiles(t *testing.T) {
	cfg, err := config.Parse("rules.toml", []byte(`
[firewall]
ports = ["5060/udp"]

[[rule]]
name = "gui"
ports = ["443/tcp", "80/tcp"]
max_retry = 5
find_time = "10m"
ban_time = "1h"

[[rule]]
name = "sip"
ports = ["5060/UDP"]
max_retry = 5
find_time = "1m"
ban_time = "1h"

[[rule]]
name = "slow"
max_retry = 30
find_time = "24h"
ban_time = "1d"
`))
	if err != nil {
		t.Fatal(err)
	}
	def, profiles, byRule, err := cfg.PortProfiles()
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := firewall.PortsKey(def); k != "5060/udp" {
		t.Errorf("default ports %q", k)
	}
	if len(profiles) != 1 {
		t.Fatalf("profiles %v; want the GUI's only", profiles)
	}
	if k, _ := firewall.PortsKey(profiles[0]); k != "80/tcp,443/tcp" {
		t.Errorf("profile %q", k)
	}
	if want := map[string]string{"gui": "80/tcp,443/tcp"}; !maps.Equal(byRule, want) {
		t.Errorf("rules' profiles %v; want %v", byRule, want)
	}
	dc, err := (&Main{HostAddrs: config.HostAddrs}).daemonConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(dc.RulePorts, byRule) {
		t.Errorf("daemon config RulePorts %v", dc.RulePorts)
	}
	// The engine (scan too) counts the GUI rule apart.
	opts, err := cfg.EngineOptions(config.HostAddrs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range opts.Rules {
		if r.Ports != byRule[r.Name] {
			t.Errorf("engine rule %s: ports %q; want %q", r.Name, r.Ports, byRule[r.Name])
		}
	}
}
