package main

import (
	"fmt"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

// toHeader is the To header's user and host, which FreeSWITCH prints in
// brackets before the address: anything on one line.
var toHeader = parsertest.Field{Max: 200, Frames: []parsertest.Piece{
	parsertest.Frame("] from ip ", parsertest.Bare, ""),
	parsertest.Frame("] from ", parsertest.Bare, ""),
	parsertest.Frame("@x] from ip ", parsertest.Bare, ""),
	parsertest.Fixed("SIP auth failure (REGISTER) on sofia profile 'internal' for ["),
	parsertest.Fixed("Can't find user ["),
	parsertest.Fixed("@"),
}}

// freeswitchCase writes sofia_reg.c's two failure lines (see
// contrib/custom/freeswitch.toml), in each layout the patterns read, with
// the To header's user and host hostile.
func freeswitchCase(g *parsertest.Gen) parsertest.Case {
	src := g.Source()
	user, host := g.Text(toHeader, src), g.Text(toHeader, src)
	var msg, name string
	if g.OneIn(2) {
		name = "auth_failure"
		msg = fmt.Sprintf("SIP auth failure (%s) on sofia profile '%s' for [%s@%s] from ip %s",
			parsertest.Pick(g, "REGISTER", "INVITE"), parsertest.Pick(g, "internal", "external"), user, host, src)
	} else {
		name = "unknown_user"
		msg = fmt.Sprintf("Can't find user [%s@%s] from %s", user, host, src)
	}
	var text string
	switch g.Intn(4) {
	case 0:
		text = "2026-10-09 10:24:37.221843 38.50% [WARNING] sofia_reg.c:1792 " + msg
	case 1:
		text = "2013-12-31 17:39:54.767815 [WARNING] sofia_reg.c:1478 " + msg
	case 2:
		text = "2016-09-25T18:57:58.150982 pbx freeswitch[122921]: 2016-09-25 18:57:58.150982 [WARNING] sofia_reg.c:1720 " + msg
	case 3:
		text = "08-03 08:10:21.026299 [WARN] [SOFIA] [sofia_reg.c:2248] " + msg
	}
	return parsertest.Case{Name: name, Text: text, Addr: src}
}

// TestContribFreeSWITCHHostile: whatever the To header holds, the example
// patterns give no event for another address than the packet's. (A line
// they do not match is ignored: a custom pattern cannot count it.)
func TestContribFreeSWITCHHostile(t *testing.T) {
	p := freeswitchParser(t) // stateless: one for every case
	parsertest.Generator{New: func(testing.TB) parsers.Parser { return p }, Case: freeswitchCase, MayIgnore: true}.Test(t, 20000)
}
