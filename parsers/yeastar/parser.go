package yeastar

import (
	"bytes"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/asterisk"
)

func init() { parsers.Register("yeastar", New) }

// tag is the syslog program tag of Asterisk's syslog channel (openlog
// ident "asterisk"). Nothing public shows Yeastar using another.
const tag = "asterisk"

// Parser reads the syslog messages a Yeastar PBX forwards. The messages of
// Asterisk go to an Asterisk parser, which keeps state between lines (the
// newline-injection quarantine among others), so every source needs its
// own Parser.
type Parser struct {
	opts  parsers.Options
	clock logtime.Clock
	ast   parsers.Parser
	buf   []byte // scratch: a header rebuilt for the Asterisk parser
}

// New returns a Yeastar parser.
func New(opts parsers.Options) (parsers.Parser, error) {
	ast, err := asterisk.New(opts)
	if err != nil {
		return nil, err
	}
	return &Parser{opts: opts, clock: parsers.NewClock(opts), ast: ast}, nil
}

// Parse reads one syslog message, as received (with its <PRI>) or as a
// syslog daemon writes it to a file (without), in the BSD (RFC 3164) or
// the RFC 5424 layout.
// Idle reports whether the Asterisk parser inside holds nothing from
// earlier lines (parsers.Resumable).
func (p *Parser) Idle() bool {
	r, ok := p.ast.(parsers.Resumable)
	return ok && r.Idle()
}

func (p *Parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	*ev = parsers.Event{}
	for n := len(line); n > 0 && (line[n-1] == '\n' || line[n-1] == '\r' || line[n-1] == 0); n-- {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return parsers.Ignored
	}
	msg, pri := stripPRI(line)
	if !pri && len(line) > 0 && line[0] == '<' {
		return parsers.Ignored // a broken <PRI>: not a syslog message
	}
	if pri && bytes.HasPrefix(msg, []byte("1 ")) {
		return p.rfc5424(msg[2:], ev)
	}
	if pri && len(msg) > 0 && msg[0] == ' ' {
		msg = msg[1:] // "<PRI> TIMESTAMP": some senders put a space there
	}
	switch out, ok := p.bsd(msg); {
	case ok:
		return p.ast.Parse(out, ev)
	case out != nil:
		return parsers.Ignored // another program
	default:
		return p.headerless(line)
	}
}

// stripPRI removes a leading "<PRI>" (0-191), as a message arrives over
// the network.
func stripPRI(line []byte) (msg []byte, ok bool) {
	if len(line) < 3 || line[0] != '<' {
		return line, false
	}
	e := bytes.IndexByte(line[:min(len(line), 5)], '>')
	if e < 2 || !isDigits(line[1:e]) || (e > 2 && line[1] == '0') {
		return line, false
	}
	v := 0
	for _, c := range line[1:e] {
		v = v*10 + int(c-'0')
	}
	if v > 191 {
		return line, false
	}
	return line[e+1:], true
}

// bsd checks a BSD-syslog message, "TIMESTAMP HOSTNAME TAG[PID]: MSG", and
// returns it as the Asterisk parser reads it, with ok when its tag is
// asterisk. Forwarders that leave out HOSTNAME (BusyBox syslogd does) get
// a "-" in its place. For a message of another program it returns a
// non-nil out and false; for a line with no syslog header, nil and false.
func (p *Parser) bsd(msg []byte) (out []byte, ok bool) {
	_, n, ok := p.clock.Parse(msg)
	if !ok || n >= len(msg) || msg[n] != ' ' {
		return nil, false
	}
	rest := msg[n+1:]
	if t := tagEnd(rest); t > 0 {
		// No HOSTNAME: the program tag follows the timestamp.
		if !bytes.HasPrefix(rest, []byte(tag)) || t != len(tag) && rest[len(tag)] != '[' {
			return msg, false
		}
		p.buf = append(append(append(p.buf[:0], msg[:n]...), " - "...), rest...)
		return p.buf, true
	}
	h := bytes.IndexByte(rest, ' ')
	if h <= 0 {
		return msg, false
	}
	rest = rest[h+1:]
	t := tagEnd(rest)
	if t <= 0 || !bytes.HasPrefix(rest, []byte(tag)) || t != len(tag) && rest[len(tag)] != '[' {
		return msg, false
	}
	return msg, true
}

