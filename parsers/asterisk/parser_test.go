package asterisk_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/asterisk"
)

var newParser = parsertest.New("asterisk", parsertest.Now)

func TestTestdata(t *testing.T) {
	parsertest.Testdata(t, newParser, 100, nil)
}

// TestNewlineInjection follows a chan_sip extension carrying %0A: Asterisk
// decodes it, and the rest of the message becomes lines that imitate
// complete log lines.
func TestNewlineInjection(t *testing.T) {
	p := newParser(t)
	attacker, other := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")
	seq := []struct {
		line string
		want parsers.Outcome
		addr netip.Addr
		kind parsers.Kind
	}{
		// A genuine line: thread 4121 is Asterisk's.
		{"[2026-03-02 09:30:59] NOTICE[4121] chan_sip.c: Registration from '' failed for '198.51.100.8:5060' - Wrong password", parsers.Matched, other, parsers.AuthFailed},
		// The cut-short head still counts for its sender.
		{"[2026-03-02 09:31:00] NOTICE[4121][C-00000001] chan_sip.c: Call from '' (198.51.100.7:5060) to extension 'x", parsers.Matched, attacker, parsers.UnknownExtension},
		// The line after it is the rest of it: an injection by the sender.
		{"[2026-03-02 09:31:00] NOTICE[4121] chan_sip.c: Registration from '' failed for '203.0.113.66:5060' - Wrong password", parsers.Matched, attacker, parsers.Injection},
		{"' rejected because extension not found in context 'default'.", parsers.Ignored, netip.Addr{}, 0},
		// Further forged lines in its reach are dropped, whatever thread they name.
		{"[2026-03-02 09:31:00] NOTICE[4121] chan_sip.c: Registration from '' failed for '203.0.113.67:5060' - Wrong password", parsers.DropInjected, netip.Addr{}, 0},
		{"y' rejected because extension not found in context 'default'.", parsers.Ignored, netip.Addr{}, 0},
		// The sender's own lines count.
		{"[2026-03-02 09:31:00] NOTICE[4121] chan_sip.c: Registration from '' failed for '198.51.100.7:5060' - Wrong password", parsers.Matched, attacker, parsers.AuthFailed},
	}
	var ev parsers.Event
	for i, s := range seq {
		got := p.Parse([]byte(s.line), &ev)
		if got != s.want {
			t.Fatalf("line %d: %v; want %v", i, got, s.want)
		}
		if s.want == parsers.Matched && (ev.Addr != s.addr || ev.Kind != s.kind) {
			t.Fatalf("line %d: %s %v; want %s %v", i, ev.Addr, ev.Kind, s.addr, s.kind)
		}
	}
	// The window ends after the most one Asterisk message can span.
	filler := "[2026-03-02 09:31:01] VERBOSE[1] pbx.c: " + strings.Repeat("x", 200)
	forged := "[2026-03-02 09:31:01] NOTICE[9] chan_sip.c: Registration from '' failed for '203.0.113.68:5060' - Wrong password"
	n := 0
	for p.Parse([]byte(forged), &ev) == parsers.DropInjected {
		p.Parse([]byte(filler), &ev)
		n++
		if n > 100 {
			t.Fatal("window never ends")
		}
	}
	if n < 20 {
		t.Errorf("window ended after %d pairs of lines (351 bytes); want about 8 KiB", n)
	}
	if ev.Addr != netip.MustParseAddr("203.0.113.68") {
		t.Errorf("after the window: %s", ev.Addr)
	}

	// Other messages: the line after them, when forged, never counts for
	// the address it names.
	good := "[2026-03-02 09:31:03] NOTICE[7] chan_sip.c: Registration from '' failed for '203.0.113.66:5060' - Wrong password"
	for _, head := range []string{
		"[2026-03-02 09:31:03] NOTICE[4400] chan_iax2.c: No registration for peer 'x",
		"[2026-03-02 09:31:03] NOTICE[4400] chan_iax2.c: Host 198.51.100.7:4569 failed to authenticate as x",
		"[2026-03-02 09:31:03] WARNING[5120][C-0000002c] Ext. x",
		"[2026-03-02 09:31:03] WARNING[5120][C-0000002c] Ext. 1: x",
		"[2026-03-02 09:31:03] NOTICE[4190] res_pjsip_session.c:  anonymous: Call (UDP:198.51.100.7:5060) to extension 'x",
		"[2026-03-02 09:31:03] NOTICE[4190] res_pjsip_session.c:  anonymous: Call (UDP:198.51.100.7:5060) to extension '1' rejected because extension not found in context 'x'.",
	} {
		p := newParser(t)
		p.Parse([]byte(head), &ev)
		if got := p.Parse([]byte(good), &ev); got == parsers.Matched && ev.Addr != attacker {
			t.Errorf("line after %q: %v for %s", head, got, ev.Addr)
		}
	}
}

