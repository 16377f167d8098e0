package sipwire

import (
	"bytes"
)

// Reasons a payload, or a part of it, is dropped: the keys of
// Stats.Dropped.
const (
	// ReasonNotSIP: the payload (or what follows a response in a TCP
	// segment) does not start a SIP message, such as the middle of a
	// message split across segments.
	ReasonNotSIP = "not_sip"
	// ReasonNotResponse: a SIP request (a capture holds both directions).
	ReasonNotResponse = "not_response"
	// ReasonTruncated: the header section does not end within the payload
	// (cut by the capture's snaplen, or split across TCP segments).
	ReasonTruncated = "truncated"
	// ReasonMalformed: the status line, the top Via, Call-ID or CSeq is
	// missing, repeated or unreadable.
	ReasonMalformed = "malformed"
	// ReasonTooLong: a header line, the header count or the number of
	// responses in one segment is over its bound.
	ReasonTooLong = "too_long"
	// ReasonDiverted: the packet does not go where the top Via says the
	// request came from (the address rule): a maddr, an ICMP fallback, a
	// proxy in front, a forged Via. Never an event.
	ReasonDiverted = "diverted"
	// ReasonRetransmission: the same response again (same transaction,
	// same status), sent again by the PBX.
	ReasonRetransmission = "retransmission"
	// ReasonBadAddress: the packet's destination cannot be banned
	// (unspecified, multicast).
	ReasonBadAddress = "bad_address"
)

// Reasons lists every drop reason, in the order status output shows them.
func Reasons() []string {
	return []string{ReasonNotSIP, ReasonNotResponse, ReasonTruncated, ReasonMalformed, ReasonTooLong,
		ReasonDiverted, ReasonRetransmission, ReasonBadAddress}
}

// Bounds of what the reader accepts: a PBX's responses are a few hundred
// bytes (Kamailio's 380-500), so these leave room for any real one while
// keeping the work per packet bounded.
const (
	maxLine    = 8 << 10 // bytes in one header line, folded lines included
	maxHeaders = 256     // header lines in one response
	maxUser    = 128     // bytes of the To user kept (attacker text)
)

// Response is what the sensor needs of one SIP response. Its byte slices
// point into the payload it was read from.
type Response struct {
	Status int
	Via    Via // the top Via: where the request came from
	CallID []byte
	CSeq   uint32
	Method []byte // of CSeq: REGISTER, INVITE, ...
	// Stale: a WWW-Authenticate or Proxy-Authenticate says stale=true (the
	// client's nonce had expired; its password may be right).
	Stale bool
	// ToUser is the user part of the To URI (attacker text, at most
	// maxUser bytes), empty when there is none.
	ToUser []byte
	// Len is the bytes the response takes in the payload: the header
	// section and as much of the body as the payload holds.
	Len int
}

// Via is the top Via header's first value.
type Via struct {
	Transport []byte // UDP, TCP, TLS, WS, ...
	Host      []byte // sent-by host, without the brackets of an IPv6 address
	Port      uint16 // sent-by port, 0 when absent
	Branch    []byte
	Received  []byte // nil when absent
	RPort     uint16 // the rport value, 0 when absent or empty
	HasRPort  bool
	MAddr     []byte // nil when absent
}

// Read reads the SIP response at the start of b. stream says b comes from
// a stream transport (TCP), where Content-Length ends the message and
// another may follow; over UDP the message is the whole datagram. It
// returns the response, or the reason it cannot be read. It never panics
// and never reads past b.
func Read(b []byte, stream bool) (Response, string) {
	var r Response
	const version = "SIP/2.0 "
	first := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		first = b[:i]
	}
	if !bytes.HasPrefix(b, []byte(version)) {
		if bytes.HasSuffix(bytes.TrimRight(first, "\r"), []byte(" SIP/2.0")) {
			return r, ReasonNotResponse
		}
		return r, ReasonNotSIP
	}
	if len(first) > maxLine {
		return r, ReasonTooLong
	}
	if len(first) == len(b) {
		return r, ReasonTruncated
	}
	// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
	code := first[len(version):]
	if len(code) < 3 || !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || code[0] < '1' || code[0] > '6' ||
		len(code) > 3 && code[3] != ' ' && code[3] != '\r' {
		return r, ReasonMalformed
	}
	r.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')

	var haveVia, haveCallID, haveCSeq, haveTo, haveLength bool
	length := -1
	pos := len(first) + 1
	for lines := 0; ; {
		// One logical header: a line and its folded continuations.
		start := pos
		for {
			i := bytes.IndexByte(b[pos:], '\n')
			if i < 0 {
				if len(b)-start > maxLine {
					return r, ReasonTooLong
				}
				return r, ReasonTruncated
			}
			pos += i + 1
			if lines++; lines > maxHeaders {
				return r, ReasonTooLong
			}
			if pos == len(b) || b[pos] != ' ' && b[pos] != '\t' || isBlank(b[start:pos]) {
				break
			}
		}
		if pos-start > maxLine {
			return r, ReasonTooLong
		}
		line := trimLWS(b[start:pos])
		if len(line) == 0 {
			break // the empty line ending the header section
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r, ReasonMalformed
		}
		name, value := trimLWS(line[:colon]), trimLWS(line[colon+1:])
		var ok bool
		switch {
		case headerIs(name, "via", "v"):
			if haveVia {
				continue // only the top Via matters
			}
			haveVia = true
			r.Via, ok = readVia(value)
		case headerIs(name, "call-id", "i"):
			ok = !haveCallID && len(value) > 0
			haveCallID, r.CallID = true, value
		case headerIs(name, "cseq", ""):
			ok = !haveCSeq
			haveCSeq = true
			r.CSeq, r.Method, ok = readCSeq(value, ok)
		case headerIs(name, "to", "t"):
			ok = !haveTo
			haveTo = true
			r.ToUser = readUser(value)
		case headerIs(name, "www-authenticate", "") || headerIs(name, "proxy-authenticate", ""):
			ok = true
			r.Stale = r.Stale || readStale(value)
		case headerIs(name, "content-length", "l"):
			ok = !haveLength
			haveLength = true
			length, ok = readLength(value, ok)
		default:
			ok = true
		}
		if !ok {
			return r, ReasonMalformed
		}
	}
	if !haveVia || !haveCallID || !haveCSeq {
		return r, ReasonMalformed
	}
	r.Len = len(b)
	if length >= 0 && length < len(b)-pos {
		r.Len = pos + length
	} else if length < 0 && stream {
		r.Len = pos // RFC 3261 18.3: required on streams; without it, no body
	}
	return r, ""
}

