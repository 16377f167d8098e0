package config_test

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/trunks"
)

// TestTrunkList: the host names of [allow] become trunk "allow" and stay
// out of the engine's allowlist (they are no addresses); each [[trunk]]
// takes [trunks]'s timings where it sets none.
func TestTrunkList(t *testing.T) {
	cfg, err := config.Parse("rules.toml", []byte(`
[allow]
addresses = ["127.0.0.0/8", "office.example.com", "::1"]
self = false

[trunks]
keep = "12h"
servers = ["127.0.0.1:5353"]

[[trunk]]
name = "carrier"
hosts = ["sip.carrier.example"]
networks = ["203.0.113.0/24"]
srv = true
min_ttl = "5m"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []trunks.Trunk{
		{Name: "allow", Hosts: []string{"office.example.com"}, Keep: 12 * time.Hour},
		{Name: "carrier", Hosts: []string{"sip.carrier.example"}, Networks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
			SRV: true, MinTTL: 5 * time.Minute, Keep: 12 * time.Hour},
	}
	if got := cfg.TrunkList(); !reflect.DeepEqual(got, want) {
		t.Errorf("trunks\n%+v; want\n%+v", got, want)
	}
	opts, err := cfg.EngineOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}; !slices.Equal(opts.Allow, want) {
		t.Errorf("engine allowlist %v; want %v", opts.Allow, want)
	}
	r, err := cfg.Resolver()
	if err != nil || !slices.Equal(r.Servers, []string{"127.0.0.1:5353"}) {
		t.Errorf("resolver %+v %v; want servers 127.0.0.1:5353", r, err)
	}
	if got := config.DefaultConfig().TrunkList(); len(got) != 0 {
		t.Errorf("the default config resolves %+v", got)
	}
}
