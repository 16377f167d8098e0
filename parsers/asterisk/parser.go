package asterisk

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
)

func init() { parsers.Register("asterisk", New) }

// maxMessage is the most bytes one Asterisk log message can span in a file:
// the logger formats prefix and message into a BUFSIZ (8192) buffer.
const maxMessage = 8192

// Parser reads Asterisk log lines. It keeps a little state between lines of
// one stream (a timestamp cache and the newline-injection quarantine), so
// every source needs its own Parser.
type Parser struct {
	stamps logtime.Cache

	// quarantine counts the bytes still to come of a message that an
	// attacker broke into several physical lines (see Parse).
	quarantine int

	amiPending amiAttempt // see manager

	ansi []byte // scratch buffer for lines with terminal colour codes
}

// New returns an Asterisk parser.
func New(opts parsers.Options) (parsers.Parser, error) {
	return &Parser{stamps: logtime.Cache{Clock: parsers.NewClock(opts)}}, nil
}

// Idle reports whether the parser holds nothing from earlier lines: no
// quarantine of a broken message and no AMI attempt waiting for its
// second line (parsers.Resumable).
func (p *Parser) Idle() bool { return p.quarantine <= 0 && p.amiPending == (amiAttempt{}) }

// prefix is what precedes the message body of a line.
type prefix struct {
	stamp    []byte // timestamp text, nil when the line carries none
	lwp      []byte // the logging thread's id
	file     []byte // the source file slot: "chan_sip.c", "Ext. s", ...
	body     []byte // the message
	dialplan bool   // a dialplan Log() line: file is "Ext. <exten>"
}

// Parse reads one Asterisk log line.
//
// Newline injection: some messages print attacker text that Asterisk has
// URI-decoded (the extension of chan_sip and pjsip "Call ... rejected", the
// IAX2 peer name, the dialplan extension), so %0A in a Request-URI writes a
// raw newline and the rest of the message becomes new physical lines that can
// imitate a complete log line. When a line shows the start of such a message
// cut short, the lines that may still belong to it (up to the 8 KiB an
// Asterisk message can span) are dropped as DropInjected. The cut line itself
// still counts for its sender, whose address precedes the attacker text.
// The [json] formatter escapes newlines and is immune; prefer it.
func (p *Parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	if p.quarantine > 0 {
		p.quarantine -= len(line) + 1
		return parsers.DropInjected
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return parsers.Ignored
	}
	if line[0] == '{' {
		return p.parseJSON(line, ev)
	}
	var pre prefix
	coloured := false // an escape code was removed from the message itself
	if !p.split(line, &pre) {
		// Console output kept by journald colours the level name (and the
		// rest of the prefix): strip the escape codes and try again.
		if bytes.IndexByte(line[:min(len(line), 64)], 0x1b) < 0 {
			return parsers.Ignored
		}
		var last int
		p.ansi, last = stripANSI(p.ansi[:0], line)
		line = p.ansi
		if !p.split(line, &pre) {
			return parsers.Ignored
		}
		coloured = last > len(line)-len(pre.body)
	}
	out, broken := p.body(&pre, ev)
	if coloured && out == parsers.Matched {
		// Asterisk colours only the prefix: an escape code inside the
		// message is not its doing, and removing it could join two pieces
		// of text into an address that the line does not hold.
		return parsers.DropMalformed
	}
	if broken {
		p.quarantine = maxMessage - (len(line) + 1)
	}
	if out == parsers.Matched {
		return p.stamp(&pre, ev)
	}
	return out
}

// stamp sets ev.Time from the line's timestamp (unless the message already
// carried a better one) and turns an unreadable timestamp into DropTime.
func (p *Parser) stamp(pre *prefix, ev *parsers.Event) parsers.Outcome {
	if !ev.Time.IsZero() || pre.stamp == nil {
		return parsers.Matched
	}
	t, ok := p.stamps.Parse(pre.stamp)
	if !ok {
		return parsers.DropTime
	}
	ev.Time = t
	return parsers.Matched
}

// split splits a line written by Asterisk's logger or a syslog daemon.
func (p *Parser) split(line []byte, pre *prefix) bool {
	if len(line) == 0 {
		return false
	}
	if line[0] == '[' {
		return p.splitAsterisk(line, pre)
	}
	return p.splitAsterisk(line, pre) || p.splitSyslog(line, pre)
}

