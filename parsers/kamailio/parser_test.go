package kamailio_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/kamailio"
)

// now is the fixed "current time" of the tests, the day the real
// Kamailio logs were captured: year-less syslog dates resolve against it.
var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

var newParser = parsertest.New("kamailio", now)

func TestTestdata(t *testing.T) {
	parsertest.Testdata(t, newParser, 50, func(file string, _ []byte) bool {
		return strings.HasPrefix(filepath.Base(file), "limit_") // documented limits
	})
}

// TestRealKamailio: the lines a real Kamailio wrote under attack give the
// attackers' addresses, the friend never appears, and every sipguard line
// written by Kamailio itself is read.
func TestRealKamailio(t *testing.T) {
	for _, file := range []string{"testdata/real_stderr.log", "testdata/real_json.log", "testdata/real_syslog.log", "testdata/real_syslog_rfc3339.log"} {
		p := newParser(t)
		nums, lines := parsertest.Lines(t, file)
		kinds := map[string]int{}
		for i, l := range lines {
			var ev parsers.Event
			o := p.Parse(l, &ev)
			own := ownLine.Match(l) || bytes.Contains(l, []byte(`"module": "xlog"`)) || ownSyslog.Match(l)
			if own && o != parsers.Matched {
				t.Errorf("%s:%d: %v; Kamailio's own sipguard line must be read", file, nums[i], o)
			}
			if o != parsers.Matched {
				continue
			}
			if a := ev.Addr.String(); a != "198.18.0.2" && a != "fd00:5::2" && a != "127.0.0.1" && a != "::1" {
				t.Errorf("%s:%d: %s is not an attacker", file, nums[i], a)
			}
			kinds[ev.Kind.String()]++
		}
		if kinds["auth_failed"] < 2 || kinds["unknown_user"] < 3 {
			t.Errorf("%s: events by kind %v", file, kinds)
		}
	}
}

// ownLine is a sipguard line as Kamailio's plain engine writes it on stderr.
var ownLine = regexp.MustCompile(`^ ?[0-9]+\([0-9]+\) NOTICE: <script>: sipguard: v1 `)