// headerIs reports whether name is long or its compact form (RFC 3261
// 7.3.3), case-insensitively.
func headerIs(name []byte, long, compact string) bool {
	return bytes.EqualFold(name, []byte(long)) || compact != "" && bytes.EqualFold(name, []byte(compact))
}

// readVia reads the first value of a Via header:
// SIP / 2.0 / transport LWS host [: port] *( ; param [= value] ).
func readVia(v []byte) (Via, bool) {
	var via Via
	s := scanner{b: v}
	for _, want := range []string{"SIP", "2.0"} {
		s.lws()
		if !bytes.EqualFold(s.token(), []byte(want)) {
			return via, false
		}
		s.lws()
		if !s.skip('/') {
			return via, false
		}
	}
	s.lws()
	if via.Transport = s.token(); len(via.Transport) == 0 {
		return via, false
	}
	if !s.lws() {
		return via, false
	}
	host, port, ok := s.hostPort()
	if !ok {
		return via, false
	}
	via.Host, via.Port = host, port
	for {
		s.lws()
		if s.done() || s.peek() == ',' {
			return via, true // a comma starts the next Via value
		}
		if !s.skip(';') {
			return via, false
		}
		s.lws()
		name := s.token()
		if len(name) == 0 {
			return via, false
		}
		s.lws()
		var value []byte
		hasValue := s.skip('=')
		if hasValue {
			s.lws()
			if value, ok = s.paramValue(); !ok {
				return via, false
			}
		}
		switch {
		case bytes.EqualFold(name, []byte("branch")):
			via.Branch = value
		case bytes.EqualFold(name, []byte("received")):
			if !hasValue || via.Received != nil {
				return via, false
			}
			via.Received = value
		case bytes.EqualFold(name, []byte("maddr")):
			if !hasValue || via.MAddr != nil {
				return via, false
			}
			via.MAddr = value
		case bytes.EqualFold(name, []byte("rport")):
			if via.HasRPort {
				return via, false
			}
			via.HasRPort = true
			if hasValue {
				if via.RPort, ok = parsePort(value); !ok {
					return via, false
				}
			}
		}
	}
}

// readCSeq reads "number LWS method".
func readCSeq(v []byte, ok bool) (uint32, []byte, bool) {
	s := scanner{b: v}
	digits := s.span(isDigit)
	if len(digits) == 0 || len(digits) > 10 || !s.lws() {
		return 0, nil, false
	}
	var n uint64
	for _, c := range digits {
		n = n*10 + uint64(c-'0')
	}
	method := s.token()
	s.lws()
	if n > 1<<32-1 || len(method) == 0 || !s.done() {
		return 0, nil, false
	}
	return uint32(n), method, ok
}

// readLength reads a Content-Length.
func readLength(v []byte, ok bool) (int, bool) {
	if len(v) == 0 || len(v) > 9 {
		return -1, false
	}
	n := 0
	for _, c := range v {
		if !isDigit(c) {
			return -1, false
		}
		n = n*10 + int(c-'0')
	}
	return n, ok
}

