package syslogd_test

import (
	"fmt"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	_ "github.com/sipguard/sipguard/parsers/yeastar"
	"github.com/sipguard/sipguard/syslogd"
)

// yeastarParser reads what the receiver writes, as a yeastar source does.
var yeastarParser = parsertest.New("yeastar", testReceived)

// hostileMessage writes an Asterisk failure message with hostile fields,
// raw newlines included, as one syslog message a PBX sends (BSD with and
// without a host name, RFC 5424), and returns the line the receiver
// makes of it: the property holds for what the yeastar parser reads.
func hostileMessage(g *parsertest.Gen) parsertest.Case {
	var m parsertest.AsteriskMessage
	for {
		m = g.Asterisk(parsertest.AsteriskOptions{RawNewlines: true})
		if !m.TooLong() {
			break
		}
	}
	var form, msg string
	switch g.Intn(3) {
	case 0:
		form, msg = "bsd", fmt.Sprintf("<%d>Mar  2 09:50:01 p550 asterisk[812]: %s", 8+g.Intn(8), m.Syslog(g))
	case 1:
		form, msg = "bsd_nohost", fmt.Sprintf("<%d>Mar  2 09:50:01 asterisk[812]: %s", 8+g.Intn(8), m.Syslog(g))
	case 2:
		form, msg = "rfc5424", fmt.Sprintf("<%d>1 2026-03-02T09:50:01.123+01:00 p550 asterisk 812 - - %s", 8+g.Intn(8), m.Syslog(g))
	}
	line, _, err := syslogd.Parse([]byte(msg), testSender, testReceived)
	if err != nil {
		// Refused by the receiver (counted there): no line to read.
		return parsertest.Case{Name: form + "_refused", Addr: m.Addr, Ignorable: true, NoEvent: true}
	}
	return parsertest.Case{Name: form + "_" + m.Name, Text: string(line), Addr: m.Addr, Ignorable: m.Success}
}

// TestHostileYeastar: whatever an Asterisk field holds, raw newlines and
// forged lines included, the line the receiver makes of one message gives
// the yeastar parser no event for another address than the packet's, and
// is counted when it gives none.
func TestHostileYeastar(t *testing.T) {
	parsertest.Generator{New: yeastarParser, Case: hostileMessage}.Test(t, 20000)
}

// FuzzHostileYeastar is TestHostileYeastar with the fuzzer making the
// generator's choices. Run it with
//
//	go test -run '^$' -fuzz '^FuzzHostileYeastar$' -fuzztime 3m ./syslogd
func FuzzHostileYeastar(f *testing.F) {
	parsertest.Generator{New: yeastarParser, Case: hostileMessage}.Fuzz(f)
}
