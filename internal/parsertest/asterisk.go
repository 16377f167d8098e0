package parsertest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// Asterisk's messages, written from its format strings (see
// /work/shared/reference/log-formats.md §1 and package asterisk), for the
// generators of the parsers that read them (asterisk, yeastar, and the
// syslog receiver in front of yeastar).

// astFrames are the texts Asterisk writes around an address, in every
// message it is read from.
var astFrames = []Piece{
	Frame("' failed for '", WithPort, "' - Wrong password"),
	Frame("' failed for '", WithPort, ""),
	Frame("' failed for '", V6Port, "' (callid: x) - Failed to authenticate"),
	Frame("' failed for '", WithPort, "' (callid: "),
	Frame("' (", WithPort, ") to extension '"),
	Frame(": Call (UDP:", WithPort, ") to extension '"),
	Frame("(TCP:", WithPort, ")"),
	Frame(`",RemoteAddress="`, SecurityLog, `",x="`),
	Frame(`",RemoteAddress="`, SecurityLog, `"`),
	Frame("' (from ", Bare, ")"),
	Frame(`: "Rejecting unknown SIP connection from `, WithPort, `"`),
	Frame("", Bare, " failed to authenticate as '"),
	Frame("Host ", WithPort, " failed to authenticate as "),
	Fixed("' rejected because extension not found in context 'default'."),
	Fixed(") - No matching endpoint found"),
	Fixed(" after 3 tries in 1.000 ms"),
	Fixed(`",UsingPassword="1"`),
}

// astLines are whole lines Asterisk could write, naming a.
var astLines = []Piece{
	func(a netip.Addr) string {
		return "[2026-11-26 10:00:00] NOTICE[4121] chan_sip.c: Registration from '' failed for '" + AddrText(a, 5060, WithPort) + "' - Wrong password"
	},
	func(a netip.Addr) string {
		return "[Nov 26 10:00:00] NOTICE[4188] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:1@x>' failed for '" + AddrText(a, 5060, WithPort) + "' (callid: y) - No matching endpoint found"
	},
	func(a netip.Addr) string {
		return "NOTICE[566]: chan_iax2.c:1 in f: Host " + AddrText(a, 4569, WithPort) + " failed to authenticate as x"
	},
	func(a netip.Addr) string {
		return "Nov 26 10:00:00 pbx asterisk[1]: NOTICE[2]: manager.c:1 in f: " + a.String() + " failed to authenticate as 'admin'"
	},
	func(a netip.Addr) string {
		return `[2026-11-26 10:00:00] SECURITY[1] res_security_log.c: SecurityEvent="InvalidPassword",EventTV="2026-11-26T10:00:00.000+0000",Severity="Error",Service="SIP",EventVersion="2",AccountID="1",SessionID="x",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="` + AddrText(a, 5060, SecurityLog) + `"`
	},
	func(a netip.Addr) string {
		return "' rejected because extension not found in context 'default'."
	},
}

// AsteriskMessage is one failure message of Asterisk's logger: what goes
// into its prefix and the message itself.
type AsteriskMessage struct {
	Name  string // template
	Level string // NOTICE, WARNING, SECURITY
	File  string // source file; the extension for a dialplan Log() line
	Func  string // function; "@ <context>" for a dialplan Log() line
	Body  string
	Addr  netip.Addr // the packet's source
	// Success: a SuccessfulAuth event, not a failure.
	Success bool

	dialplan bool
}

// AsteriskOptions choose the hostile material of the Asterisk generator.
type AsteriskOptions struct {
	// RawNewlines lets the fields Asterisk writes with their newlines
	// (URI-decoded extensions, raw IAX2 names, HTTP manager user names)
	// hold them, with forged lines after them.
	RawNewlines bool
	// CutAtLimit lets lines grow past Asterisk's 8 KiB limit, so that
	// Asterisk cuts them; otherwise over-long fields stay short enough
	// that the line is whole.
	CutAtLimit bool
}