// readUser returns the user part of the URI of a To header: name-addr
// ("display" <sip:user@host>;tag=) or addr-spec (sip:user@host;tag=). It
// returns nil when there is none; the To header is attacker text, and an
// unreadable one costs only the user name.
func readUser(v []byte) []byte {
	s := scanner{b: v}
	s.lws()
	if s.peek() == '"' {
		if _, ok := s.quoted(); !ok {
			return nil
		}
	}
	uri := s.b[s.i:]
	if i := bytes.IndexByte(uri, '<'); i >= 0 {
		uri = uri[i+1:]
		end := bytes.IndexByte(uri, '>')
		if end < 0 {
			return nil
		}
		uri = uri[:end]
	} else if i := bytes.IndexAny(uri, "; \t\r\n"); i >= 0 {
		uri = uri[:i]
	}
	colon := bytes.IndexByte(uri, ':')
	if colon < 0 {
		return nil
	}
	scheme, rest := uri[:colon], uri[colon+1:]
	switch {
	case bytes.EqualFold(scheme, []byte("tel")):
		if i := bytes.IndexByte(rest, ';'); i >= 0 {
			rest = rest[:i]
		}
	case bytes.EqualFold(scheme, []byte("sip")) || bytes.EqualFold(scheme, []byte("sips")):
		at := bytes.LastIndexByte(rest, '@')
		if at < 0 {
			return nil
		}
		rest = rest[:at]
		if i := bytes.IndexByte(rest, ':'); i >= 0 {
			rest = rest[:i] // user:password
		}
	default:
		return nil
	}
	if len(rest) > maxUser {
		rest = rest[:maxUser]
	}
	return rest
}

// readStale reports whether a challenge (Digest realm="...", nonce="...",
// stale=TRUE) has stale=true; values may be quoted and hold commas.
func readStale(v []byte) bool {
	s := scanner{b: v}
	s.lws()
	s.token() // the scheme
	for !s.done() {
		s.lws()
		if s.skip(',') {
			continue
		}
		name := s.token()
		s.lws()
		if len(name) == 0 || !s.skip('=') {
			return false
		}
		s.lws()
		value, ok := s.paramValue()
		if !ok {
			return false
		}
		if bytes.EqualFold(name, []byte("stale")) && bytes.EqualFold(value, []byte("true")) {
			return true
		}
	}
	return false
}

// parsePort reads a port 1-65535.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isBlank reports whether a line holds only whitespace: the end of the
// header section, never a folded line.
func isBlank(b []byte) bool { return len(trimLWS(b)) == 0 }

// trimLWS trims spaces, tabs and line ends (folded lines included).
func trimLWS(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// isTokenChar: RFC 3261 token characters, and the ones of a host and an
// IPv6 reference so that one span reads them.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c):
		return true
	}
	return bytes.IndexByte([]byte("-.!%*_+`'~"), c) >= 0
}

// scanner walks a header value.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) done() bool { return s.i >= len(s.b) }

func (s *scanner) peek() byte {
	if s.done() {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) skip(c byte) bool {
	if s.peek() == c && !s.done() {
		s.i++
		return true
	}
	return false
}

// lws skips linear white space (folded lines included) and reports whether
// there was any.
func (s *scanner) lws() bool {
	start := s.i
	for !s.done() && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\r' || s.b[s.i] == '\n') {
		s.i++
	}
	return s.i > start
}

func (s *scanner) span(ok func(byte) bool) []byte {
	start := s.i
	for !s.done() && ok(s.b[s.i]) {
		s.i++
	}
	return s.b[start:s.i]
}

func (s *scanner) token() []byte { return s.span(isTokenChar) }

// quoted reads a quoted string and returns its content, escapes kept.
func (s *scanner) quoted() ([]byte, bool) {
	if !s.skip('"') {
		return nil, false
	}
	start := s.i
	for !s.done() {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		default:
			s.i++
		}
	}
	return nil, false
}

// hostPort reads host [":" port]; an IPv6 host is written in brackets.
func (s *scanner) hostPort() ([]byte, uint16, bool) {
	var host []byte
	if s.skip('[') {
		host = s.span(func(c byte) bool { return c != ']' && c != ',' && c != ';' && c != ' ' })
		if !s.skip(']') {
			return nil, 0, false
		}
	} else {
		host = s.token()
	}
	if len(host) == 0 {
		return nil, 0, false
	}
	s.lws()
	if !s.skip(':') {
		return host, 0, true
	}
	s.lws()
	port, ok := parsePort(s.span(isDigit))
	return host, port, ok
}

// paramValue reads a parameter's value: a quoted string, a bracketed IPv6
// reference (kept with its brackets) or a token.
func (s *scanner) paramValue() ([]byte, bool) {
	switch s.peek() {
	case '"':
		return s.quoted()
	case '[':
		start := s.i
		for !s.done() && s.b[s.i] != ']' {
			s.i++
		}
		if !s.skip(']') {
			return nil, false
		}
		return s.b[start:s.i], true
	}
	// Unquoted: up to the next separator; the values read (received,
	// rport, stale) are checked where they are used.
	v := s.span(func(c byte) bool { return c != ';' && c != ',' && c != ' ' && c != '\t' && c != '\r' && c != '\n' })
	return v, len(v) > 0
}