// tagEnd returns the length of a program tag, "name" or "name[pid]", that
// starts b and is followed by ": ", or 0.
func tagEnd(b []byte) int {
	i := 0
	for i < len(b) && b[i] != ':' && b[i] != '[' && b[i] != ' ' {
		i++
	}
	if i == 0 || i > 48 {
		return 0
	}
	if i < len(b) && b[i] == '[' {
		e := bytes.IndexByte(b[i:], ']')
		if e < 2 || !isDigits(b[i+1:i+e]) {
			return 0
		}
		i += e + 1
	}
	if !bytes.HasPrefix(b[i:], []byte(": ")) {
		return 0
	}
	return i
}

// rfc5424 reads "TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]" (after
// "<PRI>1 ") and gives MSG to the Asterisk parser behind a BSD header made
// of the timestamp, the host name and the tag, when APP-NAME is asterisk.
func (p *Parser) rfc5424(b []byte, ev *parsers.Event) parsers.Outcome {
	var f [5][]byte // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
	for i := range f {
		k := bytes.IndexByte(b, ' ')
		if k <= 0 {
			return parsers.Ignored
		}
		f[i], b = b[:k], b[k+1:]
	}
	if string(f[2]) != tag {
		return parsers.Ignored
	}
	sd, ok := structuredData(b)
	if !ok {
		return parsers.Ignored
	}
	msg := b[sd:]
	if len(msg) > 0 {
		if msg[0] != ' ' {
			return parsers.Ignored
		}
		msg = msg[1:]
	}
	msg = bytes.TrimPrefix(msg, []byte("\xef\xbb\xbf")) // BOM
	if len(msg) == 0 {
		return parsers.Ignored
	}
	if string(f[0]) == "-" {
		// No timestamp: the message alone, which the caller stamps (or
		// which carries its own date, from Asterisk's file channel).
		return p.ast.Parse(msg, ev)
	}
	if _, n, ok := p.clock.Parse(f[0]); !ok || n != len(f[0]) {
		return parsers.Ignored
	}
	p.buf = append(p.buf[:0], f[0]...)
	p.buf = append(append(p.buf, ' '), f[1]...)
	p.buf = append(append(p.buf, ' '), tag...)
	if string(f[3]) != "-" && isDigits(f[3]) {
		p.buf = append(append(append(p.buf, '['), f[3]...), ']')
	}
	p.buf = append(append(p.buf, ": "...), msg...)
	return p.ast.Parse(p.buf, ev)
}

// structuredData returns the length of RFC 5424 STRUCTURED-DATA at the
// start of b: "-" or one or more [id param="value" ...] elements, where a
// value escapes '"', '\' and ']' with '\'.
func structuredData(b []byte) (int, bool) {
	if len(b) > 0 && b[0] == '-' {
		return 1, true
	}
	i := 0
	for i < len(b) && b[i] == '[' {
		n := sdElement(b[i:])
		if n < 0 {
			return 0, false
		}
		i += n
	}
	return i, i > 0
}

// sdElement returns the length of the SD-ELEMENT "[...]" that starts b,
// or -1.
func sdElement(b []byte) int {
	quoted := false
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ']':
			return i + 1
		}
	}
	return -1
}

// headerless handles a line without a syslog header. Every message of a
// syslog stream has one, so this is the continuation of a message that
// held a newline, split into lines on the way (by the receiver, or a
// syslog daemon that does not escape control characters): text an
// attacker may have written whole, as Asterisk prints URI-decoded
// extensions. It is never given to the stream's Asterisk parser. If it
// reads as an Asterisk failure line, it is dropped as injected; otherwise
// it is ignored.
func (p *Parser) headerless(line []byte) parsers.Outcome {
	probe, err := asterisk.New(p.opts) // fresh: a probe must not change the stream's state
	if err != nil {
		return parsers.DropInjected
	}
	var ev parsers.Event
	if o := probe.Parse(line, &ev); o == parsers.Matched || o.Dropped() {
		return parsers.DropInjected
	}
	return parsers.Ignored
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
