package syslogd_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/syslogd"
)

var (
	testSender   = netip.MustParseAddr("192.0.2.10")
	testReceived = time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.FixedZone("", 3600))
)

// asteriskBody is an Asterisk syslog-channel message (samples/yeastar.log).
const asteriskBody = "NOTICE[1290]: chan_sip.c:28835 in handle_request_register: Registration from '<sip:6001@203.0.113.10>' failed for '198.51.100.23:5060' - Wrong password"

type parseCase struct {
	name string
	in   string
	want string // "" = malformed
	pri  int
}

var parseCases = []parseCase{
	// RFC 3164
	{"3164", "<13>Nov 26 10:00:00 pbx asterisk[812]: hello", "Nov 26 10:00:00 pbx asterisk[812]: hello", 13},
	{"3164 padded day", "<13>Nov  6 10:00:00 pbx asterisk[812]: hello", "Nov  6 10:00:00 pbx asterisk[812]: hello", 13},
	{"3164 zero day", "<13>Nov 06 10:00:00 pbx asterisk[812]: hello", "Nov  6 10:00:00 pbx asterisk[812]: hello", 13},
	{"3164 unpadded day", "<13>Nov 6 10:00:00 pbx asterisk[812]: hello", "Nov  6 10:00:00 pbx asterisk[812]: hello", 13},
	{"3164 fraction", "<13>Nov 26 10:00:00.123 pbx asterisk[812]: hello", "Nov 26 10:00:00.123 pbx asterisk[812]: hello", 13},
	{"3164 no PID", "<13>Nov 26 10:00:00 pbx asterisk: hello", "Nov 26 10:00:00 pbx asterisk: hello", 13},
	{"3164 no PRI", "Nov 26 10:00:00 pbx asterisk[812]: hello", "Nov 26 10:00:00 pbx asterisk[812]: hello", -1},
	{"3164 no HOST", "<13>Nov 26 10:00:00 asterisk[812]: hello", "Nov 26 10:00:00 192.0.2.10 asterisk[812]: hello", 13},
	{"3164 no HOST no PID", "<13>Nov 26 10:00:00 asterisk: hello", "Nov 26 10:00:00 192.0.2.10 asterisk: hello", 13},
	{"3164 no HOST empty MSG", "<13>Nov 26 10:00:00 asterisk:", "Nov 26 10:00:00 192.0.2.10 asterisk: ", 13},
	{"3164 ISO", "<13>2026-11-26T10:00:00.123+01:00 pbx asterisk[812]: hello", "2026-11-26T10:00:00.123+01:00 pbx asterisk[812]: hello", 13},
	{"3164 ISO Z lowercase", "<13>2026-11-26t10:00:00z pbx asterisk[812]: hello", "2026-11-26T10:00:00Z pbx asterisk[812]: hello", 13},
	{"3164 ISO no zone", "<13>2026-11-26T10:00:00 pbx asterisk[812]: hello", "2026-11-26T10:00:00 pbx asterisk[812]: hello", 13},
	{"3164 ISO no PRI", "2026-11-26T10:00:00.123456+01:00 pbx asterisk[812]: hello", "2026-11-26T10:00:00.123456+01:00 pbx asterisk[812]: hello", -1},
	{"3164 no timestamp", "<30>asterisk[812]: hello", "2026-11-26T10:00:00.123456+01:00 192.0.2.10 asterisk[812]: hello", 30},
	{"3164 no timestamp HOST", "<30>pbx asterisk[812]: hello", "2026-11-26T10:00:00.123456+01:00 pbx asterisk[812]: hello", 30},
	{"3164 tag without space", "<13>Nov 26 10:00:00 pbx asterisk:hello", "Nov 26 10:00:00 pbx asterisk: hello", 13},
	{"3164 tag with slash", "<22>Nov 26 10:00:00 mx postfix/smtpd[1234]: connect", "Nov 26 10:00:00 mx postfix/smtpd[1234]: connect", 22},
	{"3164 IPv6 host", "<13>Nov 26 10:00:00 2001:db8::1 asterisk[812]: hello", "Nov 26 10:00:00 2001:db8::1 asterisk[812]: hello", 13},
	{"3164 leap second", "<13>Dec 31 23:59:60 pbx asterisk[812]: hello", "Dec 31 23:59:60 pbx asterisk[812]: hello", 13},
	{"3164 Feb 29", "<13>Feb 29 10:00:00 pbx asterisk[812]: hello", "Feb 29 10:00:00 pbx asterisk[812]: hello", 13},
	{"3164 PRI 0", "<0>Nov 26 10:00:00 pbx kernel: x", "Nov 26 10:00:00 pbx kernel: x", 0},
	{"3164 PRI 191", "<191>Nov 26 10:00:00 pbx kernel: x", "Nov 26 10:00:00 pbx kernel: x", 191},
	{"3164 asterisk", "<29>Mar  2 09:50:01 s50 asterisk[812]: " + asteriskBody, "Mar  2 09:50:01 s50 asterisk[812]: " + asteriskBody, 29},

	// RFC 5424
	{"5424", "<165>1 2026-11-26T10:00:00.123+01:00 pbx asterisk 812 ID47 - hello", "2026-11-26T10:00:00.123+01:00 pbx asterisk[812]: hello", 165},
	{"5424 microseconds UTC", "<165>1 2026-11-26T09:00:00.123456Z pbx asterisk 812 - - hello", "2026-11-26T09:00:00.123456Z pbx asterisk[812]: hello", 165},
	{"5424 nil PROCID", "<165>1 2026-11-26T10:00:00+01:00 pbx asterisk - - - hello", "2026-11-26T10:00:00+01:00 pbx asterisk: hello", 165},
	{"5424 nil HOSTNAME", "<165>1 2026-11-26T10:00:00+01:00 - asterisk 812 - - hello", "2026-11-26T10:00:00+01:00 192.0.2.10 asterisk[812]: hello", 165},
	{"5424 nil TIMESTAMP", "<165>1 - pbx asterisk 812 - - hello", "2026-11-26T10:00:00.123456+01:00 pbx asterisk[812]: hello", 165},
	{"5424 all nil but APP-NAME", "<165>1 - - asterisk - - -", "2026-11-26T10:00:00.123456+01:00 192.0.2.10 asterisk: ", 165},
	{"5424 no MSG", "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - -", "2026-11-26T10:00:00Z pbx asterisk[812]: ", 165},
	{"5424 empty MSG", "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - - ", "2026-11-26T10:00:00Z pbx asterisk[812]: ", 165},
	{"5424 BOM", "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - - \xef\xbb\xbfhello é", "2026-11-26T10:00:00Z pbx asterisk[812]: hello é", 165},
	{"5424 SD", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 77 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event`, "2003-10-11T22:14:15.003Z mymachine.example.com evntslog[77]: An application event", 165},
	{"5424 two SD", `<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="1"][b@2 y="2"] msg`, "2003-10-11T22:14:15.003Z host app: msg", 165},
	{"5424 SD escapes", `<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="q\"uote] \\ b\]r\n"] msg`, "2003-10-11T22:14:15.003Z host app: msg", 165},
	{"5424 SD escaped backslash before quote", `<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="\\"] msg`, "2003-10-11T22:14:15.003Z host app: msg", 165},
	{"5424 SD no params", `<165>1 2003-10-11T22:14:15.003Z host app - - [a@1] msg`, "2003-10-11T22:14:15.003Z host app: msg", 165},
	{"5424 SD no MSG", `<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="1"]`, "2003-10-11T22:14:15.003Z host app: ", 165},
	{"5424 SD with BOM", `<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 x="1"] ` + "\xef\xbb\xbfmsg", "2003-10-11T22:14:15.003Z host app: msg", 165},
	{"5424 nanoseconds", "<165>1 2026-11-26T10:00:00.123456789-05:30 pbx asterisk 812 - - x", "2026-11-26T10:00:00.123456789-05:30 pbx asterisk[812]: x", 165},
	{"5424 asterisk", "<29>1 2026-03-02T09:50:01.250+01:00 s50 asterisk 812 - - " + asteriskBody, "2026-03-02T09:50:01.250+01:00 s50 asterisk[812]: " + asteriskBody, 29},

	// Control characters
	{"3164 newline", "<13>Nov 26 10:00:00 pbx asterisk[812]: a\nNov 26 10:00:00 pbx asterisk[1]: forged", "Nov 26 10:00:00 pbx asterisk[812]: a Nov 26 10:00:00 pbx asterisk[1]: forged", 13},
	{"3164 NUL CR DEL ESC", "<13>Nov 26 10:00:00 pbx asterisk[812]: a\x00b\rc\x7fd\x1be\tf", "Nov 26 10:00:00 pbx asterisk[812]: a b c d e\tf", 13},
	{"5424 newline", "<13>1 - pbx asterisk 1 - - a\r\nb", "2026-11-26T10:00:00.123456+01:00 pbx asterisk[1]: a  b", 13},

	// Malformed
	{"empty", "", "", 0},
	{"no PRI no timestamp", "pbx asterisk[812]: hello", "", 0},
	{"no tag", "<13>Nov 26 10:00:00 pbx hello world", "", 0},
	{"no tag no host", "<13>Nov 26 10:00:00 hello", "", 0},
	{"PRI only", "<13>", "", 0},
	{"bad PRI", "<1x>Nov 26 10:00:00 pbx asterisk: x", "", 0},
	{"PRI too big", "<192>Nov 26 10:00:00 pbx asterisk: x", "", 0},
	{"PRI 4 digits", "<0013>Nov 26 10:00:00 pbx asterisk: x", "", 0},
	{"PRI unclosed", "<13 Nov 26 10:00:00 pbx asterisk: x", "", 0},
	{"bad month day", "<13>Feb 30 10:00:00 pbx asterisk: x", "", 0},
	{"bad hour", "<13>Nov 26 24:00:00 pbx asterisk: x", "", 0},
	{"short timestamp", "<13>Nov 26 10:00 pbx asterisk: x", "", 0},
	{"bad ISO", "<13>2026-13-26T10:00:00Z pbx asterisk: x", "", 0},
	{"ISO Feb 29 non-leap", "<13>2026-02-29T10:00:00Z pbx asterisk: x", "", 0},
	{"ISO bad zone", "<13>2026-11-26T10:00:00+25:00 pbx asterisk: x", "", 0},
	{"ISO long fraction", "<13>2026-11-26T10:00:00.1234567890Z pbx asterisk: x", "", 0},
	{"timestamp then no space", "<13>Nov 26 10:00:00pbx asterisk: x", "", 0},
	{"tag too long", "<13>Nov 26 10:00:00 pbx " + string(bytes.Repeat([]byte("a"), 49)) + ": x", "", 0},
	{"bad pid", "<13>Nov 26 10:00:00 pbx asterisk[81 2]: x", "", 0},
	{"empty pid", "<13>Nov 26 10:00:00 pbx asterisk[]: x", "", 0},
	{"host control char", "<13>Nov 26 10:00:00 p\x01x asterisk: x", "", 0},
	{"5424 version 2", "<13>2 - pbx asterisk 1 - - x", "", 0},
	{"5424 nil APP-NAME", "<165>1 2026-11-26T10:00:00Z pbx - 812 - - hello", "", 0},
	{"5424 APP-NAME with colon", "<165>1 2026-11-26T10:00:00Z pbx asterisk:x 812 - - hello", "", 0},
	{"5424 APP-NAME with bracket", "<165>1 2026-11-26T10:00:00Z pbx asterisk[1] 812 - - hello", "", 0},
	{"5424 PROCID with bracket", "<165>1 2026-11-26T10:00:00Z pbx asterisk 8]12 - - hello", "", 0},
	{"5424 BSD timestamp", "<165>1 Nov 26 10:00:00 pbx asterisk 812 - - hello", "", 0},
	{"5424 missing fields", "<165>1 2026-11-26T10:00:00Z pbx asterisk", "", 0},
	{"5424 missing SD", "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 -", "", 0},
	{"5424 bad SD", "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - x hello", "", 0},
	{"5424 unterminated SD", `<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - [a@1 x="1" hello`, "", 0},
	{"5424 unterminated SD value", `<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - [a@1 x="1\"] hello`, "", 0},
	{"5424 SD unquoted value", `<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - [a@1 x=1] hello`, "", 0},
	{"5424 SD no space before MSG", `<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - [a@1 x="1"]hello`, "", 0},
	{"5424 double space", "<165>1 2026-11-26T10:00:00Z  pbx asterisk 812 - - hello", "", 0},
	{"5424 MSGID too long", "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 " + string(bytes.Repeat([]byte("m"), 33)) + " - hello", "", 0},
}

func TestParse(t *testing.T) {
	clock := parsers.NewClock(parsers.Options{Location: time.UTC, Now: func() time.Time { return testReceived }})
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			line, pri, err := syslogd.Parse([]byte(tc.in), testSender, testReceived)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %q; want malformed", tc.in, line)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v; want %q", tc.in, err, tc.want)
			}
			if string(line) != tc.want {
				t.Errorf("Parse(%q)\n got %q\nwant %q", tc.in, line, tc.want)
			}
			if pri != tc.pri {
				t.Errorf("pri: got %d; want %d", pri, tc.pri)
			}
			// Every timestamp written is one logtime.Clock reads whole.
			if _, n, ok := clock.Parse(line); !ok || n >= len(line) || line[n] != ' ' {
				t.Errorf("logtime.Clock cannot read the timestamp of %q (n=%d ok=%v)", line, n, ok)
			}
		})
	}
}

