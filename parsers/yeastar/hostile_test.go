package yeastar_test

import (
	"fmt"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// hostileCase writes an Asterisk failure message with hostile fields as a
// Yeastar PBX forwards it by syslog, in each form the parser reads: as
// sipguard's syslog receiver or rsyslog write it to a file (control
// characters as spaces or #ooo), as received (BSD with and without a host
// name, RFC 5424), and a file channel line forwarded whole. Raw newlines
// in the fields Asterisk writes with them are the Asterisk parser's
// pending classes (issue 13 item 1; see parsers/asterisk).
func hostileCase(g *parsertest.Gen) parsertest.Case {
	var m parsertest.AsteriskMessage
	for {
		m = g.Asterisk(parsertest.AsteriskOptions{})
		if !m.TooLong() {
			break
		}
	}
	msg := m.Syslog(g)
	var form, text string
	switch g.Intn(6) {
	case 0:
		form, text = "receiver", "2026-03-02T09:50:01.123456+01:00 198.51.100.1 asterisk[812]: "+spaces(msg)
	case 1:
		form, text = "rsyslog", "Mar  2 09:50:01 p550 asterisk[812]: "+parsertest.EscapeControl(msg)
	case 2:
		form, text = "bsd", fmt.Sprintf("<%d>Mar  2 09:50:01 p550 asterisk[812]: %s", 8+g.Intn(8), msg)
	case 3:
		form, text = "bsd_nohost", fmt.Sprintf("<%d>Mar  2 09:50:01 asterisk[812]: %s", 8+g.Intn(8), msg)
	case 4:
		form, text = "rfc5424", fmt.Sprintf("<%d>1 2026-03-02T09:50:01.123+01:00 p550 asterisk 812 - %s %s", 8+g.Intn(8),
			parsertest.Pick(g, "-", `[meta sequenceId="1"]`), msg)
	case 5:
		form, text = "forwarded_file", "Mar  2 09:50:01 p550 asterisk[812]: "+spaces(m.FileLine(g))
	}
	return parsertest.Case{Name: form + "_" + m.Name, Text: text, Addr: m.Addr, Ignorable: m.Success}
}

// spaces replaces control characters by spaces, as package syslogd does.
func spaces(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

var hostile = parsertest.Generator{New: newParser, Case: hostileCase}

// TestHostile: every event from a generated line has the packet's address,
// or the line is counted as dropped.
func TestHostile(t *testing.T) { hostile.Test(t, 20000) }

// FuzzHostile is TestHostile with the fuzzer making the generator's
// choices. Run it with
//
//	go test -run '^$' -fuzz '^FuzzHostile$' -fuzztime 3m ./parsers/yeastar
func FuzzHostile(f *testing.F) { hostile.Fuzz(f) }
