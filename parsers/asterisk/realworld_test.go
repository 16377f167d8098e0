package asterisk_test

import (
	"os"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/internal/failjson"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/parsers"
)

// fail2banSamples is fail2ban's own Asterisk test file, installed with
// Debian's fail2ban package: lines collected from real systems over a
// decade, each with the address fail2ban expects ("failJSON"). The parser
// was not written against it.
const fail2banSamples = failjson.Dir + "/asterisk"

// unsupported lists the expectations we deliberately do not meet, and why.
var unsupported = map[string]string{
	"hacking attempt detected": "no such message in any Asterisk source we could find; its origin and format are unverified",
	// The address follows text an attacker can break into lines, so the
	// first line may be forged whole: read only from JSON or the journal.
	"Rejecting unknown SIP connection from": "plain text: read only from whole messages (docs/pbx.md)",
	"No registration for peer":              "plain text: read only from whole messages (docs/pbx.md)",
}

func TestFail2banSamples(t *testing.T) {
	path := fail2banSamples
	if p := os.Getenv("SIPGUARD_FAIL2BAN_ASTERISK"); p != "" {
		path = p
	}
	samples, err := failjson.Read(path)
	if err != nil {
		testutil.Missing(t, "fail2ban's Asterisk samples are not installed (apt-get install fail2ban; .ci/run does): %v", err)
	}
	checked := 0
	for _, s := range samples {
		// The samples come from many systems, not from one log: each is
		// read on its own.
		var ev parsers.Event
		o := newParser(t).Parse([]byte(s.Line), &ev)
		skip := ""
		for text, why := range unsupported {
			if strings.Contains(s.Line, text) {
				skip = why
			}
		}
		if skip != "" {
			t.Logf("line %d not read: %s", s.N, skip)
		} else if msg := s.Check(o == parsers.Matched, ev.Addr.String()); msg != "" {
			t.Errorf("%s (%v)", msg, o)
		} else {
			checked++
		}
	}
	if checked < 35 {
		t.Errorf("only %d expectations checked", checked)
	}
	t.Logf("%d of fail2ban's expectations met", checked)
}
