package kamailio

import (
	"bytes"
	"encoding/json"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
)

func init() { parsers.Register("kamailio", New) }

// marker is what every sipguard line carries; a line without it is not
// looked at further, which is most of a busy log.
var marker = []byte("sipguard: ")

// head is how the message of a sipguard line starts, right after the
// prefix Kamailio writes.
var head = []byte("sipguard: v1 ")

// maxField is the longest attacker field accepted: 64 bytes cut by
// {s.substr,0,64}, each turned into at most 3 characters.
const maxField = 3 * 64

// Parser reads the failure lines that contrib/kamailio/sipguard.cfg makes
// Kamailio write. It keeps a little state between lines of one stream (a
// timestamp cache and whether the previous line ended in a carriage
// return), so every source needs its own Parser.
type Parser struct {
	stamps logtime.Cache

	// afterCR: the previous line ended with a carriage return, which
	// Kamailio's own records never do: it was raw SIP text, and so is this
	// line.
	afterCR bool
}

// New returns a Kamailio parser.
// Idle reports whether the parser holds nothing from earlier lines: the
// last line did not end in raw SIP text (parsers.Resumable).
func (p *Parser) Idle() bool { return !p.afterCR }

func New(opts parsers.Options) (parsers.Parser, error) {
	return &Parser{stamps: logtime.Cache{Clock: parsers.NewClock(opts)}}, nil
}

// Parse reads one line written by Kamailio: with -E (the plain or the JSON
// log engine) or through syslog. See the package documentation.
func (p *Parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	cont := p.afterCR
	p.afterCR = len(line) > 0 && line[len(line)-1] == '\r'
	if !bytes.Contains(line, marker) {
		return parsers.Ignored
	}
	if cont || p.afterCR {
		// A line of raw SIP text that Kamailio printed inside one of its
		// own messages (CRLF line ends), imitating a sipguard line.
		return parsers.DropInjected
	}
	msg, ok := p.message(line)
	if !ok || !bytes.HasPrefix(msg, head) {
		return parsers.DropMalformed
	}
	return p.body(msg[len(head):], ev)
}

// message returns the message of a line: what xlog printed.
func (p *Parser) message(line []byte) ([]byte, bool) {
	switch {
	case len(line) == 0:
		return nil, false
	case line[0] == '{':
		return jsonMessage(line)
	case line[0] == ' ' || isDigit(line[0]):
		if msg, ok := stderrMessage(line); ok {
			return msg, true
		}
	}
	// Syslog, whose timestamp may start with a digit too (RFC 3339).
	return p.syslogMessage(line)
}

// stderrMessage splits a line of the plain log engine written to stderr:
//
//	%2d(%d) LEVEL: <script>: message
//
// (the process rank right-aligned to two columns, then its pid).
func stderrMessage(line []byte) ([]byte, bool) {
	i := 0
	if line[0] == ' ' {
		// "%2d": a space only before a single digit.
		if len(line) < 3 || !isDigit(line[1]) || line[2] != '(' {
			return nil, false
		}
		i = 1
	} else if len(line) < 2 || !isDigit(line[1]) || line[0] == '0' {
		return nil, false
	}
	j := digitsEnd(line, i)
	if j-i > 5 || j >= len(line) || line[j] != '(' {
		return nil, false
	}
	k := digitsEnd(line, j+1)
	if k == j+1 || k-j-1 > 10 || line[j+1] == '0' || k >= len(line) || line[k] != ')' {
		return nil, false
	}
	if k+1 >= len(line) || line[k+1] != ' ' {
		return nil, false
	}
	return plainMessage(line[k+2:])
}

// levels are the names Kamailio gives its log levels.
var levels = [...]string{"ALERT", "BUG", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}

// plainMessage splits "LEVEL: <script>: message", what the plain log
// engine writes after its prefix on stderr and in syslog.
func plainMessage(b []byte) ([]byte, bool) {
	n := bytes.IndexByte(b[:min(len(b), 10)], ':')
	if n < 0 {
		return nil, false
	}
	known := false
	for _, l := range levels {
		known = known || string(b[:n]) == l
	}
	if !known || !bytes.HasPrefix(b[n:], []byte(": <script>: ")) {
		return nil, false
	}
	return b[n+len(": <script>: "):], true
}

