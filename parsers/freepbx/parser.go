package freepbx

import (
	"bytes"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
)

func init() { parsers.Register("freepbx", New) }

// maxUser bounds the attacker-written user name kept in an Event.
const maxUser = 128

// Fixed text of the lines, as FreePBX writes them (see doc.go).
const (
	// monologHead is Monolog's "[%channel%.%level_name%]: " for the
	// freepbx_security driver; freepbx_log_security logs at notice.
	monologChannel = "[freepbx_security."
	monologHead    = "[freepbx_security.NOTICE]: "
	// monologTail is Monolog's " %context% %extra%" with both empty.
	monologTail = " [] []"
	failureHead = "Authentication failure for "
	successHead = "Authentication successful for "
	failureFrom = " from "
	syslogTag   = "freepbx_security"
)

// Parser reads freepbx_security.log. It keeps a little state between the
// lines of one stream (a timestamp cache, and whether the legacy format can
// still be trusted), so every source needs its own Parser.
type Parser struct {
	stamps logtime.Cache

	// distrustLegacy is set once the stream has shown that its legacy
	// lines cannot be trusted: it holds Monolog lines (the legacy writer
	// is gone, so a legacy-looking line can only be forged), or a line
	// without a timestamp (a typed user name carried a newline into a
	// legacy line). See doc.go.
	distrustLegacy bool
}

// New returns a freepbx_security.log parser.
// Idle reports whether the parser holds nothing from earlier lines: it has
// not learnt to distrust legacy lines (parsers.Resumable). Once it has, it
// never is again, and a replay reads the rest of the log in order.
func (p *Parser) Idle() bool { return !p.distrustLegacy }

func New(opts parsers.Options) (parsers.Parser, error) {
	return &Parser{stamps: logtime.Cache{Clock: parsers.NewClock(opts)}}, nil
}

// Parse reads one line of freepbx_security.log, in the current Monolog
// layout, the legacy layout, or the Monolog layout behind a syslog header.
func (p *Parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	*ev = parsers.Event{}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return parsers.Ignored
	}
	stamp, rest, ok := splitStamp(line)
	syslog := false
	if !ok {
		switch stamp, rest, ok = p.splitSyslog(line); {
		case ok:
			syslog = true
		case rest != nil:
			return parsers.Ignored // another program's syslog line
		default:
			return p.orphan()
		}
	}
	var msg []byte
	switch {
	case bytes.HasPrefix(rest, []byte(monologChannel)):
		// Monolog replaces newlines in messages by spaces: a Monolog line
		// is always whole, and once the file has one, the legacy writer
		// is gone.
		p.distrustLegacy = true
		if !bytes.HasPrefix(rest, []byte(monologHead)) {
			return parsers.Ignored // another level: freepbx_log_security logs at notice only
		}
		msg = rest[len(monologHead):]
		if head(msg) == "" {
			return parsers.Ignored
		}
		var ok bool
		if msg, ok = bytes.CutSuffix(msg, []byte(monologTail)); !ok {
			// Not what Monolog writes for this message: unreadable.
			return parsers.DropMalformed
		}
	case syslog:
		// Only the Monolog driver logs to syslog.
		return parsers.Ignored
	default:
		// Legacy: "[date] <message>", written raw.
		msg = rest
		if head(msg) == "" {
			return parsers.Ignored
		}
		if p.distrustLegacy {
			return parsers.DropInjected
		}
	}
	out := login(msg, ev)
	if out != parsers.Matched {
		return out
	}
	return p.stamp(stamp, ev)
}

// head returns the fixed start of a login message (failure or success),
// or "" for any other message.
func head(msg []byte) string {
	for _, h := range []string{failureHead, successHead} {
		if bytes.HasPrefix(msg, []byte(h)) {
			return h
		}
	}
	return ""
}

