package yeastar_test

import (
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/yeastar"
)

var newParser = parsertest.New("yeastar", parsertest.Now)

func TestTestdata(t *testing.T) {
	parsertest.Testdata(t, newParser, 20, nil)
}

// TestHeaderless: a line without a syslog header is never read as a
// failure, even when it is a perfect Asterisk file-channel line, and does
// not disturb the stream.
func TestHeaderless(t *testing.T) {
	p := newParser(t)
	var ev parsers.Event
	for _, l := range []string{
		"[2026-03-02 09:52:06] NOTICE[4121] chan_sip.c: Registration from '' failed for '203.0.113.66:5060' - Wrong password",
		"NOTICE[4121]: chan_sip.c:1 in f: Registration from '' failed for '203.0.113.67:5060' - Wrong password",
		`{"hostname":"pbx","timestamp":"2026-11-26 10:00:08","identifiers":{"lwp":1234,"callid":""},"logmsg":{"location":{"filename":"manager.c","function":"f","line":1},"level":"NOTICE","message":"203.0.113.66 failed to authenticate as 'a'"}}`,
	} {
		if got := p.Parse([]byte(l), &ev); got != parsers.DropInjected {
			t.Errorf("%.50q: %v; want dropped as injected", l, got)
		}
	}
	for _, l := range []string{"z' rejected because extension not found in context 'default'.", "   at some.Trace()"} {
		if got := p.Parse([]byte(l), &ev); got != parsers.Ignored {
			t.Errorf("%.50q: %v; want ignored", l, got)
		}
	}
	good := "<13>Mar  2 09:52:08 s50 asterisk[812]: NOTICE[1294]: manager.c:2294 in authenticate: 198.51.100.12 failed to authenticate as 'root'"
	if got := p.Parse([]byte(good), &ev); got != parsers.Matched {
		t.Errorf("a good line after headerless ones: %v; want matched", got)
	}
}

// TestDatagramEnds: the line terminators and NULs some senders put at the
// end of a datagram are not part of the message.
func TestDatagramEnds(t *testing.T) {
	const line = "<13>Mar  2 09:52:08 s50 asterisk[812]: NOTICE[1294]: manager.c:2294 in authenticate: 198.51.100.12 failed to authenticate as 'root'"
	for _, end := range []string{"\n", "\r\n", "\x00", "\n\x00"} {
		p := newParser(t)
		var ev parsers.Event
		if got := p.Parse([]byte(line+end), &ev); got != parsers.Matched || ev.User != "root" {
			t.Errorf("ending %q: %v, user %q; want matched, root", end, got, ev.User)
		}
	}
}

// TestTimes checks the time each framing gives an event.
func TestTimes(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	p, _ := yeastar.New(parsers.Options{Location: paris, Now: func() time.Time { return parsertest.Now }})
	const body = "NOTICE[1294]: manager.c:2294 in authenticate: 198.51.100.12 failed to authenticate as 'root'"
	tests := []struct{ line, want string }{
		{"<13>Nov 26 10:00:00 s50 asterisk[812]: " + body, "2026-11-26T10:00:00+01:00"},
		{"<13>Dec 31 23:00:00 asterisk: " + body, "2025-12-31T23:00:00+01:00"},
		{"<13>2026-07-01T10:00:00.5-04:00 s50 asterisk[812]: " + body, "2026-07-01T10:00:00.5-04:00"},
		{"<13>1 2026-07-01T10:00:00.25Z s50 asterisk 812 - - " + body, "2026-07-01T10:00:00.25Z"},
		{"<13>1 - s50 asterisk 812 - - " + body, ""},
		{"<13>Nov 26 10:00:00 s50 asterisk[812]: [2026-07-01 10:00:00] NOTICE[1294] manager.c: 198.51.100.12 failed to authenticate as 'root'", "2026-07-01T10:00:00+02:00"},
	}
	for _, tc := range tests {
		var ev parsers.Event
		if o := p.Parse([]byte(tc.line), &ev); o != parsers.Matched {
			t.Errorf("%.60s: %v", tc.line, o)
			continue
		}
		switch {
		case tc.want == "":
			if !ev.Time.IsZero() {
				t.Errorf("%.60s: time %v; want none (the caller stamps it)", tc.line, ev.Time)
			}
		case ev.Time.Format(time.RFC3339Nano) != tc.want:
			t.Errorf("%.60s: time %s; want %s", tc.line, ev.Time.Format(time.RFC3339Nano), tc.want)
		}
	}
}