// TestWhole: where every line is one whole message (the journal), nothing
// is forged inside another line, and messages whose address follows
// attacker text are read.
func TestWhole(t *testing.T) {
	p, err := asterisk.New(parsers.Options{Location: time.UTC, Now: func() time.Time { return parsertest.Now }, Whole: true})
	if err != nil {
		t.Fatal(err)
	}
	var ev parsers.Event
	for _, tc := range []struct{ line, addr string }{
		{"2026-03-02T09:31:00.000000Z pbx asterisk[1]: NOTICE[4400]: chan_iax2.c:1 in f: No registration for peer 'x#012y' (from 198.51.100.7)", "198.51.100.7"},
		{"2026-03-02T09:31:00.000000Z pbx asterisk[1]: WARNING[5120]: Ext. x#012y:1 @ from-sip-external: \"Rejecting unknown SIP connection from 198.51.100.8:5060\"", "198.51.100.8"},
		{"2026-03-02T09:31:00.000000Z pbx asterisk[1]: NOTICE[4121]: chan_sip.c:1 in f: Call from '' (198.51.100.7:5060) to extension 'x", "198.51.100.7"},
		// No window after the line above: this line is its own message.
		{"2026-03-02T09:31:00.000000Z pbx asterisk[1]: NOTICE[4121]: chan_sip.c:1 in f: Registration from '' failed for '198.51.100.9:5060' - Wrong password", "198.51.100.9"},
	} {
		if got := p.Parse([]byte(tc.line), &ev); got != parsers.Matched || ev.Addr.String() != tc.addr {
			t.Errorf("%.70q: %v %s; want %s", tc.line, got, ev.Addr, tc.addr)
		}
	}
}

// TestTruncatedAt8K: a message Asterisk cut at its 8 KiB buffer has no
// newline in it, so nothing after it is quarantined.
func TestTruncatedAt8K(t *testing.T) {
	p := newParser(t)
	head := "[2026-03-02 09:32:00] NOTICE[4121][C-00000001] chan_sip.c: Call from '' (198.51.100.7:5060) to extension '"
	long := head + strings.Repeat("9", 8191-len(head))
	var ev parsers.Event
	if got := p.Parse([]byte(long), &ev); got != parsers.Matched || ev.Addr != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("truncated line: %v %s", got, ev.Addr)
	}
	good := "[2026-03-02 09:32:01] NOTICE[4121] chan_sip.c: Registration from '' failed for '198.51.100.8:5060' - Wrong password"
	if got := p.Parse([]byte(good), &ev); got != parsers.Matched {
		t.Errorf("line after a truncated message: %v; want matched", got)
	}
}