// login reads "Authentication failure for <user> from <REMOTE_ADDR>" (and
// the UCP's "Authentication successful for ...", an auth_succeeded event)
// from its end: the user name is typed by the attacker and may hold
// " from " and an address of its choosing, REMOTE_ADDR (the web server's
// TCP peer) is the last field and holds no space.
func login(msg []byte, ev *parsers.Event) parsers.Outcome {
	h := head(msg)
	k := bytes.LastIndex(msg, []byte(failureFrom))
	if k < len(h) {
		// No " from ", or only the one overlapping the head: FreePBX
		// writes "unknown" for an empty user name, so this is not its line.
		return parsers.DropMalformed
	}
	a, ok := parsers.ParseAddr(msg[k+len(failureFrom):])
	if !ok {
		return parsers.DropAddress
	}
	ev.Addr, ev.Kind, ev.Service = a, parsers.AdminAuthFailed, parsers.GUI
	if h == successHead {
		ev.Kind = parsers.AuthSucceeded
	}
	ev.User = clip(msg[len(h):k])
	return parsers.Matched
}

// orphan handles a line that starts with no timestamp. Neither writer
// produces one: Monolog flattens newlines, and the legacy writer starts
// every message with its date. Such a line is the rest of a legacy message
// whose user name carried a newline, so the stream is forged: its legacy
// lines are not trusted again.
func (p *Parser) orphan() parsers.Outcome {
	p.distrustLegacy = true
	return parsers.DropInjected
}

// stamp sets ev.Time from the "Y-m-d H:i:s" timestamp (PHP's zone, which
// the line does not carry: the source's timezone applies).
func (p *Parser) stamp(stamp []byte, ev *parsers.Event) parsers.Outcome {
	t, ok := p.stamps.Parse(stamp)
	if !ok {
		return parsers.DropTime
	}
	ev.Time = t
	return parsers.Matched
}

// splitStamp splits "[YYYY-MM-DD HH:MM:SS] rest", the date both writers
// put first (PHP date("Y-m-d H:i:s"); Monolog's "Y-m-d H:i:s" format).
func splitStamp(line []byte) (stamp, rest []byte, ok bool) {
	const n = len("[2006-01-02 15:04:05] ")
	if len(line) < n || line[0] != '[' || line[n-2] != ']' || line[n-1] != ' ' {
		return nil, nil, false
	}
	s := line[1 : n-2]
	for i, c := range s {
		switch i {
		case 4, 7:
			if c != '-' {
				return nil, nil, false
			}
		case 10:
			if c != ' ' {
				return nil, nil, false
			}
		case 13, 16:
			if c != ':' {
				return nil, nil, false
			}
		default:
			if c < '0' || c > '9' {
				return nil, nil, false
			}
		}
	}
	return s, line[n:], true
}

// splitSyslog splits a line that the Monolog driver sent to syslog (FreePBX
// with AMPSYSLOGLEVEL set: Monolog's SyslogHandler with ident
// "freepbx_security" and FreePBX's own line format), as a syslog daemon or
// journalctl writes it:
//
//	Mar  2 09:40:11 pbx freepbx_security[2345]: [2026-03-02 09:40:11] [freepbx_security.NOTICE]: ...
//
// The date inside the message, which has the year, is the one used.
//
// It reports ok for such a line; a non-nil rest without ok for a syslog
// line of another program, or one whose message is not in FreePBX's
// layout; nil, nil, false for a line with no syslog header at all.
func (p *Parser) splitSyslog(line []byte) (stamp, rest []byte, ok bool) {
	_, n, ok := p.stamps.Clock.Parse(line)
	if !ok || n >= len(line) || line[n] != ' ' {
		return nil, nil, false
	}
	rest = line[n+1:]
	h := bytes.IndexByte(rest, ' ')
	if h <= 0 {
		return nil, nil, false
	}
	other := rest // non-nil
	rest = rest[h+1:]
	if !bytes.HasPrefix(rest, []byte(syslogTag)) {
		return nil, other, false
	}
	rest = rest[len(syslogTag):]
	if len(rest) > 0 && rest[0] == '[' {
		e := bytes.IndexByte(rest, ']')
		if e < 2 || !isDigits(rest[1:e]) {
			return nil, other, false
		}
		rest = rest[e+1:]
	}
	if !bytes.HasPrefix(rest, []byte(": ")) {
		return nil, other, false
	}
	if stamp, rest, ok = splitStamp(rest[2:]); !ok {
		return nil, other, false
	}
	return stamp, rest, true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func clip(b []byte) string {
	if len(b) > maxUser {
		b = b[:maxUser]
	}
	return string(b)
}
