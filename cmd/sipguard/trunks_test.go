package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/dnstest"
)

// TestCheckTrunks: check resolves each trunk's host names once and says
// what they answer; one that does not resolve is a warning, not an error.
func TestCheckTrunks(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.carrier.test. 300 IN A 192.0.2.20", "office.example.test. 60 IN AAAA 2001:db8::50")
	config := writeFile(t, "rules.toml", fmt.Sprintf(`
[allow]
addresses = ["127.0.0.0/8", "office.example.test"]

[trunks]
servers = [%q]

[[trunk]]
name = "carrier"
hosts = ["sip.carrier.test", "sip.typo.test"]
`, s.Addr))
	out, errOut, code := run(t, "", "check", "-c", config)
	if code != 0 {
		t.Fatalf("check: %d %q %q", code, out, errOut)
	}
	for _, want := range []string{"trunk allow: office.example.test: 2001:db8::50 (TTL 1m0s)", "trunk carrier: sip.carrier.test: 192.0.2.20 (TTL 5m0s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check says\n%s\nwant %q", out, want)
		}
	}
	if !strings.Contains(errOut, "warning: trunk carrier: sip.typo.test: no address (NXDOMAIN)") {
		t.Errorf("check warns %q; want sip.typo.test's NXDOMAIN", errOut)
	}
}

// TestCheckTrunksLockout: an SSH client allowlisted by a host name of
// [allow] (or a trunk's address) is allowed: check does not warn of it.
func TestCheckTrunksLockout(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "office.example.test. 60 IN A 203.0.113.5")
	config := writeFile(t, "rules.toml", fmt.Sprintf("[allow]\naddresses = [\"127.0.0.0/8\", \"office.example.test\"]\n[trunks]\nservers = [%q]\n", s.Addr))
	for _, ssh := range []string{"203.0.113.5", "203.0.113.6"} {
		var out, errOut bytes.Buffer
		m := &Main{
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, ConfigPath: "/nonexistent", Now: time.Now,
			HostAddrs: func() ([]netip.Prefix, error) { return nil, nil },
			Getenv:    func(k string) string { return map[string]string{"SSH_CONNECTION": ssh + " 52000 192.0.2.10 22"}[k] },
			Gateways:  func() ([]netip.Addr, error) { return nil, nil },
		}
		if code := m.Exit(m.Run(context.Background(), []string{"check", "-c", config})); code != 0 {
			t.Fatalf("check: %d %s", code, errOut.String())
		}
		if warned := strings.Contains(errOut.String(), "your SSH client"); warned != (ssh != "203.0.113.5") {
			t.Errorf("SSH client %s: warned %v: %s", ssh, warned, errOut.String())
		}
	}
}