// Asterisk returns a failure message of Asterisk with hostile fields.
func (g *Gen) Asterisk(o AsteriskOptions) AsteriskMessage {
	header := Field{Frames: astFrames, Lines: astLines}                           // SIP header text: no CR or LF
	decoded := Field{Frames: astFrames, Lines: astLines, Newlines: o.RawNewlines} // URI-decoded, raw elements
	pjHeader := header
	pjHeader.Max = 255 // callid_buf is PJSIP_MAX_URL_SIZE bytes
	exten := decoded
	exten.Max = 79 // pjsip and the dialplan keep AST_MAX_EXTENSION bytes; chan_sip prints its own copy whole
	iaxName := decoded
	iaxName.Max = 255 // an IAX2 information element
	src := g.Source()
	port := g.Port()
	m := AsteriskMessage{Level: "NOTICE", Addr: src}
	switch g.Intn(11) {
	case 0:
		m.Name, m.File, m.Func = "chan_sip_registration", "chan_sip.c", "handle_request_register"
		src = g.Source().Unmap() // ast_sockaddr_stringify unmaps
		m.Addr = src
		reason := Pick(g, "Wrong password", "No matching peer found", "Username/auth name mismatch", "Device does not match ACL",
			"Not a local domain", "Peer is not supposed to register", "Device not configured to use this transport type",
			"RTP initialization failed", "Unknown failure")
		m.Body = fmt.Sprintf("Registration from '%s' failed for '%s' - %s", g.Text(header, src), AddrText(src, port, g.oldForm(src)), reason)
	case 1:
		m.Name, m.File, m.Func = "chan_sip_call", "chan_sip.c", "handle_request_invite"
		src = src.Unmap()
		m.Addr = src
		m.Body = fmt.Sprintf("Call from '%s' (%s) to extension '%s' rejected because extension not found in context '%s'.",
			Pick(g, "", "100", "anonymous"), AddrText(src, port, WithPort), g.Text(decoded, src), Pick(g, "default", "from-external"))
	case 2:
		m.Name, m.File, m.Func = "pjsip_distributor", "res_pjsip/pjsip_distributor.c", "log_failed_request"
		method := Field{Frames: astFrames, Max: 31, Keep: isToken}
		form := Pick(g, WithPort, WithPort, V6Port)
		msg := Pick(g, "No matching endpoint found", "Not match Endpoint ACL", "Not match Endpoint Contact ACL", "Failed to authenticate", "Error to authenticate")
		from, callid := g.pjsipFrom(src), g.Text(pjHeader, src)
		switch g.Intn(3) {
		case 0:
			m.Body = fmt.Sprintf("Request from '%s' failed for '%s' (callid: %s) - No matching endpoint found", from, AddrText(src, port, V6Port), callid)
		default:
			m.Body = fmt.Sprintf("Request '%s' from '%s' failed for '%s' (callid: %s) - %s", Pick(g, "REGISTER", "INVITE", g.Text(method, src)), from, AddrText(src, port, form), callid, msg)
		}
		if g.OneIn(3) {
			m.Body += fmt.Sprintf(" after %d tries in %d.%03d ms", 1+g.Intn(20), g.Intn(10000), g.Intn(1000))
		}
	case 3:
		m.Name, m.File, m.Func = "pjsip_session", "res_pjsip_session.c", "new_invite"
		transport := Pick(g, "UDP", "TCP", "TLS", "WS", "WSS")
		ctx := Pick(g, "default", "from-external")
		if g.OneIn(2) {
			m.Body = fmt.Sprintf("Call from '%s' (%s:%s) to extension '%s' rejected because extension not found in context '%s'.",
				Pick(g, "anonymous", "100"), transport, AddrText(src, port, Pick(g, WithPort, V6Port)), g.Text(exten, src), ctx)
		} else {
			m.Body = fmt.Sprintf(" %s: Call (%s:%s) to extension '%s' rejected because extension not found in context '%s'.",
				Pick(g, "anonymous", "100"), transport, AddrText(src, port, WithPort), g.Text(exten, src), ctx)
		}
	case 4, 5:
		m.Name, m.Level, m.File, m.Func = "security_event", "SECURITY", "res_security_log.c", "security_event_stasis_cb"
		src = src.Unmap()
		m.Addr = src
		m.Body, m.Success = g.securityEvent(pjHeader, header, src, port)
	case 6:
		m.Name, m.File, m.Func = "manager", "manager.c", "authenticate"
		src = src.Unmap()
		m.Addr = src
		// Over HTTP (webenabled) the user name is URL-decoded and may hold
		// a raw newline; plain text cannot tell such a forged line (a
		// documented limit, docs/pbx.md): generated without newlines, the
		// JSON channel and the journal being the safe formats for it.
		user := Field{Frames: astFrames, Lines: astLines}
		m.Body = fmt.Sprintf(Pick(g, "%s tried to authenticate with nonexistent user '%s'", "%s failed to authenticate as '%s'", "%s failed to pass IP ACL as '%s'"),
			src, g.Text(user, src))
	case 7, 8:
		m.Name, m.File, m.Func = "iax2", "chan_iax2.c", "authenticate_reply"
		src = src.Unmap()
		m.Addr = src
		m.Level = Pick(g, "NOTICE", "WARNING")
		switch g.Intn(5) {
		case 0:
			m.Body = fmt.Sprintf("Host %s failed to authenticate as %s", AddrText(src, port, g.oldForm(src)), g.Text(iaxName, src))
		case 1:
			m.Body = fmt.Sprintf("No registration for peer '%s' (from %s)", g.Text(iaxName, src), src)
		case 2:
			// register_verify (chan_iax2.c): the configured peer's name,
			// the expected hash, then the client's answer, raw.
			m.Body = fmt.Sprintf("Host %s failed MD5 authentication for '%s' (%s != %s)", src, Pick(g, "1001", "trunk", "alice"), "0b9c6e2f4a7d81e3c5f0a69d2b7e4c18", g.Text(iaxName, src))
		case 3:
			// register_verify: p->name, a configured peer's name.
			m.Body = fmt.Sprintf("Host %s denied access to register peer '%s'", src, Pick(g, "1001", "trunk", "alice"))
		case 4:
			m.Body = fmt.Sprintf("Rejected connect attempt from %s, request '%s@%s' does not exist", AddrText(src, port, WithPort), g.Text(iaxName, src), g.Text(iaxName, src))
		}
	case 9, 10:
		m.Name, m.Level, m.dialplan = "dialplan", "WARNING", true
		// A raw newline in the extension can hide the Rejecting message
		// from a plain-text reader, which never reads it anyway
		// (DropPlainText: its address follows the caller's text); the
		// first line is then an unrecognised dialplan line, not counted.
		// That is a documented limit of plain text, not generated.
		dialExten := exten
		dialExten.Newlines = false
		m.File = "Ext. " + g.Text(dialExten, src)
		m.Func = "@ from-sip-external"
		form := WithPort // pjsip: CHANNEL(pjsip,remote_addr)
		if g.OneIn(2) {
			src = src.Unmap() // chan_sip: CHANNEL(recvip)
			m.Addr = src
			form = Bare
		}
		m.Body = `"Rejecting unknown SIP connection from ` + AddrText(src, port, form) + `"`
	}
	return m
}

