package asterisk_test

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

// fail2banSamples is fail2ban's own Asterisk test file, installed with
// Debian's fail2ban package: lines collected from real systems over a
// decade, each with the address fail2ban expects ("failJSON"). The parser
// was not written against it.
const fail2banSamples = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs/asterisk"

// unsupported lists the expectations we deliberately do not meet, and why.
var unsupported = map[string]string{
	"hacking attempt detected": "no such message in any Asterisk source we could find; its origin and format are unverified",
}

func TestFail2banSamples(t *testing.T) {
	path := fail2banSamples
	if p := os.Getenv("SIPGUARD_FAIL2BAN_ASTERISK"); p != "" {
		path = p
	}
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("fail2ban's Asterisk samples are not installed (apt-get install fail2ban; .ci/run does): %v", err)
	}
	defer f.Close()
	p := newParser(t)
	var expect *struct {
		Match bool   `json:"match"`
		Host  string `json:"host"`
	}
	checked := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# failJSON:"); ok {
			expect = nil
			if err := json.Unmarshal([]byte(rest), &expect); err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			continue
		}
		if line == "" || line[0] == '#' || expect == nil {
			continue
		}
		var ev parsers.Event
		o := p.Parse([]byte(line), &ev)
		skip := ""
		for text, why := range unsupported {
			if strings.Contains(line, text) {
				skip = why
			}
		}
		switch {
		case skip != "":
			t.Logf("line %d not read: %s", n, skip)
		case expect.Match && (o != parsers.Matched || ev.Addr.String() != expect.Host):
			t.Errorf("line %d: %v %v; want %s\n%s", n, o, ev.Addr, expect.Host, line)
		case !expect.Match && o == parsers.Matched:
			t.Errorf("line %d: matched %v; want no match\n%s", n, ev.Addr, line)
		default:
			checked++
		}
		expect = nil
	}
	if checked < 40 {
		t.Errorf("only %d expectations checked", checked)
	}
	t.Logf("%d of fail2ban's expectations met", checked)
}
