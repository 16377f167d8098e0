package custom_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/custom"
)

// hostileSpec has patterns with the attacker's text before the address,
// after it, on both sides, and an address written with its port.
var hostileSpec = custom.Spec{Name: "hostile", Patterns: []custom.PatternSpec{
	{Kind: "auth_failed", Regex: `^(?P<time>\S+ \S+) user (?P<user>.*) failed from (?P<ip>[0-9a-fA-F:.]+)(?: port (?P<port>\d+))?$`,
		Examples: []string{"2026-11-26 10:00:00 user 1 failed from 198.51.100.7 port 5060"}},
	{Kind: "admin_auth_failed", Service: "ami", Regex: `^(?P<time>\S+ \S+) (?P<ip>[0-9a-fA-F:.]+) failed to authenticate as '(?P<user>.*)'$`,
		Examples: []string{"2026-11-26 10:00:00 198.51.100.7 failed to authenticate as 'admin'"}},
	{Kind: "unknown_user", Regex: `^(?P<time>\S+ \S+) user (?P<user>.*) unknown from (?P<ip>[0-9a-fA-F:.]+) agent (.*)$`,
		Examples: []string{"2026-11-26 10:00:00 user 1 unknown from 198.51.100.7 agent friendly"}},
	{Kind: "acl_denied", Regex: `^(?P<time>\S+ \S+) sip denied src=(?P<ip>[0-9a-fA-F:.\[\]]+) user=(?P<user>.*)$`,
		Examples: []string{"2026-11-26 10:00:00 sip denied src=[2001:db8::1]:5060 user=1"}},
}}

// attackerText is a user name or user agent: anything on one line.
var attackerText = parsertest.Field{Max: 300, Frames: []parsertest.Piece{
	parsertest.Frame(" failed from ", parsertest.Bare, ""),
	parsertest.Frame(" failed from ", parsertest.Bare, " port 5060"),
	parsertest.Frame(" unknown from ", parsertest.Bare, " agent "),
	parsertest.Frame(" ", parsertest.Bare, " failed to authenticate as '"),
	parsertest.Frame(" src=", parsertest.WithPort, " user="),
	parsertest.Fixed("'"),
}}

// hostileCase writes a line in one of hostileSpec's formats.
func hostileCase(g *parsertest.Gen) parsertest.Case {
	src := g.Source()
	date := "2026-11-26 10:00:00"
	switch g.Intn(4) {
	case 0:
		port := ""
		if g.OneIn(2) {
			port = fmt.Sprintf(" port %d", g.Port())
		}
		return parsertest.Case{Name: "before", Addr: src, Text: fmt.Sprintf("%s user %s failed from %s%s", date, g.Text(attackerText, src), src, port)}
	case 1:
		return parsertest.Case{Name: "after", Addr: src, Text: fmt.Sprintf("%s %s failed to authenticate as '%s'", date, src, g.Text(attackerText, src))}
	case 2:
		return parsertest.Case{Name: "both_sides", Addr: src, Text: fmt.Sprintf("%s user %s unknown from %s agent %s", date, g.Text(attackerText, src), src, g.Text(attackerText, src))}
	}
	return parsertest.Case{Name: "with_port", Addr: src, Text: fmt.Sprintf("%s sip denied src=%s user=%s", date, parsertest.AddrText(src, g.Port(), parsertest.WithPort), g.Text(attackerText, src))}
}

var (
	compileOnce sync.Once
	compiled    *custom.Compiled
	compileErr  error
)

// hostile runs the generator. A custom pattern cannot tell a failure line
// it does not match from any other line, so such lines may be ignored.
var hostile = parsertest.Generator{
	New: func(t testing.TB) parsers.Parser {
		compileOnce.Do(func() { compiled, compileErr = custom.Compile(hostileSpec) })
		if compileErr != nil {
			t.Fatal(compileErr)
		}
		p, err := compiled.New(parsers.Options{Location: time.UTC, Now: func() time.Time { return parsertest.Now }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	},
	Case:      hostileCase,
	MayIgnore: true,
}

// TestHostile: every event from a generated line has the packet's address.
func TestHostile(t *testing.T) { hostile.Test(t, 20000) }

// FuzzHostile is TestHostile with the fuzzer making the generator's
// choices. Run it with
//
//	go test -run '^$' -fuzz '^FuzzHostile$' -fuzztime 3m ./parsers/custom
func FuzzHostile(f *testing.F) { hostile.Fuzz(f) }