// syslogMessage splits a line written by a syslog daemon (or journalctl)
// with a program tag whose base name starts with "kamailio":
//
//	Nov 27 10:00:00 host kamailio[1234]: NOTICE: <script>: message
//	2026-11-27T10:00:00.123+01:00 host /usr/sbin/kamailio[1234]: { "level": ..., "message": "..." }
//	Nov 27 10:00:00 host kamailio[1234]: @cee: {"time": ..., "msg": "..."}
func (p *Parser) syslogMessage(line []byte) ([]byte, bool) {
	_, n, ok := p.stamps.Clock.Parse(line)
	if !ok || n >= len(line) || line[n] != ' ' {
		return nil, false
	}
	rest := line[n+1:]
	h := bytes.IndexByte(rest, ' ')
	if h <= 0 {
		return nil, false
	}
	rest = rest[h+1:]
	t := bytes.IndexByte(rest, '[')
	if t <= 0 {
		return nil, false
	}
	tag := rest[:t]
	if s := bytes.LastIndexByte(tag, '/'); s >= 0 {
		tag = tag[s+1:]
	}
	if !bytes.HasPrefix(tag, []byte("kamailio")) || bytes.IndexByte(rest[:t], ' ') >= 0 {
		return nil, false
	}
	rest = rest[t+1:]
	e := digitsEnd(rest, 0)
	if e == 0 || e > 10 || !bytes.HasPrefix(rest[e:], []byte("]: ")) {
		return nil, false
	}
	rest = rest[e+3:]
	switch {
	case len(rest) > 0 && rest[0] == '{':
		return jsonMessage(rest)
	case bytes.HasPrefix(rest, []byte("@cee: {")):
		return jsonMessage(rest[len("@cee: "):])
	}
	return plainMessage(rest)
}

// jsonLine is a record of Kamailio's JSON log engine (--log-engine=json):
// "message" in its default form, "kamailio.message" with the "a" flag,
// "msg" in the CEE form ("U" flag).
type jsonLine struct {
	Message  *string `json:"message"`
	AMessage *string `json:"kamailio.message"`
	Msg      *string `json:"msg"`
}

func jsonMessage(b []byte) ([]byte, bool) {
	var j jsonLine
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, false
	}
	var msg *string
	for _, m := range []*string{j.Message, j.AMessage, j.Msg} {
		if m != nil {
			if msg != nil {
				return nil, false
			}
			msg = m
		}
	}
	if msg == nil {
		return nil, false
	}
	s := []byte(*msg)
	// Without the "M" flag the message keeps xlog's newline.
	if n := len(s); n > 0 && s[n-1] == '\n' {
		s = s[:n-1]
	}
	return s, true
}

// body reads what follows "sipguard: v1 ":
//
//	time=T src=IP port=N proto=P kind=K method=M code=C au="..." from="..." to="..." ruri="..." ua="..."
//
// The fixed part, up to code, must be exactly this; the attacker fields
// that follow are percent-encoded and quoted.
func (p *Parser) body(b []byte, ev *parsers.Event) parsers.Outcome {
	var stamp, src, port, proto, kind, method, code []byte
	var ok bool
	for _, f := range []struct {
		key string
		val *[]byte
	}{
		{"time=", &stamp}, {"src=", &src}, {"port=", &port}, {"proto=", &proto},
		{"kind=", &kind}, {"method=", &method}, {"code=", &code},
	} {
		if *f.val, b, ok = token(b, f.key); !ok {
			return parsers.DropMalformed
		}
	}
	var fields attackerFields
	if !fields.parse(b) {
		return parsers.DropMalformed
	}
	pt, okPort := parsePort(port)
	k, okKind := parseKind(kind)
	if !okPort || !okKind || !isProto(proto) || !isMethod(method) || !isCode(code) {
		return parsers.DropMalformed
	}
	// $si never carries a zone: an address with one is not Kamailio's.
	addr, okAddr := parsers.ParseAddr(src)
	if !okAddr || bytes.IndexByte(src, '%') >= 0 {
		return parsers.DropAddress
	}
	t, okTime := p.stamps.Parse(stamp) // the time= value, used whole
	if !okTime || t.Year() < 1970 {
		return parsers.DropTime
	}
	user := fields.au
	if len(user) == 0 {
		if string(method) == "REGISTER" {
			user = fields.to
		} else {
			user = fields.from
		}
	}
	*ev = parsers.Event{
		Time:    t,
		Addr:    addr,
		Port:    pt,
		Kind:    k,
		Service: parsers.SIP,
		User:    decode(user),
	}
	return parsers.Matched
}

