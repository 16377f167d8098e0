package syslogd

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/sipguard/sipguard/logtime"
)

// MaxHeader bounds the header a Line has before its MSG: a timestamp (at
// most 35 bytes), the host (255), the tag (48), "[" PROCID (128) "]" and
// separators. A Line is never longer than Options.MaxMessage + MaxHeader.
const MaxHeader = 512

// Field limits (RFC 5424 section 6; RFC 3164's 32-byte TAG is exceeded in
// practice, so the APP-NAME limit is used for both).
const (
	maxHost   = 255
	maxTag    = 48
	maxProcID = 128
	maxMsgID  = 32
	maxSDName = 32
)

// stampLayout is how a timestamp is written when the message has none: RFC
// 3339 with microseconds and the zone, which logtime.Clock reads exactly.
const stampLayout = "2006-01-02T15:04:05.000000Z07:00"

// Why a message is malformed; for debug logs, never returned by the API.
var (
	errEmpty     = errors.New("empty message")
	errPRI       = errors.New("bad PRI")
	errStamp     = errors.New("bad timestamp")
	errNoStamp   = errors.New("neither PRI nor timestamp")
	errHost      = errors.New("bad HOSTNAME")
	errTag       = errors.New("no TAG or APP-NAME")
	errVersion   = errors.New("unsupported RFC 5424 VERSION")
	errProcID    = errors.New("bad PROCID")
	errMsgID     = errors.New("bad MSGID")
	errSD        = errors.New("bad STRUCTURED-DATA")
	errAfterSD   = errors.New("no SP between STRUCTURED-DATA and MSG")
	errTruncated = errors.New("frame cut short")
)

var bom = []byte("\xef\xbb\xbf")

// header is what a message says besides its MSG.
type header struct {
	pri   int    // -1: none
	stamp []byte // RFC 3339 timestamp as received; nil: see bsd
	host  []byte // nil: the sender's address
	tag   []byte
	pid   []byte // nil: none
	msg   []byte
	bsd   [32]byte // a canonical RFC 3164 timestamp (Stamp.AppendBSD), bsd[:bsdN]
	bsdN  int      // 0: no RFC 3164 timestamp
}

// parse reads one syslog message, without its framing or trailing newline,
// received from sender at received, and returns it as the line a syslog
// daemon would write to a file (see Message.Line) and its PRI (-1: none).
// The Line is newly allocated.
func parse(m []byte, sender netip.Addr, received time.Time) ([]byte, int, error) {
	var h header
	if err := h.parse(m); err != nil {
		return nil, -1, err
	}
	return h.line(sender, received), h.pri, nil
}

func (h *header) parse(m []byte) error {
	if len(m) == 0 {
		return errEmpty
	}
	h.pri = -1
	if m[0] == '<' {
		pri, n, ok := parsePRI(m)
		if !ok {
			return errPRI
		}
		h.pri, m = pri, m[n:]
		if len(m) >= 2 && m[1] == ' ' && isDigit(m[0]) {
			if m[0] != '1' {
				return errVersion
			}
			return h.parse5424(m[2:])
		}
	}
	return h.parse3164(m)
}

// parsePRI reads "<PRI>": 1 to 3 digits, at most 191.
func parsePRI(m []byte) (int, int, bool) {
	v, i := 0, 1
	for ; i < len(m) && i <= 4 && isDigit(m[i]); i++ {
		v = v*10 + int(m[i]-'0')
	}
	if i == 1 || i > 4 || i >= len(m) || m[i] != '>' || v > 191 {
		return 0, 0, false
	}
	return v, i + 1, true
}

// parse3164 reads "[TIMESTAMP SP][HOST SP]TAG[\[PID\]]:[SP]MSG", the
// RFC 3164 form and its common variants.
func (h *header) parse3164(m []byte) error {
	switch n, looks := h.stamp3164(m); {
	case n > 0:
		if n >= len(m) || m[n] != ' ' {
			return errStamp
		}
		m = m[n+1:]
	case looks:
		return errStamp
	case h.pri < 0:
		return errNoStamp
	}
	// HOST, unless the first word is already the tag ("TAG:" or
	// "TAG[PID]:" followed by a space or the end).
	if tag, pid, n, ok := tagToken(m); ok && (n == len(m) || m[n] == ' ') {
		h.tag, h.pid, h.msg = tag, pid, skipSpace(m[n:])
		return nil
	}
	sp := bytes.IndexByte(m, ' ')
	if sp <= 0 || sp > maxHost || !printable(m[:sp], "") {
		return errHost
	}
	h.host, m = m[:sp], m[sp+1:]
	tag, pid, n, ok := tagToken(m)
	if !ok {
		return errTag
	}
	h.tag, h.pid, h.msg = tag, pid, skipSpace(m[n:])
	return nil
}

