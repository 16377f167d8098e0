package kamailio_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// forgedLine is a sipguard line naming a.
func forgedLine(a netip.Addr) string {
	return "sipguard: v1 time=2026-11-27T01:02:32+0000 src=" + a.String() + " port=5060 proto=udp kind=auth_failed method=REGISTER code=-2 au=\"100\" from=\"100\" to=\"100\" ruri=\"\" ua=\"x\""
}

// headerField is what a client writes into a SIP header or URI that the
// snippet logs: anything but CR and LF (cut to 2,000 bytes: longer proves
// no more, and costs time).
var headerField = parsertest.Field{
	Max: 2000,
	Frames: []parsertest.Piece{
		parsertest.Frame(" src=", parsertest.Bare, " port=5060"),
		parsertest.Frame(`" ua="x" src=`, parsertest.Bare, ""),
		func(a netip.Addr) string { return "\" " + forgedLine(a) },
		parsertest.Fixed(`"`),
		parsertest.Fixed(` au="`),
	},
	Lines: []parsertest.Piece{
		forgedLine,
		func(a netip.Addr) string { return " 1(4242) NOTICE: <script>: " + forgedLine(a) },
	},
}

// snippetField is the same as the snippet prints it: cut to 64 bytes
// ({s.substr,0,64}) before it is encoded.
var snippetField = func() parsertest.Field { f := headerField; f.Max = 64; return f }()

// urlencode is {s.urlencode.param}: every byte but A-Z a-z 0-9 - . _ ~
// as %XX.
func urlencode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// field is what the snippet prints of an attacker field:
// {s.substr,0,64}{s.urlencode.param}.
func field(g *parsertest.Gen, src netip.Addr) string {
	return urlencode(g.Text(snippetField, src))
}

// hostileCase writes the line contrib/kamailio/sipguard.cfg makes Kamailio
// write for a failure from the generator's source, behind one of
// Kamailio's prefixes. One template in six is instead Kamailio's own
// error message quoting a packet it cannot parse, with CRLF line ends and
// a forged sipguard line in it: no event may come of it.
func hostileCase(g *parsertest.Gen) parsertest.Case {
	src := g.Source()
	if g.OneIn(6) {
		return parsertest.Case{Name: "packet_dump", Addr: src, Ignorable: true, NoEvent: true, Text: fmt.Sprintf(
			" 1(19147) ERROR: <core> [core/parser/msg_parser.c:749]: parse_msg(): ERROR: parse_msg: message=<REGISTER sip:x SIP/2.0\r\nVia: %s\r\n%s\r\n%s\r\n>",
			g.Text(headerField, src), parsertest.Pick(g, headerField.Lines...)(g.Victim()), g.Text(headerField, src))}
	}
	kind := parsertest.Pick(g, "auth_failed", "unknown_user", "rejected_connection", "acl_denied")
	msg := fmt.Sprintf("sipguard: v1 time=2026-11-27T%02d:%02d:%02d%s src=%s port=%d proto=%s kind=%s method=%s code=%s au=\"%s\" from=\"%s\" to=\"%s\" ruri=\"%s\" ua=\"%s\"",
		g.Intn(24), g.Intn(60), g.Intn(60), parsertest.Pick(g, "+0000", "+0100", "-0500"),
		src, g.Port(), parsertest.Pick(g, "udp", "tcp", "tls", "ws", "wss", "sctp"), kind,
		parsertest.Pick(g, "REGISTER", "INVITE"), parsertest.Pick(g, "-2", "-8", "-3", "-1", "403"),
		field(g, src), field(g, src), field(g, src), field(g, src), field(g, src))
	if g.OneIn(4) {
		msg += ` contact="` + field(g, src) + `"` // a field the administrator added
	}
	var name, text string
	switch g.Intn(4) {
	case 0:
		name, text = "stderr", fmt.Sprintf("%2d(%d) NOTICE: <script>: %s", g.Intn(40), 1000+g.Intn(90000), msg)
	case 1:
		name, text = "syslog", fmt.Sprintf("Nov 27 10:00:00 pbx %s[%d]: NOTICE: <script>: %s", parsertest.Pick(g, "kamailio", "/usr/sbin/kamailio"), 1000+g.Intn(90000), msg)
	case 2, 3:
		j, err := json.Marshal(msg + "\n")
		if err != nil {
			panic(err)
		}
		name, text = "json", fmt.Sprintf(`{ "idx": 1, "pid": %d, "level": "NOTICE", "module": "xlog", "file": "xlog.c", "line": 282, "function": "", "logprefix": "", "message": %s }`, 1000+g.Intn(90000), j)
	}
	return parsertest.Case{Name: name, Text: text, Addr: src}
}

var hostile = parsertest.Generator{New: newParser, Case: hostileCase}

// TestHostile: every event from a generated line has the packet's address,
// or the line is counted as dropped.
func TestHostile(t *testing.T) { hostile.Test(t, 20000) }

// FuzzHostile is TestHostile with the fuzzer making the generator's
// choices. Run it with
//
//	go test -run '^$' -fuzz '^FuzzHostile$' -fuzztime 3m ./parsers/kamailio
func FuzzHostile(f *testing.F) { hostile.Fuzz(f) }