// TestTimes checks the time an event gets from each kind of timestamp.
func TestTimes(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	p, _ := asterisk.New(parsers.Options{Location: paris, Now: func() time.Time { return parsertest.Now }})
	tests := []struct{ line, want string }{
		{"[Nov 26 10:00:00] NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'a'", "2026-11-26T10:00:00+01:00"},
		{"[Dec 31 23:00:00] NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'a'", "2025-12-31T23:00:00+01:00"},
		{"[2026-07-01 10:00:00.5] NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'a'", "2026-07-01T10:00:00.5+02:00"},
		{"2026-07-01T10:00:00.123-04:00 pbx asterisk[1]: NOTICE[1]: manager.c:1 in f: 198.51.100.7 failed to authenticate as 'a'", "2026-07-01T10:00:00.123-04:00"},
		// EventTV carries the zone and wins over the prefix.
		{`[2026-07-01 10:00:00] SECURITY[1] res_security_log.c: SecurityEvent="InvalidAccountID",EventTV="2026-07-01T10:00:00.250+0300",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="1",SessionID="a",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060"`, "2026-07-01T10:00:00.25+03:00"},
		{`[2013-05-13 07:10:53] SECURITY[1] res_security_log.c: SecurityEvent="InvalidAccountID",EventTV="1368439853-500975",Severity="Error",Service="SIP",EventVersion="1",AccountID="1",SessionID="a",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060"`, "2013-05-13T12:10:53.500975+02:00"},
		// No timestamp at all: the caller stamps it.
		{"NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'a'", ""},
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
				t.Errorf("%.60s: time %v; want none", tc.line, ev.Time)
			}
		case !ev.Time.Equal(mustTime(tc.want)):
			t.Errorf("%.60s: time %s; want %s", tc.line, ev.Time.Format(time.RFC3339Nano), tc.want)
		}
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestEmptyStamp: an empty timestamp ("[] " or a JSON "timestamp":"") is a
// timestamp that cannot be read, whether or not a good one came before (the
// timestamp cache once took it for the empty text it starts with, and gave
// the first such line of a stream no time instead).
func TestEmptyStamp(t *testing.T) {
	good := "[2026-03-02 09:33:00] NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'a'"
	for _, line := range []string{
		"[] NOTICE[1] chan_sip.c: Registration from '' failed for '198.51.100.1:5060' - Wrong password",
		`{"hostname":"pbx","timestamp":"","identifiers":{"lwp":1234,"callid":""},"logmsg":{"location":{"filename":"manager.c","function":"f","line":1},"level":"NOTICE","message":"198.51.100.66 failed to authenticate as 'a'"}}`,
	} {
		for _, before := range []string{"", good} {
			p := newParser(t)
			var ev parsers.Event
			if before != "" {
				p.Parse([]byte(before), &ev)
			}
			if got := p.Parse([]byte(line), &ev); got != parsers.DropTime {
				t.Errorf("%.40q after %.30q: %v; want %v", line, before, got, parsers.DropTime)
			}
		}
	}
}

// TestEscapeInDate: an escape code in the date can swallow its "]" (ESC [
// then a final byte), so a line that looks like VERBOSE is NOTICE once
// the codes are stripped; the early exit for other levels must not take
// it. Its date is no date, so it is dropped for its time, not ignored.
func TestEscapeInDate(t *testing.T) {
	const msg = " chan_sip.c: Registration from '' failed for '198.51.100.7:5060' - Wrong password"
	for _, c := range []struct {
		line string
		want parsers.Outcome
	}{
		{"[x\x1b[] VERBOSE] NOTICE[4121]" + msg, parsers.DropTime},
		{"[2026-03-02 09:31:00] VERBOSE\x1b[0m[4121]" + msg, parsers.Ignored},
		{"[2026-03-02 09:31:00] \x1b[1;33mNOTICE\x1b[0m[4121]" + msg, parsers.Matched},
		{"[2026-03-02 09:31:00] VERBOSE[4121]" + msg, parsers.Ignored},
	} {
		var ev parsers.Event
		if got := newParser(t).Parse([]byte(c.line), &ev); got != c.want {
			t.Errorf("%q: %v; want %v", c.line, got, c.want)
		}
	}
}

// TestFrameAtFrom: a From that begins with the frame's text makes a frame
// with the quote before it, so the line holds two and is ambiguous; the
// search that starts at the From's first frame must still see it.
func TestFrameAtFrom(t *testing.T) {
	line := "[2026-03-02 09:31:00] NOTICE[4121] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '" +
		" failed for '203.0.113.9:5060' (callid: x) - Failed to authenticate' failed for '198.51.100.7:5060' (callid: y) - Failed to authenticate"
	var ev parsers.Event
	if got := newParser(t).Parse([]byte(line), &ev); got != parsers.DropMalformed {
		t.Fatalf("%v (%v); want %v", got, ev.Addr, parsers.DropMalformed)
	}
}