// stamp3164 reads an RFC 3164 ("Mmm dd hh:mm:ss") or RFC 3339 timestamp at
// the start of m and sets h.stamp, or h.bsd to the RFC 3164 one in
// canonical form ("Mmm dd" with the day space-padded, as syslog daemons
// write it; the fraction kept). looks reports text that starts like a
// timestamp but is not a valid one.
func (h *header) stamp3164(m []byte) (n int, looks bool) {
	s, n := logtime.ReadSyslog(m)
	switch {
	case n == 0:
		return 0, logtime.Looks(m)
	case s.BSD():
		h.bsdN = len(s.AppendBSD(h.bsd[:0]))
	default:
		h.stamp = m[:n]
	}
	return n, false
}

// tagToken reads "TAG:" or "TAG[PID]:" at the start of m and returns the
// tag, the pid (nil when absent) and the bytes used.
func tagToken(m []byte) (tag, pid []byte, n int, ok bool) {
	i := 0
	for i < len(m) && i <= maxTag && isTagChar(m[i]) {
		i++
	}
	if i == 0 || i > maxTag || i >= len(m) {
		return nil, nil, 0, false
	}
	tag = m[:i]
	if m[i] == '[' {
		j := i + 1
		for j < len(m) && j-i-1 <= maxProcID && isProcIDChar(m[j]) {
			j++
		}
		if j == i+1 || j-i-1 > maxProcID || j >= len(m) || m[j] != ']' {
			return nil, nil, 0, false
		}
		pid = m[i+1 : j]
		i = j + 1
	}
	if i >= len(m) || m[i] != ':' {
		return nil, nil, 0, false
	}
	return tag, pid, i + 1, true
}

// parse5424 reads what follows "<PRI>1 ": "TIMESTAMP SP HOSTNAME SP
// APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]".
func (h *header) parse5424(m []byte) error {
	if len(m) >= 2 && m[0] == '-' && m[1] == ' ' {
		m = m[2:]
	} else {
		s, n := logtime.ReadSyslog(m)
		if n == 0 || s.BSD() || n >= len(m) || m[n] != ' ' {
			return errStamp
		}
		h.stamp, m = m[:n], m[n+1:]
	}
	var v []byte
	var ok bool
	if v, m, ok = field(m, maxHost, ""); !ok {
		return errHost
	}
	if !nilValue(v) {
		// "name:" would be read as the tag where the Line is read
		// again; no host name ends so.
		if v[len(v)-1] == ':' {
			return errHost
		}
		h.host = v
	}
	// The tag is never invented: without an APP-NAME the MSG would be
	// read as a whole line, its text where the header is expected.
	if v, m, ok = field(m, maxTag, ":[]"); !ok || nilValue(v) {
		return errTag
	}
	h.tag = v
	if v, m, ok = field(m, maxProcID, "[]"); !ok {
		return errProcID
	}
	if !nilValue(v) {
		h.pid = v
	}
	if _, m, ok = field(m, maxMsgID, ""); !ok {
		return errMsgID
	}
	n := structuredData(m)
	if n == 0 {
		return errSD
	}
	m = m[n:]
	switch {
	case len(m) == 0:
	case m[0] == ' ':
		h.msg = bytes.TrimPrefix(m[1:], bom)
	default:
		return errAfterSD
	}
	return nil
}

// field reads a header field of 1 to max printable US-ASCII characters
// (none of those in not) and the SP after it.
func field(m []byte, max int, not string) (v, rest []byte, ok bool) {
	sp := bytes.IndexByte(m, ' ')
	if sp <= 0 || sp > max || !printable(m[:sp], not) {
		return nil, nil, false
	}
	return m[:sp], m[sp+1:], true
}