// splitAsterisk splits a line written by Asterisk's logger, with or without
// its "[date] " (journal copies lack it):
//
//	[date] LEVEL[lwp][C-xxxxxxxx] file: message              (file channel)
//	[date] LEVEL[lwp][C-xxxxxxxx]: file:line function: message   ([plain], console)
//	LEVEL[lwp][C-xxxxxxxx]: file:line in function: message   (syslog channel)
//
// It reports false for lines that cannot be failure messages, which is most
// of them (VERBOSE, DEBUG, other levels), as early as possible.
func (p *Parser) splitAsterisk(line []byte, pre *prefix) bool {
	i := 0
	if line[0] == '[' {
		end := bytes.IndexByte(line[:min(len(line), 48)], ']')
		if end < 0 || end+1 >= len(line) || line[end+1] != ' ' {
			return false
		}
		pre.stamp = line[1:end]
		i = end + 2
	}
	// Level: only these can carry failures.
	rest := line[i:]
	switch {
	case bytes.HasPrefix(rest, []byte("NOTICE")):
		i += 6
	case bytes.HasPrefix(rest, []byte("WARNING")):
		i += 7
	case bytes.HasPrefix(rest, []byte("SECURITY")):
		i += 8
	case bytes.HasPrefix(rest, []byte("ERROR")):
		i += 5
	default:
		return false
	}
	// "NOTICE [123]" is not Asterisk's, but fail2ban's tests carry it.
	if i+1 < len(line) && line[i] == ' ' && line[i+1] == '[' {
		i++
	}
	if i >= len(line) || line[i] != '[' {
		return false
	}
	i++
	// lwp
	j := i
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if j == i || j-i > 10 || j >= len(line) || line[j] != ']' {
		return false
	}
	pre.lwp = line[i:j]
	i = j + 1
	// Optional call id [C-xxxxxxxx].
	if bytes.HasPrefix(line[i:], []byte("[C-")) {
		if len(line) < i+12 || line[i+11] != ']' || !isHex(line[i+3:i+11]) {
			return false
		}
		i += 12
	}
	switch {
	case bytes.HasPrefix(line[i:], []byte(": ")):
		return splitLocated(line[i+2:], pre)
	case bytes.HasPrefix(line[i:], []byte(" ")):
		return splitFile(line[i+1:], pre)
	}
	return false
}

// splitFile splits "file: message" (file channel format).
func splitFile(rest []byte, pre *prefix) bool {
	if bytes.HasPrefix(rest, []byte("Ext. ")) {
		return splitDialplan(rest, pre)
	}
	k := bytes.IndexByte(rest, ':')
	if k <= 0 || k+1 >= len(rest) || rest[k+1] != ' ' || bytes.IndexByte(rest[:k], ' ') >= 0 {
		return false
	}
	pre.file, pre.body = rest[:k], rest[k+2:]
	return true
}

// splitLocated splits "file:line[ in] function: message" ([plain], console
// and syslog formats).
func splitLocated(rest []byte, pre *prefix) bool {
	if bytes.HasPrefix(rest, []byte("Ext. ")) {
		return splitDialplan(rest, pre)
	}
	k := bytes.IndexByte(rest, ':')
	if k <= 0 || bytes.IndexByte(rest[:k], ' ') >= 0 {
		return false
	}
	file := rest[:k]
	j := k + 1
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == k+1 || j >= len(rest) || rest[j] != ' ' {
		return false
	}
	j++
	if bytes.HasPrefix(rest[j:], []byte("in ")) {
		j += 3
	}
	f := bytes.Index(rest[j:], []byte(": "))
	if f <= 0 || bytes.IndexByte(rest[j:j+f], ' ') >= 0 {
		return false
	}
	pre.file, pre.body = file, rest[j+f+2:]
	return true
}

// splitDialplan handles a dialplan Log() line, whose file slot is
// "Ext. <exten>": the extension is attacker-chosen and may contain ": ", so
// the only reliable part of the line is its end (see dialplan).
func splitDialplan(rest []byte, pre *prefix) bool {
	pre.file, pre.body, pre.dialplan = rest, rest, true
	return true
}

