package asterisk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
)

func init() { parsers.Register("asterisk", New) }

// maxLine is the most bytes Asterisk's logger writes for one message: it
// formats prefix and message into a buffer of LOGMSG_SIZE (8192) bytes.
// A longer message is cut there and loses its newline, so the next
// message goes on on the same physical line: a line that reaches maxLine
// was cut by the limit (and its end is not its own).
const maxLine = 8191

// Parser reads Asterisk log lines. It keeps a little state between lines of
// one stream (a timestamp cache, the reach of a message an attacker may
// have broken into several lines, an AMI attempt waiting for its second
// line), so every source needs its own Parser.
type Parser struct {
	stamps logtime.Cache
	whole  bool // parsers.Options.Whole: no line can be forged inside another

	win window // see Parse
	lwp uint64 // the logging thread's id on the line being read, 0: none

	amiPending amiAttempt // see manager

	ansi []byte // scratch buffer for lines with terminal colour codes

	eventTVs logtime.Cache // the EventTV of SECURITY lines (see eventTV)
}

// window is the part of the log that may still belong to a message whose
// attacker-written text can hold raw newlines (see Parse).
type window struct {
	left int // bytes of the message that may still follow
	// owner is the message's sender, when its address comes before the
	// attacker text (invalid otherwise); svc and at are its service and
	// time.
	owner netip.Addr
	svc   parsers.Service
	at    time.Time
	lwp   uint64 // the thread that logged the message (0: unknown)
	// cut: the message's line showed that it was cut short, so the next
	// line is the rest of it; proven: it was, so the lines after are
	// the attacker's until the window ends, whatever thread they name.
	cut, proven bool
}

// reach is what a message tells of the lines that may still belong to it
// (see Parse): span bytes past its line (0: none), its sender when its
// address comes before the attacker text, and whether its line was cut
// short.
type reach struct {
	span  int
	owner netip.Addr
	cut   bool
}

// New returns an Asterisk parser.
func New(opts parsers.Options) (parsers.Parser, error) {
	return &Parser{stamps: logtime.Cache{Clock: parsers.NewClock(opts)}, whole: opts.Whole, eventTVs: logtime.Cache{Clock: isoClock}}, nil
}

// Idle reports whether the parser holds nothing from earlier lines: no
// window of a message that may go on and no AMI attempt waiting for its
// second line (parsers.Resumable).
func (p *Parser) Idle() bool { return p.win.left <= 0 && p.amiPending == (amiAttempt{}) }

// prefix is what precedes the message body of a line.
type prefix struct {
	stamp    []byte // timestamp text, nil when the line carries none
	lwp      []byte // the logging thread's id
	file     []byte // the source file slot: "chan_sip.c", "Ext. s", ...
	body     []byte // the message
	user     []byte // the message's account name, set by message
	dialplan bool   // a dialplan Log() line: file is "Ext. <exten>"
	whole    bool   // the line is one whole message (JSON, Options.Whole)
	// size is the length of the Asterisk part of the line (without a
	// syslog header); at maxLine or more the message may have been cut by
	// the logger's limit and another joined to it.
	size int
}