func nilValue(v []byte) bool { return len(v) == 1 && v[0] == '-' }

// structuredData returns the length of the STRUCTURED-DATA at the start of
// m ("-" or one or more SD-ELEMENTs), or 0 when it is malformed.
//
//	SD-ELEMENT = "[" SD-ID *(SP PARAM-NAME "=" DQUOTE PARAM-VALUE DQUOTE) "]"
//
// In PARAM-VALUE, '"', '\' and ']' are escaped with '\'; a '\' before any
// other character is a literal backslash.
func structuredData(m []byte) int {
	if len(m) > 0 && m[0] == '-' {
		return 1
	}
	i := 0
	for i < len(m) && m[i] == '[' {
		i++
		n := sdName(m[i:])
		if n == 0 {
			return 0
		}
		i += n
		for {
			if i >= len(m) {
				return 0
			}
			if m[i] == ']' {
				i++
				break
			}
			if m[i] != ' ' {
				return 0
			}
			i++
			n := sdName(m[i:])
			if n == 0 {
				return 0
			}
			i += n
			if i+1 >= len(m) || m[i] != '=' || m[i+1] != '"' {
				return 0
			}
			i += 2
			for {
				if i >= len(m) {
					return 0
				}
				c := m[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(m) && (m[i+1] == '"' || m[i+1] == '\\' || m[i+1] == ']') {
					i++
				}
				i++
			}
		}
	}
	return i
}

// sdName returns the length of the SD-NAME at the start of m: 1 to 32
// printable US-ASCII characters except '=', SP, ']' and '"'.
func sdName(m []byte) int {
	i := 0
	for i < len(m) && i <= maxSDName && m[i] > ' ' && m[i] < 0x7f && m[i] != '=' && m[i] != ']' && m[i] != '"' {
		i++
	}
	if i > maxSDName {
		return 0
	}
	return i
}

// line writes the message as a syslog daemon writes it to a file:
// "TIMESTAMP HOST TAG[PID]: MSG".
func (h *header) line(sender netip.Addr, received time.Time) []byte {
	var host [64]byte // an address: at most 45 bytes
	hostText := h.host
	if hostText == nil {
		hostText = sender.WithZone("").AppendTo(host[:0])
	}
	n := len(stampLayout) + 6 + 1 + len(hostText) + 1 + len(h.tag) + len(h.pid) + 2 + 2 + len(h.msg)
	out := make([]byte, 0, n)
	switch {
	case h.bsdN > 0:
		out = append(out, h.bsd[:h.bsdN]...)
	case h.stamp != nil:
		out = append(out, h.stamp...)
		for i := 10; i < len(out); i++ { // RFC 3339 allows 't' and 'z'
			if out[i] == 't' || out[i] == 'z' {
				out[i] -= 'a' - 'A'
			}
		}
	default:
		out = received.AppendFormat(out, stampLayout)
	}
	out = append(out, ' ')
	out = append(out, hostText...)
	out = append(out, ' ')
	out = append(out, h.tag...)
	if h.pid != nil {
		out = append(out, '[')
		out = append(out, h.pid...)
		out = append(out, ']')
	}
	out = append(out, ':', ' ')
	start := len(out)
	out = append(out, h.msg...)
	// Control characters: a NUL, CR or LF in a message must never split
	// it into lines, the second of which a sender's text could forge.
	// Each is replaced by one space, keeping the length (TAB is kept).
	for i := start; i < len(out); i++ {
		if c := out[i]; c < ' ' && c != '\t' || c == 0x7f {
			out[i] = ' '
		}
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// printable reports whether b holds only printable US-ASCII (33-126) and
// none of the characters in not.
func printable(b []byte, not string) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
		for i := 0; i < len(not); i++ {
			if c == not[i] {
				return false
			}
		}
	}
	return true
}

func isTagChar(c byte) bool { return c > ' ' && c < 0x7f && c != ':' && c != '[' && c != ']' }

func isProcIDChar(c byte) bool { return c > ' ' && c < 0x7f && c != '[' && c != ']' }

// skipSpace removes the one space that separates "TAG:" from MSG.
func skipSpace(m []byte) []byte {
	if len(m) > 0 && m[0] == ' ' {
		return m[1:]
	}
	return m
}