// pjsipFrom is a From header as pjsip prints it (pjsip_uri_print,
// PJSIP_URI_IN_FROMTO_HDR, cut to 255 bytes): a URI, whose user and
// parameters pjsip escapes, so it holds no space or double quote, behind
// an optional display name in double quotes, which holds anything but CR
// and LF.
func (g *Gen) pjsipFrom(src netip.Addr) string {
	uri := Field{Frames: astFrames, Keep: func(c byte) bool { return c > ' ' && c < 0x7f && c != '"' && c != '<' && c != '>' }}
	from := fmt.Sprintf("<sip:%s@%s>", g.Text(uri, src), Pick(g, "pbx.example.com", "203.0.113.10", "[2001:db8::10]", g.Text(uri, src)))
	if g.OneIn(2) {
		from = `"` + g.Text(Field{Frames: astFrames}, src) + `" ` + from
	}
	return from[:min(len(from), 255)]
}

// oldForm is how a message that prints ast_sockaddr_stringify today
// printed a, in Asterisk 1.6 and older for chan_sip, 11 and older for
// IAX2: ast_inet_ntoa, IPv4 without a port.
func (g *Gen) oldForm(a netip.Addr) AddrForm {
	if a.Is4() && g.OneIn(4) {
		return Bare
	}
	return WithPort
}

