package asterisk_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
)

// What the hostile generator found in the classes of issue 13 (item 1:
// forged lines and fake endings after raw newlines; item 4: fields that
// push the address past Asterisk's 8 KiB limit), kept as regression tests,
// then the generator with those classes on.

var pendingSource = netip.MustParseAddr("198.51.100.9")

// forged is a complete chan_sip line naming the victim.
const forged = "[2026-11-26 10:00:00] NOTICE[4121] chan_sip.c: Registration from '' failed for '203.0.113.66:5060' - Wrong password"

// Cases the generator first wrote that Asterisk cannot log (checked in
// channels/chan_iax2.c register_verify): the peer names of "denied access"
// and "failed MD5" are configured ones (p->name), and the first hash of the
// MD5 message is the expected one, computed; only the last, the client's
// answer, is raw. AMI over HTTP (webenabled) URL-decodes the user name, so
// "failed to authenticate as" can carry a raw newline there: plain text
// cannot tell that forged line (docs/pbx.md), the JSON channel and the
// journal can. A dialplan extension holding a CR before its ": " leaves
// the Rejecting message unrecognised in plain text, where that message is
// never read anyway (DropPlainText).

// pendingCases each break the property: an event for another address
// than the packet's, or a first line neither read nor counted.
var pendingItem1 = []parsertest.Case{
	// IAX2 names are raw bytes: a newline, then a forged line.
	{Name: "iax2 user", Addr: pendingSource,
		Text: "[2026-11-26 10:00:00] NOTICE[1702] chan_iax2.c: Host 198.51.100.9:4569 failed to authenticate as x\n" + forged},
	// The MD5 message has two raw fields (the peer and the received
	// hash): what follows a newline in the first can be longer than one
	// field, and so outlast a window sized for one.
	// A dialplan extension (URI-decoded) with a fake ending: the first
	// line ends as a whole Log() line naming the victim, CR and all.
	{Name: "dialplan fake ending", Addr: pendingSource,
		Text: "[2026-11-26 10:00:00] WARNING[3291] Ext. x: \"Rejecting unknown SIP connection from 203.0.113.66:5060\"\r\n: \"Rejecting unknown SIP connection from 198.51.100.9:5060\""},
	// The same extension, its newline before the end: the real message
	// is neither read nor counted.
	// chan_sip and pjsip extensions with a fake ending, then a forged line.
	{Name: "chan_sip fake ending", Addr: pendingSource,
		Text: "[2026-11-26 10:00:00] NOTICE[3480] chan_sip.c: Call from '' (198.51.100.9:5060) to extension '1' rejected because extension not found in context 'x'.\n" + forged + "\n' rejected because extension not found in context 'default'."},
	{Name: "pjsip fake ending", Addr: pendingSource,
		Text: "[2026-11-26 10:00:00] NOTICE[3985] res_pjsip_session.c:  anonymous: Call (UDP:198.51.100.9:5060) to extension '1' rejected because extension not found in context 'x'.\r\n" + forged + "\r\n' rejected because extension not found in context 'default'."},
	// AMI over HTTP takes the user name from URL-decoded parameters (not
	// in issue 13's list; inferred from manager.c, not run).
}

var pendingItem4 = []parsertest.Case{
	// An AccountID holding a RemoteAddress frame, padded until Asterisk
	// cuts the real RemoteAddress off the line: one frame is left, the
	// victim's.
	{Name: "security cut", Addr: pendingSource,
		Text: cut(`[2026-11-26 10:00:00] SECURITY[1] res_security_log.c: SecurityEvent="InvalidAccountID",EventTV="2026-11-26T10:00:00.412+0100",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="",RemoteAddress="IPV4/UDP/203.0.113.66/5060",x="` +
			strings.Repeat("A", 8200) + `",SessionID="y",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="IPV4/UDP/198.51.100.9/5060"`)},
}

// cut cuts a line as Asterisk's logger does.
func cut(s string) string { return s[:min(len(s), 8191)] }

func TestPendingItem1(t *testing.T) {
	// Then the generator with raw newlines in the fields Asterisk writes
	// with them (URI-decoded extensions, raw IAX2 names, HTTP manager users).
	checkPending(t, pendingItem1, parsertest.AsteriskOptions{RawNewlines: true}, 20000)
}

func TestPendingItem4(t *testing.T) {
	// Then the generator with lines past Asterisk's limit (rarer: more cases).
	checkPending(t, pendingItem4, parsertest.AsteriskOptions{CutAtLimit: true}, 200000)
}

func checkPending(t *testing.T, cases []parsertest.Case, o parsertest.AsteriskOptions, n int) {
	gr := parsertest.Generator{New: newParser, Case: func(g *parsertest.Gen) parsertest.Case { return g.AsteriskCase(o) }}
	for _, c := range cases {
		if _, v := gr.Violation(t, c); v != "" {
			t.Errorf("%s: %s", c.Name, v)
		}
	}
	gr.Test(t, n)
}