// Parse reads one Asterisk log line.
//
// Newline injection: some messages print attacker text that can hold a
// raw newline (the extension of chan_sip and pjsip "Call ... rejected",
// URI-decoded; the IAX2 user, peer, extension and MD5 answer, raw bytes;
// the dialplan extension), so the rest of the message becomes new physical
// lines that can imitate complete log lines, and the attacker decides how
// the first line ends (it may look complete). After such a message, the
// lines that fit in what the message can still span (the longest its
// attacker fields can be: 79 bytes for a pjsip or dialplan extension, 255
// for an IAX2 field, the logger's limit for chan_sip) are its window:
//
//   - an event there for the message's sender (whose address precedes the
//     attacker text) counts: forging one against oneself gains nothing;
//   - an event there for any other address counts only when the line
//     carries the id of the thread that logged the message (the "[lwp]"
//     after the level), which an attacker cannot see from the network:
//     chan_sip logs every UDP request from one thread, so another
//     attacker's chan_sip lines still count; otherwise it is dropped as
//     DropInjected;
//   - the line after a message that shows it was cut short (an extension
//     without the end of the message after it, say) is the rest of it:
//     whatever it holds, it becomes an event of kind Injection for the
//     sender when the sender is known, and the window's other events for
//     other addresses are dropped whatever thread they name;
//   - the first line that does not fit ends the window: the message ended
//     before it, so it and every line after it are read as usual.
//
// So a window hides at most one message's reach of other threads' lines,
// and forged lines count only for their sender (or for a victim whose
// thread id the forger guessed right). Messages whose address follows the
// attacker text (IAX2 "No registration", the dialplan's rejected
// connection) are dropped as DropPlainText: their first line may be forged
// whole. With Options.Whole (the journal) or the [json] formatter, where
// a message is always one line, none of this applies.
func (p *Parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	w := &p.win
	if w.left > 0 && len(line)+1 > w.left {
		// Too long to be the rest of the message: it ended before.
		*w = window{}
	}
	// The reach is written in place: returned with the outcome, it was
	// copied through memory on every line, most of a rejected line's cost.
	var r reach
	if w.left <= 0 {
		out := p.parse(line, ev, &r)
		if r.span > 0 {
			p.open(&r, out, ev)
		}
		return out
	}
	w.left -= len(line) + 1
	cut := w.cut
	w.cut = false
	out := p.parse(line, ev, &r)
	if r.span > 0 {
		// A message inside the window may be forged: its own reach is
		// the window's, still under the same sender.
		w.left = max(w.left, r.span)
	}
	if cut && w.owner.IsValid() {
		// The rest of a message cut short: an injection by its sender.
		*ev = parsers.Event{Addr: w.owner, Kind: parsers.Injection, Service: w.svc, Time: w.at}
		return parsers.Matched
	}
	if out != parsers.Matched || ev.Addr == w.owner {
		return out
	}
	if !w.proven && p.lwp != 0 && p.lwp == w.lwp {
		// Written by the thread that logged the message, which a forger
		// cannot know.
		return out
	}
	return parsers.DropInjected
}

// open starts the window of a message that may go on (see Parse).
func (p *Parser) open(r *reach, out parsers.Outcome, ev *parsers.Event) {
	if r.span <= 0 || p.whole {
		return
	}
	p.win = window{left: r.span, cut: r.cut, proven: r.cut, lwp: p.lwp}
	if out == parsers.Matched && r.owner.IsValid() && ev.Addr == r.owner {
		p.win.owner, p.win.svc, p.win.at = r.owner, ev.Service, ev.Time
	}
}