// securityEvent writes a res_security_log.c line body (A6): the event's
// keys in Asterisk's order, AccountID and SessionID from the client before
// RemoteAddress, challenge values after it.
func (g *Gen) securityEvent(pjHeader, header Field, src netip.Addr, port uint16) (string, bool) {
	event := Pick(g, "FailedACL", "InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword", "SuccessfulAuth")
	service := Pick(g, "SIP", "PJSIP", "AMI")
	var b strings.Builder
	fmt.Fprintf(&b, `SecurityEvent="%s",EventTV="%s",Severity="%s",Service="%s",EventVersion="%d",AccountID="%s",SessionID="%s",LocalAddress="IPV4/UDP/203.0.113.10/5060",RemoteAddress="%s"`,
		event, Pick(g, "2026-11-26T10:00:00.412+0100", "1376318649-203117"), Pick(g, "Error", "Informational"), service, 1+g.Intn(2),
		g.Text(header, src), g.Text(pjHeader, src), AddrText(src, port, SecurityLog))
	switch event {
	case "SuccessfulAuth":
		b.WriteString(`,UsingPassword="1"`)
	case "ChallengeResponseFailed":
		fmt.Fprintf(&b, `,Challenge="%s",Response="%s",ExpectedResponse="%s"`, g.Text(header, src), g.Text(header, src), "5d2f8a1c")
	case "InvalidPassword":
		if g.OneIn(2) {
			fmt.Fprintf(&b, `,Challenge="5d2f8a1c",ReceivedChallenge="%s",ReceivedHash="%s"`, g.Text(header, src), g.Text(header, src))
		}
	case "FailedACL":
		if g.OneIn(2) {
			b.WriteString(`,ACLName="device_must_match_acl"`)
		}
	}
	if g.OneIn(3) {
		b.WriteString(`,Module="chan_sip",SessionTV="2026-11-26T10:00:00.000+0100"`)
	}
	return b.String(), event == "SuccessfulAuth"
}