// splitSyslog splits a line written by a syslog daemon or journalctl whose
// program tag is asterisk:
//
//	Nov  4 18:30:40 host asterisk[32229]: <Asterisk line>
//	2024-09-14T07:31:05.227+02:00 host asterisk[2231]: <Asterisk line>
func (p *Parser) splitSyslog(line []byte, pre *prefix) bool {
	_, n, ok := p.stamps.Clock.Parse(line)
	if !ok || n >= len(line) || line[n] != ' ' {
		return false
	}
	stamp := line[:n]
	rest := line[n+1:]
	h := bytes.IndexByte(rest, ' ')
	if h <= 0 {
		return false
	}
	rest = rest[h+1:]
	if !bytes.HasPrefix(rest, []byte("asterisk")) {
		return false
	}
	rest = rest[len("asterisk"):]
	if len(rest) > 0 && rest[0] == '[' {
		e := bytes.IndexByte(rest, ']')
		if e < 2 || !isDigits(rest[1:e]) {
			return false
		}
		rest = rest[e+1:]
	}
	if !bytes.HasPrefix(rest, []byte(": ")) || len(rest) < 3 {
		return false
	}
	rest = rest[2:]
	if rest[0] == '{' || !p.splitAsterisk(rest, pre) {
		return false
	}
	if pre.stamp == nil {
		pre.stamp = stamp
	}
	return true
}

// jsonLine is a line of Asterisk's [json] log formatter (main/logger.c
// format_log_json).
type jsonLine struct {
	Timestamp   string `json:"timestamp"`
	Identifiers struct {
		LWP int64 `json:"lwp"`
	} `json:"identifiers"`
	Logmsg struct {
		Location struct {
			Filename string `json:"filename"`
		} `json:"location"`
		Level   string `json:"level"`
		Message string `json:"message"`
	} `json:"logmsg"`
}

func (p *Parser) parseJSON(line []byte, ev *parsers.Event) parsers.Outcome {
	// Only these levels can carry failures; the raw text `"level":"X"` cannot
	// occur inside a JSON string, where quotes are escaped.
	if !bytes.Contains(line, []byte(`"level":"NOTICE"`)) && !bytes.Contains(line, []byte(`"level":"WARNING"`)) &&
		!bytes.Contains(line, []byte(`"level":"SECURITY"`)) && !bytes.Contains(line, []byte(`"level":"ERROR"`)) {
		return parsers.Ignored
	}
	var j jsonLine
	if err := json.Unmarshal(line, &j); err != nil {
		// A line of a level that carries failures, cut short (Asterisk
		// truncates at 8 KiB) or otherwise broken.
		return parsers.DropMalformed
	}
	switch j.Logmsg.Level {
	case "NOTICE", "WARNING", "SECURITY", "ERROR":
	default:
		return parsers.Ignored
	}
	msg := []byte(j.Logmsg.Message)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	pre := prefix{
		stamp: []byte(j.Timestamp),
		lwp:   strconv.AppendInt(nil, j.Identifiers.LWP, 10),
		file:  []byte(j.Logmsg.Location.Filename),
		body:  msg,
	}
	if bytes.HasPrefix(pre.file, []byte("Ext. ")) {
		// The message is exact here: no need to search from the end.
		pre.dialplan = true
		pre.body = append(append(pre.file, ": "...), msg...)
	}
	out, _ := p.body(&pre, ev) // a JSON line cannot be broken into several
	if out == parsers.Matched {
		return p.stamp(&pre, ev)
	}
	return out
}

// stripANSI appends line to dst without terminal escape sequences
// (ESC [ ... final byte), which Asterisk's console output carries and
// journald keeps, and without stray ESC bytes. It also returns the length
// of dst where the last one was removed (0: none).
func stripANSI(dst, line []byte) ([]byte, int) {
	last := 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != 0x1b {
			dst = append(dst, c)
			continue
		}
		last = len(dst)
		if i+1 < len(line) && line[i+1] == '[' {
			i += 2
			for i < len(line) && (line[i] < 0x40 || line[i] > 0x7e) {
				i++
			}
		}
	}
	return dst, last
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
