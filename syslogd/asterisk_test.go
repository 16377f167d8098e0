package syslogd_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
	_ "github.com/sipguard/sipguard/parsers/asterisk"
)

// checkAsterisk asserts that the Asterisk parser finds the failed
// registration of 198.51.100.23 in line.
func checkAsterisk(t *testing.T, line []byte) {
	t.Helper()
	p, err := parsers.New("asterisk", parsers.Options{Location: time.UTC, Now: func() time.Time { return testReceived }})
	if err != nil {
		t.Fatal(err)
	}
	var ev parsers.Event
	if got := p.Parse(line, &ev); got != parsers.Matched {
		t.Fatalf("asterisk parser: %v for %q; want matched", got, line)
	}
	if want := netip.MustParseAddr("198.51.100.23"); ev.Addr != want {
		t.Errorf("asterisk parser: address %v; want %v", ev.Addr, want)
	}
	if ev.Kind != parsers.AuthFailed {
		t.Errorf("asterisk parser: kind %v; want auth_failed", ev.Kind)
	}
}