// isToken: the bytes of a SIP method token (RFC 3261).
func isToken(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// logmsgSize is the most bytes Asterisk formats into one log line
// (LOGMSG_SIZE): longer lines are cut.
const logmsgSize = 8192

// Line writes m as one of Asterisk's log channels does: the file channel
// with its three date formats, the [plain] formatter, the syslog channel
// (as rsyslog writes it, control characters escaped), a journal copy
// without the date, or the [json] formatter.
func (m AsteriskMessage) Line(g *Gen) string {
	switch g.Intn(6) {
	case 0, 1:
		return m.FileLine(g)
	case 2: // [plain], console
		return cut(fmt.Sprintf("[%s] %s[%d]%s: %s:%d %s: %s", g.astDate(), m.Level, 1000+g.Intn(99999), g.callid(), m.File, 1+g.Intn(30000), m.Func, m.Body))
	case 3: // syslog channel, as rsyslog writes it
		return "Nov 26 10:00:00 pbx asterisk[812]: " + EscapeControl(m.Syslog(g))
	case 4: // journal copy without a date
		return cut(fmt.Sprintf("%s[%d]%s: %s:%d %s: %s", m.Level, 1000+g.Intn(99999), g.callid(), m.File, 1+g.Intn(30000), m.Func, m.Body))
	}
	return m.JSON(g)
}

// FileLine writes m as a file channel with the default formatter does.
func (m AsteriskMessage) FileLine(g *Gen) string {
	return cut(fmt.Sprintf("[%s] %s[%d]%s %s: %s", g.astDate(), m.Level, 1000+g.Intn(99999), g.callid(), m.File, m.Body))
}

// astDate is a date in one of the dateformats Asterisk is run with.
func (g *Gen) astDate() string {
	return Pick(g, "Nov 26 10:00:00", "Mar  2 09:14:07", "2026-11-26 10:00:00", "2026-11-26 10:00:00.123")
}

// callid is Asterisk's "[C-%08x]", or nothing when no call id is bound.
func (g *Gen) callid() string {
	if g.OneIn(2) {
		return ""
	}
	return fmt.Sprintf("[C-%08x]", g.Intn(1<<30))
}

// cut cuts s as Asterisk's logger does at its limit.
func cut(s string) string { return s[:min(len(s), logmsgSize-1)] }

// Syslog returns m as Asterisk's syslog channel writes it, after the
// syslog header: "LEVEL[lwp]: file:line in function: message".
func (m AsteriskMessage) Syslog(g *Gen) string {
	return cut(fmt.Sprintf("%s[%d]%s: %s:%d in %s: %s", m.Level, 1000+g.Intn(99999), g.callid(), m.File, 1+g.Intn(30000), m.Func, m.Body))
}

// JSON writes m as the [json] formatter does: a line longer than the
// limit is cut like any other (format_log_json copies the JSON text into
// the logger's buffer), which leaves no valid JSON.
func (m AsteriskMessage) JSON(g *Gen) string {
	body := m.Body
	var j struct {
		Hostname    string `json:"hostname"`
		Timestamp   string `json:"timestamp"`
		Identifiers struct {
			LWP    int    `json:"lwp"`
			Callid string `json:"callid"`
		} `json:"identifiers"`
		Logmsg struct {
			Location struct {
				Filename string `json:"filename"`
				Function string `json:"function"`
				Line     int    `json:"line"`
			} `json:"location"`
			Level   string `json:"level"`
			Message string `json:"message"`
		} `json:"logmsg"`
	}
	j.Hostname, j.Timestamp = "pbx", "2026-11-26 10:00:00.123"
	j.Identifiers.LWP = 1000 + g.Intn(99999)
	j.Logmsg.Location.Filename, j.Logmsg.Location.Function, j.Logmsg.Location.Line = m.File, m.Func, 1+g.Intn(30000)
	j.Logmsg.Level, j.Logmsg.Message = m.Level, body+"\n"
	b, err := json.Marshal(j)
	if err != nil {
		// Invalid UTF-8 is replaced, never refused: unreachable.
		panic(err)
	}
	return cut(string(b))
}

// EscapeControl writes control characters as rsyslog's default
// ($EscapeControlCharactersOnReceive) does: "#" and three octal digits.
func EscapeControl(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			fmt.Fprintf(&b, "#%03o", c)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// AsteriskCase is the Case of an Asterisk log line.
func (g *Gen) AsteriskCase(o AsteriskOptions) Case {
	for {
		m := g.Asterisk(o)
		if !o.CutAtLimit && m.TooLong() {
			continue
		}
		return Case{Name: m.Name, Text: m.Line(g), Addr: m.Addr, Ignorable: m.Success}
	}
}

// TooLong reports whether some channel would cut m at Asterisk's limit.
func (m AsteriskMessage) TooLong() bool {
	// The longest prefix (syslog, each control character escaped in four
	// bytes) is well under 200 bytes.
	n := len(m.File) + len(m.Func) + len(m.Body) + 200
	for _, s := range []string{m.File, m.Body} {
		for i := 0; i < len(s); i++ {
			if s[i] < ' ' || s[i] == 0x7f {
				n += 3
			}
		}
	}
	return n >= logmsgSize
}
