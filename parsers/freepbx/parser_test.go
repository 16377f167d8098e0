package freepbx_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/freepbx"
)

var newParser = parsertest.New("freepbx", parsertest.Now)

func TestTestdata(t *testing.T) {
	parsertest.Testdata(t, newParser, 15, func(file string, l []byte) bool {
		// The legacy writer lets a typed user name forge a line (docs/pbx.md, FreePBX).
		return filepath.Base(file) == "legacy.log" && bytes.Contains(l, []byte("for y from 203.0.113.66"))
	})
}

// TestLegacyInjection follows a legacy-layout message whose user name held
// newlines: what is forged before the first line without a date cannot be
// told from a real line; from that line on, no legacy line is trusted.
func TestLegacyInjection(t *testing.T) {
	p := newParser(t)
	seq := []struct {
		line string
		want parsers.Outcome
		addr string
	}{
		{"[2019-05-10 10:10:10] Authentication failure for admin from 198.51.100.23", parsers.Matched, "198.51.100.23"},
		// User name "x\n[2019-05-10 10:10:17] Authentication failure for y from 203.0.113.66\nz".
		{"[2019-05-10 10:10:17] Authentication failure for x", parsers.DropMalformed, ""},
		{"[2019-05-10 10:10:17] Authentication failure for y from 203.0.113.66", parsers.Matched, "203.0.113.66"}, // the residual risk
		{"z from 198.51.100.7", parsers.DropInjected, ""},
		// Nothing in the legacy layout is trusted again.
		{"[2019-05-10 10:10:18] Authentication failure for admin from 198.51.100.7", parsers.DropInjected, ""},
		{"[2019-05-10 10:10:19] Authentication failure for a from 203.0.113.67", parsers.DropInjected, ""},
		// The Monolog layout still is: it cannot be forged.
		{"[2026-03-02 09:40:11] [freepbx_security.NOTICE]: Authentication failure for admin from 198.51.100.8 [] []", parsers.Matched, "198.51.100.8"},
	}
	for i, s := range seq {
		var ev parsers.Event
		got := p.Parse([]byte(s.line), &ev)
		if got != s.want {
			t.Fatalf("line %d: %v; want %v", i, got, s.want)
		}
		if got == parsers.Matched && ev.Addr.String() != s.addr {
			t.Fatalf("line %d: %s; want %s", i, ev.Addr, s.addr)
		}
	}
}

// TestMonologThenLegacy: a stream that has shown the Monolog layout drops
// every legacy-looking line, which only an injection could produce there.
func TestMonologThenLegacy(t *testing.T) {
	p := newParser(t)
	var ev parsers.Event
	if got := p.Parse([]byte("[2026-03-02 09:40:20] [freepbx_security.NOTICE]: Authentication successful for 1001 from 192.0.2.50 [] []"), &ev); got != parsers.Matched || ev.Kind != parsers.AuthSucceeded || ev.Addr.String() != "192.0.2.50" {
		t.Fatalf("success line: %v %v %v; want an auth_succeeded event from 192.0.2.50", got, ev.Kind, ev.Addr)
	}
	if got := p.Parse([]byte("[2026-03-02 09:40:20] Authentication successful for 1001 from 192.0.2.50"), &ev); got != parsers.DropInjected {
		t.Fatalf("legacy success line after a Monolog line: %v; want dropped as injected", got)
	}
	if got := p.Parse([]byte("[2026-03-02 09:40:21] Authentication failure for admin from 198.51.100.7"), &ev); got != parsers.DropInjected {
		t.Fatalf("legacy line after a Monolog line: %v; want dropped as injected", got)
	}
	// A fresh stream trusts the legacy layout.
	p = newParser(t)
	if got := p.Parse([]byte("[2026-03-02 09:40:21] Authentication failure for admin from 198.51.100.7"), &ev); got != parsers.Matched {
		t.Fatalf("legacy line: %v; want matched", got)
	}
}

// TestSyslogOtherPrograms: in a syslog file, other programs' lines are not
// taken for the continuation of a forged legacy message.
func TestSyslogOtherPrograms(t *testing.T) {
	p := newParser(t)
	var ev parsers.Event
	for _, l := range []string{
		"Mar  2 09:40:15 pbx sshd[812]: Failed password for root from 198.51.100.7 port 2222 ssh2",
		"Mar  2 09:40:15 pbx kernel: something",
	} {
		if got := p.Parse([]byte(l), &ev); got != parsers.Ignored {
			t.Errorf("%q: %v; want ignored", l, got)
		}
	}
	if got := p.Parse([]byte("[2019-05-10 10:10:18] Authentication failure for admin from 198.51.100.7"), &ev); got != parsers.Matched {
		t.Errorf("legacy line after other programs' syslog lines: %v; want matched", got)
	}
}

// TestTimes checks the zone and the timestamp cache.
func TestTimes(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	p, _ := freepbx.New(parsers.Options{Location: paris, Now: func() time.Time { return parsertest.Now }})
	tests := []struct{ line, want string }{
		{"[2026-07-01 10:00:00] [freepbx_security.NOTICE]: Authentication failure for a from 198.51.100.7 [] []", "2026-07-01T10:00:00+02:00"},
		{"[2026-07-01 10:00:00] [freepbx_security.NOTICE]: Authentication failure for b from 198.51.100.7 [] []", "2026-07-01T10:00:00+02:00"},
		{"[2026-01-01 10:00:01] [freepbx_security.NOTICE]: Authentication failure for a from 198.51.100.7 [] []", "2026-01-01T10:00:01+01:00"},
		// The syslog header's date is not used: the message has its own, with the year.
		{"Dec 31 23:59:59 pbx freepbx_security[1]: [2025-12-31 23:59:58] [freepbx_security.NOTICE]: Authentication failure for a from 198.51.100.7 [] []", "2025-12-31T23:59:58+01:00"},
	}
	for _, tc := range tests {
		var ev parsers.Event
		if o := p.Parse([]byte(tc.line), &ev); o != parsers.Matched {
			t.Errorf("%.60s: %v", tc.line, o)
			continue
		}
		if got := ev.Time.Format(time.RFC3339Nano); got != tc.want {
			t.Errorf("%.60s: time %s; want %s", tc.line, got, tc.want)
		}
	}
}

// TestUserClipped: the user name kept in an event is bounded.
func TestUserClipped(t *testing.T) {
	p := newParser(t)
	var ev parsers.Event
	line := "[2026-03-02 09:40:11] [freepbx_security.NOTICE]: Authentication failure for " + strings.Repeat("a", 5000) + " from 198.51.100.7 [] []"
	if got := p.Parse([]byte(line), &ev); got != parsers.Matched || len(ev.User) != 128 {
		t.Errorf("got %v, user of %d bytes; want matched, 128", got, len(ev.User))
	}
}