// Ignores reports, for most lines of a level that carries no failure
// (VERBOSE, DEBUG), that Parse would ignore the line and change nothing:
// no message's window is open (a line in it counts against it), and the
// line is one otherLevel recognises, as parse would see it.
func (p *Parser) Ignores(line []byte) bool {
	if p.win.left > 0 {
		return false
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	other, _ := otherLevel(line)
	return other
}

// parse reads one line into ev, and how far its message may reach into
// r, which is zero.
func (p *Parser) parse(line []byte, ev *parsers.Event, r *reach) parsers.Outcome {
	p.lwp = 0
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return parsers.Ignored
	}
	if line[0] == '{' {
		return p.parseJSON(line, ev)
	}
	other, end := otherLevel(line)
	if other {
		return parsers.Ignored
	}
	pre := prefix{whole: p.whole}
	coloured := false // an escape code was removed from the message itself
	if !p.split(line, &pre, end) {
		// Console output kept by journald colours the level name (and the
		// rest of the prefix): strip the escape codes and try again.
		if bytes.IndexByte(line[:min(len(line), 64)], 0x1b) < 0 {
			return parsers.Ignored
		}
		var last int
		p.ansi, last = stripANSI(p.ansi[:0], line)
		line = p.ansi
		if !p.split(line, &pre, -1) {
			return parsers.Ignored
		}
		coloured = last > len(line)-len(pre.body)
	}
	p.lwp = lwpID(pre.lwp)
	out := p.body(&pre, ev, r)
	if coloured && out == parsers.Matched {
		// Asterisk colours only the prefix: an escape code inside the
		// message is not its doing, and removing it could join two pieces
		// of text into an address that the line does not hold.
		out = parsers.DropMalformed
	}
	if out == parsers.Matched {
		out = p.stamp(&pre, ev)
	}
	if out != parsers.Matched {
		r.owner = netip.Addr{}
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

// otherLevel reports, for most lines of a level that carries no failure
// (VERBOSE, DEBUG), that the line is one: "[date] X" where X is not the
// first letter of a level splitAsterisk takes, with the "]" and X in the
// first 24 bytes and no escape code there. Such a line is Ignored, by
// splitAsterisk and again once escape codes are stripped (they come later
// in the line, so the date and level stay put); the rest go the long way.
// It reads those 24 bytes as three words, looking for "]" and ESC in all
// of them at once: two searches of the line cost more than the rest of
// such a line's parse. For the other lines it also returns where the
// first "]" is when it found it (-1: it did not), for splitAsterisk.
func otherLevel(line []byte) (bool, int) {
	if len(line) < 24 || line[0] != '[' {
		return false, -1
	}
	end := -1 // the first "]"
	for w := 0; ; w += 8 {
		if w == 24 {
			return false, -1
		}
		v := binary.LittleEndian.Uint64(line[w:])
		if hasByte(v, 0x1b) != 0 {
			return false, -1
		}
		if m := hasByte(v, ']'); m != 0 {
			end = w + bits.TrailingZeros64(m)/8
			break
		}
	}
	if end+2 >= 24 || line[end+1] != ' ' {
		return false, end
	}
	switch line[end+2] {
	case 'N', 'W', 'S', 'E':
		return false, end
	}
	// No ESC up to the level's letter: the words up to the one holding
	// "]" had none, and the letter, if in the next word, is no ESC.
	return line[end+2] != 0x1b, end
}

// hasByte returns a mask whose lowest set bit is the top bit of the first
// byte of v (in memory order) equal to c, 0 when none is (the bits above
// the first may be wrong).
func hasByte(v uint64, c byte) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	x := v ^ (lo * uint64(c))
	return (x - lo) &^ x & hi
}

// lastByte is bytes.LastIndexByte (a loop over single bytes) eight bytes
// at a time.
func lastByte(b []byte, c byte) int {
	const lo, low7 = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f
	i := len(b)
	for ; i >= 8; i -= 8 {
		x := binary.LittleEndian.Uint64(b[i-8:]) ^ (lo * uint64(c))
		// The top bit of each byte of x that is 0, and of no other: unlike
		// hasByte's, the highest set bit is exact.
		if m := ^((x&low7 + low7) | x | low7); m != 0 {
			return i - 8 + (63-bits.LeadingZeros64(m))/8
		}
	}
	for i--; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// split splits a line written by Asterisk's logger or a syslog daemon.
// end is where the line's first "]" is, when known (-1: not known).
func (p *Parser) split(line []byte, pre *prefix, end int) bool {
	if len(line) == 0 {
		return false
	}
	if line[0] == '[' {
		return p.splitAsterisk(line, pre, end)
	}
	return p.splitAsterisk(line, pre, end) || p.splitSyslog(line, pre)
}

// splitAsterisk splits a line written by Asterisk's logger, with or without
// its "[date] " (journal copies lack it):
//
//	[date] LEVEL[lwp][C-xxxxxxxx] file: message              (file channel)
//	[date] LEVEL[lwp][C-xxxxxxxx]: file:line function: message   ([plain], console)
//	LEVEL[lwp][C-xxxxxxxx]: file:line in function: message   (syslog channel)
//
// It reports false for lines that cannot be failure messages, which is most
// of them (VERBOSE, DEBUG, other levels), as early as possible. end is
// where the line's first "]" is, when known (-1: not known).
func (p *Parser) splitAsterisk(line []byte, pre *prefix, end int) bool {
	pre.size = len(line)
	i := 0
	if line[0] == '[' {
		if end < 0 {
			end = bytes.IndexByte(line[:min(len(line), 48)], ']')
		}
		if end < 0 || end+1 >= len(line) || line[end+1] != ' ' {
			return false
		}
		pre.stamp = line[1:end]
		i = end + 2
	}
	// Level: only these can carry failures.
	rest := line[i:]
	if len(rest) == 0 {
		return false
	}
	// One comparison at most: the first letter tells them apart, and
	// most lines (VERBOSE, DEBUG) fail on it.
	// Each name a constant: compared inline, not by memequal.
	var ok bool
	switch rest[0] {
	case 'N':
		ok, i = hasPrefix(rest, "NOTICE"), i+len("NOTICE")
	case 'W':
		ok, i = hasPrefix(rest, "WARNING"), i+len("WARNING")
	case 'S':
		ok, i = hasPrefix(rest, "SECURITY"), i+len("SECURITY")
	case 'E':
		ok, i = hasPrefix(rest, "ERROR"), i+len("ERROR")
	}
	if !ok {
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
	if hasPrefix(line[i:], "[C-") {
		if len(line) < i+12 || line[i+11] != ']' || !isHex(line[i+3:i+11]) {
			return false
		}
		i += 12
	}
	switch {
	case hasPrefix(line[i:], ": "):
		return splitLocated(line[i+2:], pre)
	case hasPrefix(line[i:], " "):
		return splitFile(line[i+1:], pre)
	}
	return false
}

// splitFile splits "file: message" (file channel format).
func splitFile(rest []byte, pre *prefix) bool {
	if hasPrefix(rest, "Ext. ") {
		return splitDialplan(rest, pre)
	}
	// The file ends at the first ":", and holds no space.
	k := colonOrSpace(rest)
	if k <= 0 || rest[k] != ':' || k+1 >= len(rest) || rest[k+1] != ' ' {
		return false
	}
	pre.file, pre.body = rest[:k], rest[k+2:]
	return true
}

// colonOrSpace returns where the first ":" or " " of b is (-1: nowhere),
// eight bytes at a time: one search instead of two calls of
// bytes.IndexByte, for a file name of a few words.
func colonOrSpace(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		// The lowest bit of either mask is exact, so the lowest of both.
		if m := hasByte(v, ':') | hasByte(v, ' '); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ':' || b[i] == ' ' {
			return i
		}
	}
	return -1
}

// splitLocated splits "file:line[ in] function: message" ([plain], console
// and syslog formats).
func splitLocated(rest []byte, pre *prefix) bool {
	if hasPrefix(rest, "Ext. ") {
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
	if hasPrefix(rest[j:], "in ") {
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
	if !hasPrefix(rest, "asterisk") {
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
	if !hasPrefix(rest, ": ") || len(rest) < 3 {
		return false
	}
	rest = rest[2:]
	if rest[0] == '{' || !p.splitAsterisk(rest, pre, -1) {
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
		whole: true,
	}
	if hasPrefix(pre.file, "Ext. ") {
		// The message is exact here: no need to search from the end.
		pre.dialplan = true
		pre.body = append(append(pre.file, ": "...), msg...)
	}
	var r reach // a JSON line is one whole message
	out := p.body(&pre, ev, &r)
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

// lwpID reads a thread id (at most 10 digits, as split checks); 0 for
// none.
func lwpID(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n*10 + uint64(c-'0')
	}
	return n
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

// hasPrefix is bytes.HasPrefix for a constant prefix s: the compiler
// compares one of up to 16 bytes inline, where bytes.HasPrefix with a
// []byte literal calls memequal.
func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// hasSuffix is hasPrefix for the end of b.
func hasSuffix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[len(b)-len(s):]) == s
}