// token reads "key=value" followed by one space from the start of b and
// returns the value and what follows the space.
func token(b []byte, key string) (val, rest []byte, ok bool) {
	if len(b) < len(key) || string(b[:len(key)]) != key {
		return nil, nil, false
	}
	b = b[len(key):]
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 {
		return nil, nil, false
	}
	return b[:sp], b[sp+1:], true
}

// attackerFields holds the percent-encoded values of the fields a client
// wrote, as they appear in the line.
type attackerFields struct {
	au, from, to []byte
}

// parse reads ` key="value"` pairs (the first without its space) up to the
// end of the line. Keys are lower-case words, each at most once; values
// hold only what {s.urlencode.param} writes. au, from, to, ruri and ua
// must all be there; other keys (fields an administrator added, encoded
// the same way) are allowed.
func (a *attackerFields) parse(b []byte) bool {
	const want = 5
	var seen [want]bool
	var keys [16][]byte
	nkeys := 0
	for first := true; len(b) > 0 || first; first = false {
		if !first {
			if b[0] != ' ' {
				return false
			}
			b = b[1:]
		}
		eq := bytes.Index(b, []byte(`="`))
		if eq <= 0 || eq > 16 || !isKey(b[:eq]) {
			return false
		}
		key := b[:eq]
		b = b[eq+2:]
		end := bytes.IndexByte(b, '"')
		if end < 0 || end > maxField || !isEncoded(b[:end]) {
			return false
		}
		val := b[:end]
		b = b[end+1:]
		for _, k := range keys[:nkeys] {
			if bytes.Equal(k, key) {
				return false
			}
		}
		if nkeys == len(keys) {
			return false
		}
		keys[nkeys] = key
		nkeys++
		switch string(key) {
		case "au":
			a.au, seen[0] = val, true
		case "from":
			a.from, seen[1] = val, true
		case "to":
			a.to, seen[2] = val, true
		case "ruri":
			seen[3] = true
		case "ua":
			seen[4] = true
		}
	}
	for _, s := range seen {
		if !s {
			return false
		}
	}
	return true
}

// kinds are the kinds a line may name.
var kinds = parsers.Kinds()

func parseKind(b []byte) (parsers.Kind, bool) {
	for _, k := range kinds {
		if k.String() == string(b) {
			return k, true
		}
	}
	return 0, false
}

// parsePort parses a decimal port 1-65535 without sign or leading zero.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || b[0] == '0' || digitsEnd(b, 0) != len(b) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return uint16(n), n <= 65535
}

// isProto: the transports $pr prints.
func isProto(b []byte) bool {
	switch string(b) {
	case "udp", "tcp", "tls", "sctp", "ws", "wss":
		return true
	}
	return false
}

// isMethod: an upper-case request method, as the REGISTER and INVITE this
// is logged for.
func isMethod(b []byte) bool {
	if len(b) == 0 || len(b) > 16 {
		return false
	}
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// isCode: a return code or a status, such as -2 or 404.
func isCode(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	return len(b) > 0 && len(b) <= 6 && digitsEnd(b, 0) == len(b)
}

func isKey(b []byte) bool {
	for _, c := range b {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return len(b) > 0
}

// isEncoded reports whether b is what {s.urlencode.param} writes:
// A-Z a-z 0-9 - . _ ~ and %xx.
func isEncoded(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
		case c == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

// decode undoes the percent-encoding of a field already checked by
// isEncoded. The result is what the client wrote: display it escaped.
func decode(b []byte) string {
	if bytes.IndexByte(b, '%') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			out = append(out, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digitsEnd returns the index of the first non-digit in b from i.
func digitsEnd(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}
