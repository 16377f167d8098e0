package firewall_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]firewall.Rate{
		"20/minute": {20, time.Minute},
		"1/second":  {1, time.Second},
		"600/hour":  {600, time.Hour},
		"5/day":     {5, 24 * time.Hour},
	} {
		got, err := firewall.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for in, msg := range map[string]string{
		"":                   "is not a rate",
		"20":                 "is not a rate",
		"-1/minute":          "is not a rate",
		"x/minute":           "is not a rate",
		"0/minute":           "at least 1",
		"20/fortnight":       `unit "fortnight"`,
		"20/Minute":          `unit "Minute"`,
		"99999999999/second": "is not a rate",
	} {
		if _, err := firewall.ParseRate(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseRate(%q): %v, want an error saying %q", in, err, msg)
		}
	}
}

func TestPortOf(t *testing.T) {
	ports := []firewall.Port{{Proto: "udp", Port: 5060, Last: 5060}, {Proto: "tcp", Port: 5060, Last: 5061}}
	for _, c := range []struct {
		port  uint16
		proto string
		ok    bool
	}{{5060, "udp", true}, {5061, "udp", false}, {5061, "tcp", true}, {5062, "tcp", false}, {22, "tcp", false}} {
		if _, ok := firewall.PortOf(ports, c.port, c.proto); ok != c.ok {
			t.Errorf("PortOf(%d/%s) = %v, want %v", c.port, c.proto, ok, c.ok)
		}
	}
}
