package main

import (
	"fmt"
	"strings"
	"testing"

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
