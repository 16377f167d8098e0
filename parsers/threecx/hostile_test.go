package threecx_test

import (
	"fmt"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// hostileCase writes 3CX's [CM102001] line (3CX blog "analyzing-
// registration"), behind one of a few prefixes since 3CX's own was never
// published. Its addresses are the client's Request-URI and Contact, so
// no event may ever come of it, and the line must be counted. The success
// line [CM504001] must make no event either.
func hostileCase(g *parsertest.Gen) parsertest.Case {
	src := g.Source()
	prefix := parsertest.Pick(g, "", "[CM102001]: ", "26.11.2026 10:00:00.123|Warn|[CM102001]: ", "11/26/2026 10:00:00 AM - [CM102001] ")
	if g.OneIn(5) {
		return parsertest.Case{Name: "success", Addr: src, NoEvent: true, Ignorable: true, Text: fmt.Sprintf(
			"[CM504001] Ext.%s: new contact is registered. Contact(s): [sip:%s@%s;rinstance=aa14540e328cb432]",
			g.Text(sipText, src), g.Text(sipText, src), parsertest.AddrText(g.Victim(), 5060, parsertest.WithPort))}
	}
	contact := parsertest.AddrText(parsertest.Pick(g, src, g.Victim()), g.Port(), parsertest.WithPort)
	return parsertest.Case{Name: "cm102001", Addr: src, NoEvent: true, Text: fmt.Sprintf(
		"%sAuthentication failed for SipReq: REGISTER %s tid=%s cseq=REGISTER contact=%s@%s / 2 from(wire); Reason: Credentials don't match, check that authorization-ID and password match the ones in extension settings",
		prefix, g.Text(sipText, src), g.Text(sipText, src), g.Text(sipText, src), contact)}
}

// sipText is what a client writes into the Request-URI, a branch or a
// Contact that reSIProcate's encodeBrief prints.
var sipText = parsertest.Field{
	Max: 1000, // long enough: the line is read whole or not at all
	Frames: []parsertest.Piece{
		parsertest.Frame(" contact=100@", parsertest.WithPort, " / 2 from(wire)"),
		parsertest.Frame("; Reason: Credentials don't match from ", parsertest.Bare, ""),
		parsertest.Fixed("[CM102001]: Authentication failed for SipReq: "),
	},
}

var hostile = parsertest.Generator{New: newParser, Case: hostileCase}

// TestHostile: no generated line makes an event, and every failure line
// is counted as dropped.
func TestHostile(t *testing.T) { hostile.Test(t, 20000) }

// FuzzHostile is TestHostile with the fuzzer making the generator's
// choices. Run it with
//
//	go test -run '^$' -fuzz '^FuzzHostile$' -fuzztime 3m ./parsers/threecx
func FuzzHostile(f *testing.F) { hostile.Fuzz(f) }