// ownSyslog is a sipguard line of the plain engine through syslog.
var ownSyslog = regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ /usr/sbin/kamailio\[\d+\]: NOTICE: <script>: sipguard: v1 `)

// TestStderrDumps documents the limit of the plain log engine: Kamailio
// prints packets it cannot parse raw, newlines included, so a packet can
// write a whole line that looks like a sipguard line. The JSON log engine
// escapes them, and the same packets yield nothing.
func TestStderrDumps(t *testing.T) {
	forged := 0
	p := newParser(t)
	_, lines := parsertest.Lines(t, "testdata/limit_stderr_dumps.log")
	for _, l := range lines {
		var ev parsers.Event
		if p.Parse(l, &ev) == parsers.Matched && parsertest.Victims.Contains(ev.Addr) {
			forged++
		}
	}
	t.Logf("plain log engine: %d forged lines read as real (the known limit; use the JSON engine or syslog)", forged)
	p = newParser(t)
	_, lines = parsertest.Lines(t, "testdata/real_json.log")
	dumps := 0
	for _, l := range lines {
		var ev parsers.Event
		o := p.Parse(l, &ev)
		if bytes.Contains(l, []byte("parse_msg")) && bytes.Contains(l, []byte("203.0.113.66")) {
			dumps++
			if o != parsers.DropMalformed {
				t.Errorf("JSON dump %.80q: %v; want drop malformed", l, o)
			}
		}
	}
	if dumps == 0 {
		t.Error("real_json.log lost its dumps")
	}
}

// TestCarriageReturn: Kamailio's records never end in CR; a line that does,
// and the line after it, are raw SIP text.
func TestCarriageReturn(t *testing.T) {
	line := " 1(4242) NOTICE: <script>: sipguard: v1 time=2026-11-27T10:00:00+0100 src=198.51.100.7 port=5060 proto=udp kind=auth_failed method=REGISTER code=-2 au=\"100\" from=\"100\" to=\"100\" ruri=\"\" ua=\"x\""
	p := newParser(t)
	var ev parsers.Event
	for i, tc := range []struct {
		line string
		want parsers.Outcome
	}{
		{line, parsers.Matched},
		{"raw text\r", parsers.Ignored},
		{line, parsers.DropInjected},
		{line, parsers.Matched},
		{line + "\r", parsers.DropInjected},
		{line, parsers.DropInjected},
		{"", parsers.Ignored},
		{line, parsers.Matched},
	} {
		if got := p.Parse([]byte(tc.line), &ev); got != tc.want {
			t.Errorf("step %d: %v; want %v", i, got, tc.want)
		}
	}
}

// TestTimes: the event time is the one in the message, with its zone,
// whatever the prefix says.
func TestTimes(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	p, _ := kamailio.New(parsers.Options{Location: paris, Now: func() time.Time { return now }})
	rest := " src=198.51.100.7 port=5060 proto=udp kind=auth_failed method=REGISTER code=-2 au=\"\" from=\"\" to=\"\" ruri=\"\" ua=\"\""
	for _, tc := range []struct{ line, want string }{
		{" 1(1) NOTICE: <script>: sipguard: v1 time=2026-11-27T10:00:00+0100" + rest, "2026-11-27T10:00:00+01:00"},
		{" 1(1) NOTICE: <script>: sipguard: v1 time=2026-07-01T10:00:00-0400" + rest, "2026-07-01T10:00:00-04:00"},
		{"Dec 31 23:59:59 pbx kamailio[1]: NOTICE: <script>: sipguard: v1 time=2026-11-27T10:00:00+0000" + rest, "2026-11-27T10:00:00Z"},
		// Without a zone (a script that left out %z): the source's zone.
		{" 1(1) NOTICE: <script>: sipguard: v1 time=2026-07-01T10:00:00" + rest, "2026-07-01T10:00:00+02:00"},
	} {
		var ev parsers.Event
		if o := p.Parse([]byte(tc.line), &ev); o != parsers.Matched {
			t.Errorf("%.70s: %v", tc.line, o)
			continue
		}
		if want, _ := time.Parse(time.RFC3339, tc.want); !ev.Time.Equal(want) {
			t.Errorf("%.70s: time %s; want %s", tc.line, ev.Time.Format(time.RFC3339), tc.want)
		}
	}
}

// TestConfigFormat keeps contrib/kamailio/sipguard.cfg and the parser in
// step: the xlog format has the fixed part in the order the parser reads
// it, and every attacker field is cut and percent-encoded.
func TestConfigFormat(t *testing.T) {
	cfg, err := os.ReadFile("../../contrib/kamailio/sipguard.cfg")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`xlog\("L_NOTICE", "(sipguard: [^\n]*)\\n"\);`).FindSubmatch(cfg)
	if m == nil {
		t.Fatal("no sipguard xlog line in sipguard.cfg")
	}
	format := string(m[1])
	fixed := `sipguard: v1 time=$timef(%Y-%m-%dT%H:%M:%S%z) src=$si port=$sp proto=$pr kind=$var(sg_kind) method=$rm code=$var(sg_code) `
	if !strings.HasPrefix(format, fixed) {
		t.Fatalf("fixed part\n%s\nwant\n%s", format, fixed)
	}
	fields := regexp.MustCompile(`^(\w+)=\\"\$\((\w+)\{s\.substr,0,64\}\{s\.urlencode\.param\}\)\\"$`)
	var keys []string
	for _, f := range strings.Split(strings.TrimPrefix(format, fixed), " ") {
		m := fields.FindStringSubmatch(f)
		if m == nil {
			t.Errorf("attacker field %q is not cut and encoded", f)
			continue
		}
		keys = append(keys, m[1])
	}
	if got := strings.Join(keys, " "); got != "au from to ruri ua" {
		t.Errorf("attacker fields %q; want au from to ruri ua", got)
	}
	// The line the format gives is read.
	line := " 1(1) NOTICE: <script>: " + strings.NewReplacer(
		`$timef(%Y-%m-%dT%H:%M:%S%z)`, "2026-11-27T10:00:00+0100", "$si", "198.51.100.7", "$sp", "5060",
		"$pr", "udp", "$var(sg_kind)", "auth_failed", "$rm", "REGISTER", "$var(sg_code)", "-2",
		`\"`, `"`, "$(au{s.substr,0,64}{s.urlencode.param})", "100",
		"$(fU{s.substr,0,64}{s.urlencode.param})", "100", "$(tU{s.substr,0,64}{s.urlencode.param})", "100",
		"$(rU{s.substr,0,64}{s.urlencode.param})", "", "$(ua{s.substr,0,64}{s.urlencode.param})", "x%20y",
	).Replace(format)
	var ev parsers.Event
	if o := newParser(t).Parse([]byte(line), &ev); o != parsers.Matched || ev.User != "100" {
		t.Errorf("%s: %v %q", line, o, ev.User)
	}
}

// TestUser: the account tried is the auth user name, else the To user of a
// REGISTER, else the From user; percent-encoding is undone.
func TestUser(t *testing.T) {
	pre := " 1(1) NOTICE: <script>: sipguard: v1 time=2026-11-27T10:00:00+0100 src=198.51.100.7 port=5060 proto=udp kind=unknown_user "
	for _, tc := range []struct{ rest, want string }{
		{`method=REGISTER code=-3 au="al%20ice" from="f" to="t" ruri="" ua=""`, "al ice"},
		{`method=REGISTER code=-3 au="" from="f" to="t" ruri="" ua=""`, "t"},
		{`method=INVITE code=-3 au="" from="f%22%0A" to="t" ruri="r" ua=""`, "f\"\n"},
		{`method=INVITE code=-3 au="" from="" to="t" ruri="r" ua=""`, ""},
	} {
		var ev parsers.Event
		if o := newParser(t).Parse([]byte(pre+tc.rest), &ev); o != parsers.Matched || ev.User != tc.want {
			t.Errorf("%s: %v user %q; want %q", tc.rest, o, ev.User, tc.want)
		}
	}
}