// TestParse_Precision checks that an RFC 5424 timestamp keeps its
// precision and zone through the Line.
func TestParse_Precision(t *testing.T) {
	clock := parsers.NewClock(parsers.Options{Location: time.UTC})
	line, _, err := syslogd.Parse([]byte("<165>1 2026-11-26T10:00:00.123456+01:00 pbx asterisk 812 - - x"), testSender, testReceived)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := clock.Parse(line)
	want := time.Date(2026, 11, 26, 9, 0, 0, 123456000, time.UTC)
	if !got.Equal(want) {
		t.Errorf("got %v; want %v", got, want)
	}
	// Without a timestamp: the receive time, to the microsecond.
	line, _, err = syslogd.Parse([]byte("<165>1 - pbx asterisk 812 - - x"), testSender, testReceived)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := clock.Parse(line); !got.Equal(testReceived) {
		t.Errorf("got %v; want %v", got, testReceived)
	}
}

// TestParse_Asterisk checks that the real Asterisk parser reads the Lines
// of an Asterisk syslog-channel message sent as RFC 3164 and RFC 5424.
func TestParse_Asterisk(t *testing.T) {
	for _, in := range []string{
		"<29>Mar  2 09:50:01 s50 asterisk[812]: " + asteriskBody,
		"<29>Mar  2 09:50:01 asterisk[812]: " + asteriskBody,
		"<29>1 2026-03-02T09:50:01.250+01:00 s50 asterisk 812 - - " + asteriskBody,
		"<29>1 - - asterisk 812 - [origin ip=\"192.0.2.10\"] \xef\xbb\xbf" + asteriskBody,
	} {
		line, _, err := syslogd.Parse([]byte(in), testSender, testReceived)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		checkAsterisk(t, line)
	}
}

func TestParse_IPv6Sender(t *testing.T) {
	line, _, err := syslogd.Parse([]byte("<13>Nov 26 10:00:00 asterisk: x"), netip.MustParseAddr("2001:db8::7"), testReceived)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Nov 26 10:00:00 2001:db8::7 asterisk: x"; string(line) != want {
		t.Errorf("got %q; want %q", line, want)
	}
}
