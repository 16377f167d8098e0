package custom_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/custom"
)

const good = `^(?P<time>\S+ \S+) login failed for user '(?P<user>[^']*)' from (?P<ip>[0-9a-fA-F:.]+)$`

func spec(regex string, examples ...string) custom.Spec {
	return custom.Spec{Name: "web", Patterns: []custom.PatternSpec{{Kind: "admin_auth_failed", Service: "gui", Regex: regex, Examples: examples}}}
}

func TestGuardrails(t *testing.T) {
	ex := "2026-11-26 10:00:00 login failed for user 'admin' from 198.51.100.7"
	tests := []struct {
		name string
		spec custom.Spec
		want string // part of the error; "" for none
	}{
		{"ok", spec(good, ex), ""},
		{"not anchored at the start", spec(`login failed from (?P<ip>[0-9.]+)$`, ex), "anchored"},
		{"not anchored at the end", spec(`^.* from (?P<ip>[0-9.]+)`, ex), "anchored"},
		{"no ip group", spec(`^.* from ([0-9.]+)$`, ex), "exactly one"},
		{"two ip groups", spec(`^(?P<ip>[0-9.]+) (?P<ip>[0-9.]+)$`, ex), "exactly one"},
		{"optional ip", spec(`^.* from (?P<ip>[0-9.]+)?$`, ex), "optional or repeated"},
		{"repeated ip", spec(`^(.* from (?P<ip>[0-9.]+))+$`, ex), "optional or repeated"},
		{"ip matches anything", spec(`^.* from (?P<ip>.+)$`, ex), "address characters"},
		{"ip matches words", spec(`^.* from (?P<ip>\S+)$`, ex), "address characters"},
		{"ip matches host names", spec(`^.* from (?P<ip>[a-z0-9.:-]+)$`, ex), "address characters"},
		{"unknown group", spec(`^(?P<host>\S+) from (?P<ip>[0-9.]+)$`, ex), "unknown group"},
		{"too large", spec(`^`+strings.Repeat(`(a|b){0,1000}`, 20)+` (?P<ip>[0-9.]+)$`, ex), "too large"},
		{"bad regex", spec(`^(?P<ip>[0-9.]+$`, ex), "missing closing"},
		{"bad kind", custom.Spec{Name: "x", Patterns: []custom.PatternSpec{{Kind: "evil", Regex: good, Examples: []string{ex}}}}, "unknown kind"},
		{"bad service", custom.Spec{Name: "x", Patterns: []custom.PatternSpec{{Kind: "auth_failed", Service: "smtp", Regex: good, Examples: []string{ex}}}}, "unknown service"},
		{"no example", spec(good), "at least one example"},
		{"example does not match", spec(good, "login ok for admin"), "does not match"},
		{"example with a host name", spec(`^from (?P<ip>[0-9a-f.:]+)$`, "from bad.cafe"), "dropped"},
		{"bad layout", custom.Spec{Name: "x", Timestamp: "%Q", Patterns: spec(good, ex).Patterns}, "not supported"},
		{"no pattern", custom.Spec{Name: "x"}, "at least one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := custom.Compile(tc.spec)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v; want one about %q", err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	c, err := custom.Compile(custom.Spec{Name: "web", Timestamp: "%F %T", Patterns: []custom.PatternSpec{
		{Kind: "admin_auth_failed", Service: "gui", Regex: good, Examples: []string{"2026-11-26 10:00:00 login failed for user 'a' from 198.51.100.7"}},
		{Kind: "auth_failed", Regex: `^(?P<time>\S+ \S+) sip auth failed src=(?P<ip>[0-9a-fA-F:.\[\]]+) port=(?P<port>\d+)$`,
			Examples: []string{"2026-11-26 10:00:00 sip auth failed src=198.51.100.7 port=5060"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.New(parsers.Options{Location: time.UTC, Now: time.Now})
	tests := []struct {
		line string
		want parsers.Outcome
		addr string
		port uint16
		user string
	}{
		{"2026-11-26 10:00:00 login failed for user 'admin' from 198.51.100.7", parsers.Matched, "198.51.100.7", 0, "admin"},
		{"2026-11-26 10:00:00 login failed for user 'admin' from ::ffff:198.51.100.7", parsers.Matched, "198.51.100.7", 0, "admin"},
		{"2026-11-26 10:00:00 sip auth failed src=2001:db8::1 port=5070", parsers.Matched, "2001:db8::1", 5070, ""},
		{"2026-11-26 10:00:00 login failed for user 'admin' from 198.51.100", parsers.DropAddress, "", 0, ""},
		{"2026-13-26 10:00:00 login failed for user 'admin' from 198.51.100.7", parsers.DropTime, "", 0, ""},
		{"something else", parsers.Ignored, "", 0, ""},
	}
	for _, tc := range tests {
		var ev parsers.Event
		o := p.Parse([]byte(tc.line), &ev)
		if o != tc.want || o == parsers.Matched && (ev.Addr.String() != tc.addr || ev.Port != tc.port || ev.User != tc.user) {
			t.Errorf("%q: %v %v:%d %q", tc.line, o, ev.Addr, ev.Port, ev.User)
		}
		if o == parsers.Matched && !ev.Time.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("%q: time %v", tc.line, ev.Time)
		}
	}
}

// TestAmbiguousDropped: a pattern with attacker text on both sides of the
// address reads an injected line two ways; it is dropped, not guessed.
func TestAmbiguousDropped(t *testing.T) {
	c, err := custom.Compile(custom.Spec{Name: "x", Patterns: []custom.PatternSpec{{Kind: "auth_failed",
		Regex:    `^user (?P<user>.*) failed from (?P<ip>[0-9.]+) agent (.*)$`,
		Examples: []string{"user 100 failed from 198.51.100.7 agent friendly"}}}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.New(parsers.Options{})
	var ev parsers.Event
	if o := p.Parse([]byte("user 100 failed from 198.51.100.7 agent friendly"), &ev); o != parsers.Matched {
		t.Fatalf("plain line: %v", o)
	}
	hostile := "user x failed from 203.0.113.66 agent y failed from 198.51.100.7 agent z failed from 203.0.113.77 agent q"
	if o := p.Parse([]byte(hostile), &ev); o != parsers.DropMalformed {
		t.Errorf("injected line: %v %v; want a drop", o, ev.Addr)
	}
	// Attacker text on one side only is unambiguous.
	c2, _ := custom.Compile(custom.Spec{Name: "y", Patterns: []custom.PatternSpec{{Kind: "auth_failed",
		Regex: `^user (?P<user>.*) failed from (?P<ip>[0-9.]+)$`, Examples: []string{"user 1 failed from 198.51.100.7"}}}})
	p2, _ := c2.New(parsers.Options{})
	if o := p2.Parse([]byte("user x failed from 203.0.113.66 failed from 198.51.100.7"), &ev); o != parsers.Matched || ev.Addr != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("right-anchored: %v %v", o, ev.Addr)
	}
}

func TestYearlessLayout(t *testing.T) {
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	c, err := custom.Compile(custom.Spec{Name: "x", Timestamp: "%b %e %T", Patterns: []custom.PatternSpec{{Kind: "auth_failed",
		Regex: `^(?P<time>\w+ +\d+ [\d:]+) bad from (?P<ip>[0-9.]+)$`, Examples: []string{"Dec 30 10:00:00 bad from 198.51.100.7"}}}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.New(parsers.Options{Location: time.UTC, Now: func() time.Time { return now }})
	var ev parsers.Event
	if p.Parse([]byte("Dec 30 10:00:00 bad from 198.51.100.7"), &ev) != parsers.Matched || ev.Time.Year() != 2025 {
		t.Errorf("Dec 30 read in January: %v", ev.Time)
	}
	if p.Parse([]byte("Jan  5 10:00:00 bad from 198.51.100.7"), &ev) != parsers.Matched || ev.Time.Year() != 2026 {
		t.Errorf("Jan 5: %v", ev.Time)
	}
}

// TestAcrossPatterns: attacker text at the end of a line of one format
// makes it end like a line of another; the line reads two ways and is
// dropped (found by the hostile generator: the first pattern took the
// victim's address from the user agent).
func TestAcrossPatterns(t *testing.T) {
	c, err := custom.Compile(custom.Spec{Name: "x", Patterns: []custom.PatternSpec{
		{Kind: "auth_failed", Regex: `^user (?P<user>.*) failed from (?P<ip>[0-9a-fA-F:.]+)$`, Examples: []string{"user 1 failed from 198.51.100.7"}},
		{Kind: "unknown_user", Regex: `^user (?P<user>.*) unknown from (?P<ip>[0-9a-fA-F:.]+) agent (.*)$`, Examples: []string{"user 1 unknown from 198.51.100.7 agent friendly"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.New(parsers.Options{})
	var ev parsers.Event
	for _, l := range []string{
		"user 1 unknown from 198.51.100.7 agent x failed from 203.0.113.66", // the second format, ending like the first
		"user x unknown from 203.0.113.66 agent failed from 198.51.100.7",   // the first, with the second's frame in the user
	} {
		if o := p.Parse([]byte(l), &ev); o != parsers.DropMalformed || ev.Addr.IsValid() {
			t.Errorf("%q: %v %v; want a drop", l, o, ev.Addr)
		}
	}
	for _, l := range []string{"user 1 failed from 198.51.100.7", "user 1 unknown from 198.51.100.7 agent friendly"} {
		if o := p.Parse([]byte(l), &ev); o != parsers.Matched || ev.Addr != netip.MustParseAddr("198.51.100.7") {
			t.Errorf("%q: %v %v", l, o, ev.Addr)
		}
	}
	// An example that a later pattern reads elsewhere is refused.
	_, err = custom.Compile(custom.Spec{Name: "y", Patterns: []custom.PatternSpec{
		{Kind: "auth_failed", Regex: `^(?P<ip>[0-9.]+) (.*)$`, Examples: []string{"198.51.100.7 failed from 203.0.113.66"}},
		{Kind: "auth_failed", Regex: `^(.*) failed from (?P<ip>[0-9.]+)$`, Examples: []string{"x failed from 198.51.100.7"}},
	}})
	if err == nil || !strings.Contains(err.Error(), "later pattern") {
		t.Errorf("overlapping example: %v", err)
	}
}
