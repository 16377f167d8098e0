package yeastar_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/yeastar"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now is the fixed "current time" of the tests: year-less dates resolve
// against it.
var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newParser(t testing.TB) parsers.Parser {
	t.Helper()
	p, err := parsers.New("yeastar", parsers.Options{Location: time.UTC, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testLines returns the log lines of a testdata file with their line
// numbers, skipping comments and blank lines.
func testLines(t testing.TB, path string) (nums []int, lines [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		nums, lines = append(nums, i+1), append(lines, l)
	}
	return nums, lines
}

type goldenEvent struct {
	Time    string `json:"time"`
	IP      string `json:"ip"`
	Port    uint16 `json:"port"`
	Kind    string `json:"kind"`
	Service string `json:"service"`
	User    string `json:"user"`
}

func describe(o parsers.Outcome, ev *parsers.Event) string {
	if o != parsers.Matched {
		if o.Dropped() {
			return "drop " + o.String()
		}
		return o.String()
	}
	t := "none"
	if !ev.Time.IsZero() {
		t = ev.Time.Format(time.RFC3339Nano)
	}
	j, _ := json.Marshal(goldenEvent{t, ev.Addr.String(), ev.Port, ev.Kind.String(), ev.Service.String(), ev.User})
	return "matched " + string(j)
}

// TestGolden parses every testdata/*.log file with one parser and compares
// the outcome of each line with testdata/*.golden ("go test -update"
// rewrites them; review the diff).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.log")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p := newParser(t)
			nums, lines := testLines(t, file)
			var out strings.Builder
			for i, l := range lines {
				var ev parsers.Event
				fmt.Fprintf(&out, "%d: %s\n", nums[i], describe(p.Parse(l, &ev), &ev))
			}
			golden := strings.TrimSuffix(file, ".log") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			gotLines, wantLines := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
			for i := range max(len(gotLines), len(wantLines)) {
				var g, w string
				if i < len(gotLines) {
					g = gotLines[i]
				}
				if i < len(wantLines) {
					w = wantLines[i]
				}
				if g != w {
					t.Errorf("got  %s\nwant %s", g, w)
				}
			}
		})
	}
}

// victims holds the addresses that appear in the testdata only inside
// attacker-written text or as the PBX's own address.
var victims = netip.MustParsePrefix("203.0.113.0/24")

// TestNeverAttackerText checks the rule that matters most over every
// testdata line: an address comes only from the packet-source position.
func TestNeverAttackerText(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	matched := 0
	for _, file := range files {
		p := newParser(t)
		nums, lines := testLines(t, file)
		for i, l := range lines {
			var ev parsers.Event
			if p.Parse(l, &ev) != parsers.Matched {
				continue
			}
			matched++
			if victims.Contains(ev.Addr) {
				t.Errorf("%s:%d: banned %s, an address from attacker text", file, nums[i], ev.Addr)
			}
		}
	}
	if matched < 20 {
		t.Errorf("only %d lines matched: the testdata lost its positive cases", matched)
	}
}

// TestHostile checks every injection line: it yields the real source
// 198.51.100.7 or is dropped.
func TestHostile(t *testing.T) {
	real := netip.MustParseAddr("198.51.100.7")
	p := newParser(t)
	nums, lines := testLines(t, "testdata/hostile.log")
	var read, dropped int
	for i, l := range lines {
		var ev parsers.Event
		switch o := p.Parse(l, &ev); {
		case o == parsers.Matched:
			read++
			if ev.Addr != real {
				t.Errorf("line %d: got %s; want %s or a drop", nums[i], ev.Addr, real)
			}
		case o.Dropped():
			dropped++
		default:
			// Only the tails of split messages, which read as nothing.
			if !bytes.HasPrefix(l, []byte("' rejected")) {
				t.Errorf("line %d: %v; a failure message must be read or dropped", nums[i], o)
			}
		}
	}
	if read < 4 || dropped < 6 {
		t.Errorf("read %d, dropped %d of %d hostile lines", read, dropped, len(lines))
	}
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
	p, _ := yeastar.New(parsers.Options{Location: paris, Now: func() time.Time { return now }})
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
