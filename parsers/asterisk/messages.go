package asterisk

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync/atomic"

	"github.com/sipguard/sipguard/parsers"
)

// How an address is found when attacker text surrounds it.
//
// Each message below says where its attacker-written fields are. Where they
// lie only after the address, the address is read from the left; where they
// lie only before it, from the right end of the line. Where they lie on both
// sides, or where a field we believe is configuration might not be, the
// line is accepted only if the address "frame" (the fixed text on both sides
// of the address, with a valid address inside) occurs exactly once: the
// real frame is always in the line, so a single frame is the real one, and
// any copy an attacker adds makes the line ambiguous and dropped.

// maxUser bounds the attacker-written account name kept in an Event.
const maxUser = 128

// The longest attacker fields, which bound how far a message broken by
// newlines in them can reach past its first line (see Parser.Parse).
const (
	maxExten   = 79  // AST_MAX_EXTENSION - 1: pjsip's session->exten, the dialplan's ${EXTEN}
	maxContext = 79  // AST_MAX_CONTEXT - 1
	maxIE      = 255 // an IAX2 information element's one-byte length
	// maxLogArgs bounds the Asterisk-written rest of a dialplan Log()
	// message after "Ext. <exten>: " (the FreePBX message with an IPv6
	// address and port is 88 bytes).
	maxLogArgs = 128
)

// long reports whether the line reached the logger's limit: its end may
// be cut off, and its text past the limit another message's.
func (pre *prefix) long() bool { return pre.size >= maxLine }

// body reads the message of a line whose prefix has been split, and how
// far the message may reach past the line into r, which is zero (see
// Parser.Parse).
func (p *Parser) body(pre *prefix, ev *parsers.Event, r *reach) parsers.Outcome {
	*ev = parsers.Event{}
	out := p.message(pre, ev, r)
	if out == parsers.Matched {
		ev.User = intern(pre.user)
	}
	return out
}

// message reads the message of a line into ev, its account name into
// pre.user, and its reach, for messages that may have one, into r (as a
// result, the reach went through memory and back on every line).
func (p *Parser) message(pre *prefix, ev *parsers.Event, r *reach) parsers.Outcome {
	if pre.dialplan {
		return r.set(dialplan(pre, ev))
	}
	b := pre.body
	switch string(pre.file) {
	case "chan_sip.c":
		switch {
		case hasPrefix(b, "Registration from '"):
			return sipRegistration(pre, ev)
		case hasPrefix(b, "Call from '"):
			return r.set(callRejected(pre, b, ev, parsers.SIP))
		}
	case "res_pjsip/pjsip_distributor.c":
		if hasPrefix(b, "Request ") {
			return distributor(pre, ev)
		}
	case "res_pjsip_session.c":
		switch {
		case hasPrefix(b, "Call from '"):
			return r.set(callRejected(pre, b, ev, parsers.PJSIP))
		case bytes.Contains(b, []byte(": Call (")):
			return r.set(sessionCall(pre, ev))
		}
	case "res_security_log.c":
		if hasPrefix(b, `SecurityEvent="`) {
			return security(pre, ev, &p.eventTVs)
		}
	case "manager.c":
		return p.manager(pre, ev)
	case "chan_iax2.c":
		return r.set(iax2(pre, ev))
	}
	return parsers.Ignored
}

// set sets r to rr and returns out.
func (r *reach) set(out parsers.Outcome, rr reach) parsers.Outcome {
	*r = rr
	return out
}

// chan_sip registration failure (A1), attacker text (the To header) only
// before the address, so the line is read from its end:
//
//	Registration from '<To>' failed for '<ip:port>' - <reason>
func sipRegistration(pre *prefix, ev *parsers.Event) parsers.Outcome {
	b := pre.body
	if pre.long() {
		// A To header long enough to push the address past the logger's
		// limit: the end is not this message's.
		return parsers.DropMalformed
	}
	// The reason follows the last "' - ": neither it nor the address
	// holds a quote, so the line ends with "' - " and a reason.
	r, kind := sipReason(b)
	if kind == 0 {
		return parsers.DropMalformed
	}
	// The address is quoted and holds no quote itself: its opening quote
	// is the last one before the reason.
	const head, failedFor = len("Registration from '"), "' failed for '"
	q := lastByte(b[:r], '\'')
	to := q - len(failedFor) + 1 // where the To header ends
	if to < head || string(b[to:q+1]) != failedFor {
		return parsers.DropMalformed
	}
	a, port, ok := parsers.ParseAddrPort(b[q+1:r], false)
	if !ok {
		return parsers.DropAddress
	}
	ev.Addr, ev.Port, ev.Kind, ev.Service = a, port, kind, parsers.SIP
	pre.user = sipUser(b[head:to])
	return parsers.Matched
}

type reason struct {
	suffix string
	kind   parsers.Kind
}

// sipReason returns where the "' - <reason>" that ends b starts and the
// kind of the reason, for chan_sip's registration failure reasons (1.8 to
// 20); 0 for another end. The reasons hold no quote, so the quote it
// starts with is b's last. Their last 8 bytes tell them apart: a switch
// on them, then one comparison, cheaper than finding the last quote.
func sipReason(b []byte) (int, parsers.Kind) {
	if len(b) < 8 {
		return -1, 0
	}
	var end string
	var kind parsers.Kind
	switch string(b[len(b)-8:]) {
	case "password":
		end, kind = "' - Wrong password", parsers.AuthFailed
	case "mismatch":
		end, kind = "' - Username/auth name mismatch", parsers.AuthFailed
	case "er found":
		end, kind = "' - No matching peer found", parsers.UnknownUser
	case "atch ACL":
		end, kind = "' - Device does not match ACL", parsers.ACLDenied
	case "l domain":
		end, kind = "' - Not a local domain", parsers.ACLDenied
	case "register":
		end, kind = "' - Peer is not supposed to register", parsers.ACLDenied
	case "ort type":
		end, kind = "' - Device not configured to use this transport type", parsers.ACLDenied
	case "it/deny)":
		end, kind = "' - ACL error (permit/deny)", parsers.ACLDenied
	case "n failed":
		end, kind = "' - RTP initialization failed", parsers.RejectedConnection
	case " failure":
		end, kind = "' - Unknown failure", parsers.RejectedConnection
	default:
		return -1, 0
	}
	if !hasSuffix(b, end) {
		return -1, 0
	}
	return len(b) - len(end), kind
}

// A call to an unknown extension, chan_sip (A2) and pjsip before 16.15 (A5):
//
//	Call from '<name>' (<ip:port>) to extension '<exten>' rejected because extension not found in context '<ctx>'.
//	Call from '<name>' (<TRANSPORT>:<ip:port>) to extension ...             (pjsip)
//
// The exten after the address is attacker-written; the name is meant to be
// the configured peer name, but the frame rule makes us independent of it.
func callRejected(pre *prefix, b []byte, ev *parsers.Event, svc parsers.Service) (parsers.Outcome, reach) {
	return unknownExtension(pre, b, []byte("' ("), ev, svc)
}

// sessionCall reads res_pjsip_session.c's current form (16.15+, 18.1+):
//
//	<endpoint>: Call (<TRANSPORT>:<ip:port>) to extension '<exten>' rejected because ...
func sessionCall(pre *prefix, ev *parsers.Event) (parsers.Outcome, reach) {
	// The body starts with an optional space (ast_trace_log) and the
	// endpoint id; nothing before ": Call (" is attacker-written.
	b := bytes.TrimPrefix(pre.body, []byte(" "))
	k := bytes.Index(b, []byte(": Call ("))
	if k <= 0 || bytes.IndexByte(b[:k], ' ') >= 0 {
		return parsers.Ignored, reach{}
	}
	return unknownExtension(pre, b, []byte(": Call ("), ev, parsers.PJSIP)
}

var (
	toExtension = []byte(") to extension '")
	notFound    = []byte("' rejected because extension not found in context '")
)

// The extension is URI-decoded and may hold raw newlines, so the message
// reaches as far as the longest extension and context can take it: the
// logger's limit for chan_sip, whose extension has no bound of its own,
// maxExten for pjsip. A line cut by that limit ends its message.
func unknownExtension(pre *prefix, b, left []byte, ev *parsers.Event, svc parsers.Service) (parsers.Outcome, reach) {
	pjsip := svc == parsers.PJSIP
	a, port, _, end, n, seen := uniqueFrame(b, left, ')', false, toExtension, func(v []byte) (netip.Addr, uint16, bool) {
		if pjsip {
			return transportAddr(v)
		}
		return parsers.ParseAddrPort(v, false)
	})
	exten := b[min(end, len(b)):]
	// The message ends with the context: a line without that end was cut
	// short, by an injected newline or by the 8 KiB limit.
	broken := true
	if t := bytes.LastIndex(exten, notFound); t >= 0 {
		ctx := exten[t+len(notFound):]
		if hasSuffix(ctx, "'.") && bytes.IndexByte(ctx[:len(ctx)-2], '\'') < 0 {
			exten, broken = exten[:t], false
		}
	}
	r := reach{span: maxExten + len(notFound) + maxContext + len("'."), cut: broken}
	if svc == parsers.SIP {
		r.span = maxLine - pre.size - 1
	}
	if pre.long() {
		r = reach{}
	}
	if n != 1 {
		return frameDrop(n, seen), r
	}
	ev.Addr, ev.Port, ev.Kind, ev.Service = a, port, parsers.UnknownExtension, svc
	pre.user = clip(exten)
	r.owner = a
	return parsers.Matched, r
}

// transportAddr reads pjsip's "<TRANSPORT>:<address>", where the address is
// "ip:port", "[v6]:port" (13.24+) or "v6:port" (before, unbracketed).
func transportAddr(v []byte) (netip.Addr, uint16, bool) {
	k := bytes.IndexByte(v, ':')
	if k < 0 {
		return netip.Addr{}, 0, false
	}
	switch string(v[:k]) {
	case "UDP", "TCP", "TLS", "WS", "WSS", "SCTP":
	default:
		return netip.Addr{}, 0, false
	}
	a, port, ok := parsers.ParseAddrPort(v[k+1:], true)
	return a, port, ok && port != 0
}

// pjsip distributor failures (A4). The From header before the address and
// the Call-ID after it are both attacker-written (at most 255 bytes each,
// without newlines):
//
//	Request '<method>' from '<From>' failed for '<ip:port>' (callid: <Call-ID>) - <msg>[ after N tries in X ms]
//	Request from '<From>' failed for '<ip>:<port>' (callid: <Call-ID>) - No matching endpoint found   (13.0-13.9)
//
// A From that is a bare SIP URI ("<sip:...>" or "sip:...", without a
// display name, as most scanners send it) holds no space (pjsip's URI
// parser takes none), so it cannot hold a copy
// of the address frame, whose fixed text has spaces: the first frame after
// it is the real one, whatever the Call-ID holds. Otherwise (a display
// name, which may hold anything) the frame must be unique.
func distributor(pre *prefix, ev *parsers.Event) parsers.Outcome {
	b := pre.body
	// head: where the From starts. plain: the method holds no quote (see
	// frameBefore).
	var head int
	plain := true
	switch {
	case hasPrefix(b, "Request from '"):
		head = len("Request from '")
	case hasPrefix(b, "Request '"):
		var k int
		if k, plain = fromAt(b); k < 0 {
			return parsers.DropMalformed
		}
		head = k + len("' from '")
	default:
		return parsers.Ignored
	}
	if pre.long() {
		// Headers long enough to push the end past the logger's limit.
		return parsers.DropMalformed
	}
	rest := trimTries(b)
	rest, ev.Kind = pjsipReason(rest)
	if ev.Kind == 0 {
		return parsers.DropMalformed
	}
	left, right := []byte("' failed for '"), []byte("' (callid: ")
	parse := func(v []byte) (netip.Addr, uint16, bool) {
		a, port, ok := parsers.ParseAddrPort(v, true)
		return a, port, ok && port != 0
	}
	var (
		a           netip.Addr
		port        uint16
		at, n, seen int
	)
	k := index(rest[head:], left)
	if k >= 0 && bareURI(rest[head:head+k]) {
		// The From ends at the first frame: that one is the real one.
		at, seen = head+k, 1
		v := rest[at+len(left):]
		if e := bytes.IndexByte(v, '\''); e < 0 || !bytes.HasPrefix(v[e:], right) {
			return parsers.DropMalformed
		} else if fa, fp, ok := parse(v[:e]); ok {
			a, port, n = fa, fp, 1
		}
	} else {
		// Every frame counts. The first is the one just found, unless one
		// starts before the From (a From that begins with the frame's text
		// makes one with the "'" before it): then look from the start.
		start := 0
		if k >= 0 && !frameBefore(rest, head, plain, left) {
			start = head + k
		}
		a, port, at, _, n, seen = uniqueFrame(rest[start:], left, '\'', true, right, parse)
		at += start
	}
	if n != 1 {
		return frameDrop(n, seen)
	}
	ev.Addr, ev.Port, ev.Service = a, port, parsers.PJSIP
	if at >= head {
		pre.user = sipUser(rest[head:at])
	}
	return parsers.Matched
}

// fromAt returns where the first "' from '" of b, which starts with
// "Request '", is (-1: nowhere), and whether the method before it holds no
// quote. It starts with a quote: the one before the method, or else
// usually the first one after it, compared whole in one go; only a method
// with a quote in it needs a search.
func fromAt(b []byte) (int, bool) {
	const open, from = len("Request '") - 1, "' from '"
	if hasPrefix(b[open:], from) {
		return open, true
	}
	q := bytes.IndexByte(b[open+1:], '\'')
	if q < 0 {
		return -1, false
	}
	q += open + 1
	if hasPrefix(b[q:], from) {
		return q, true
	}
	if k := bytes.Index(b[q+1:], []byte(from)); k >= 0 {
		return q + 1 + k, false
	}
	return -1, false
}

// frameBefore reports whether a frame (left, "' failed for '") starts
// before head, where the From starts. When the method holds no quote
// (plain), the only quotes there are at 8, at "' from '" (where no frame
// starts: the texts differ in their fourth byte) and at head-1: a
// comparison at each of the others costs less than a search.
func frameBefore(rest []byte, head int, plain bool, left []byte) bool {
	if !plain {
		return bytes.Index(rest[:head+len(left)-1], left) >= 0
	}
	return startsWith(rest[len("Request "):], left) || startsWith(rest[head-1:], left)
}

// bareURI reports whether a From is a URI without a display name.
func bareURI(from []byte) bool {
	// The prefixes first: they are compared inline, and a display name
	// fails there.
	return (hasPrefix(from, "<sip:") || hasPrefix(from, "<sips:") || hasPrefix(from, "sip:") || hasPrefix(from, "sips:")) &&
		bytes.IndexByte(from, ' ') < 0 && bytes.IndexByte(from, '"') < 0
}

// pjsipReasons are pjsip_distributor.c's failure messages; the suffix
// includes the ")" that closes the Call-ID. No suffix ends another.
var pjsipReasons = [...]reason{
	{") - No matching endpoint found", parsers.UnknownUser},
	{") - Failed to authenticate", parsers.AuthFailed},
	{") - Not match Endpoint ACL", parsers.ACLDenied},
	{") - Not match Endpoint Contact ACL", parsers.ACLDenied},
	{") - Error to authenticate", parsers.AuthFailed},
}

// pjsipReason cuts the failure message off the end of b and returns its
// kind, 0 when b ends with none.
func pjsipReason(b []byte) ([]byte, parsers.Kind) {
	if len(b) == 0 {
		return b, 0
	}
	for _, r := range pjsipReasons {
		// The last byte first: most suffixes differ there, and a call to
		// memequal costs more.
		if b[len(b)-1] == r.suffix[len(r.suffix)-1] && hasSuffix(b, r.suffix) {
			return b[:len(b)-len(r.suffix)], r.kind
		}
	}
	return b, 0
}

// trimTries removes pjsip's " after N tries in X ms" suffix (13.10+).
func trimTries(b []byte) []byte {
	if !hasSuffix(b, " ms") {
		return b
	}
	k := bytes.LastIndex(b, []byte(" after "))
	if k < 0 || k+len(" after ") > len(b)-len(" ms") {
		return b
	}
	s := b[k+len(" after ") : len(b)-len(" ms")]
	t := bytes.Index(s, []byte(" tries in "))
	if t <= 0 || !isDigits(s[:t]) || !isDecimal(s[t+len(" tries in "):]) {
		return b
	}
	return b[:k]
}

func isDecimal(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return len(b) > 0
}

// uniqueFrame finds every occurrence of left + value + right in b, where the
// value ends at the first byte stop and right starts with stop. It returns
// how many there are (seen), how many of those parse accepts (n), and for
// the last accepted one its address and where it starts and ends in b.
// quoted: left holds stop at its two ends and nowhere else (see frames).
func uniqueFrame(b, left []byte, stop byte, quoted bool, right []byte, parse func([]byte) (netip.Addr, uint16, bool)) (a netip.Addr, port uint16, start, end, n, seen int) {
	return frames(b, left, stop, quoted, func(after []byte) int {
		if startsWith(after, right) {
			return len(right)
		}
		return -1
	}, parse)
}

// frames is uniqueFrame with the text after the value checked by follows,
// which returns how many bytes it accepts there, or -1.
//
// When left is quoted (it starts and ends with stop, and holds it nowhere
// else, as "' failed for '"), the stop bytes between a frame's start and
// its value's end are the last of left and the value's end alone: as
// every frame starts with stop, the next frame starts at one of these two
// or after them, so they are compared, not searched for again.
func frames(b, left []byte, stop byte, quoted bool, follows func([]byte) int, parse func([]byte) (netip.Addr, uint16, bool)) (a netip.Addr, port uint16, start, end, n, seen int) {
	at := -1 // where the next frame starts, when known (-1: search from off)
	if startsWith(b, left) {
		at = 0 // callers often pass b from a frame they found
	}
	for off := 0; ; {
		k := at
		if k < 0 {
			if k = index(b[off:], left); k < 0 {
				return a, port, start, end, n, seen
			}
			k += off
		}
		at = -1
		vs := k + len(left)
		v := bytes.IndexByte(b[vs:], stop)
		if v < 0 {
			return a, port, start, end, n, seen // no stop byte further on either
		}
		e := vs + v // the value's end
		off = k + 1
		if quoted {
			switch {
			case startsWith(b[vs-1:], left):
				at = vs - 1
			case startsWith(b[e:], left):
				at = e
			default:
				off = e + 1
			}
		}
		r := follows(b[e:])
		if r < 0 {
			continue
		}
		seen++
		if fa, fp, ok := parse(b[vs:e]); ok {
			a, port, start, end, n = fa, fp, k, e+r, n+1
		}
	}
}

// index is bytes.Index for a frame's fixed text, which starts with a
// byte a line holds few of (a quote, a comma): bytes.Index compares the
// whole text at every position of a line of up to 64 bytes, where
// hopping from one first byte to the next costs a few. After a few hops
// that found no frame, bytes.Index takes over, so that a line made of
// first bytes costs no more than with it.
func index(b, sep []byte) int {
	off := 0
	for range 4 {
		k := bytes.IndexByte(b[off:], sep[0])
		if k < 0 {
			return -1
		}
		off += k
		if startsWith(b[off:], sep) {
			return off
		}
		off++
	}
	if k := bytes.Index(b[off:], sep); k >= 0 {
		return off + k
	}
	return -1
}

// startsWith is bytes.HasPrefix for a frame's fixed text, compared in two
// words when it has 8 to 16 bytes, as most have: the call to memequal
// that bytes.HasPrefix makes cost more than the comparison.
func startsWith(b, prefix []byte) bool {
	n := len(prefix)
	if n < 8 || n > 16 || len(b) < n {
		return bytes.HasPrefix(b, prefix)
	}
	return binary.LittleEndian.Uint64(b) == binary.LittleEndian.Uint64(prefix) &&
		binary.LittleEndian.Uint64(b[n-8:]) == binary.LittleEndian.Uint64(prefix[n-8:])
}

// lastIndex is bytes.LastIndex for a frame's fixed text, as index is
// bytes.Index: it hops back from one first byte to the one before, where
// bytes.LastIndex hashes every byte of the line from its end.
func lastIndex(b, sep []byte) int {
	end := len(b) - len(sep) + 1 // sep starts before end
	if end <= 0 {
		return -1
	}
	for range 4 {
		k := lastByte(b[:end], sep[0])
		if k < 0 {
			return -1
		}
		if startsWith(b[k:], sep) {
			return k
		}
		end = k
	}
	return bytes.LastIndex(b[:end+len(sep)-1], sep)
}

// frameDrop says why a line without exactly one valid frame is dropped: a
// single frame whose value is no address (a host name, a masked address),
// or an ambiguous or broken line.
func frameDrop(n, seen int) parsers.Outcome {
	if n == 0 && seen == 1 {
		return parsers.DropAddress
	}
	return parsers.DropMalformed
}

// manager reads AMI login failures (A7); the address comes first and the
// user name after it, so the line is read from the left:
//
//	<ip> tried to authenticate with nonexistent user '<user>'
//	<ip> failed to authenticate as '<user>'
//	<ip> failed to pass IP ACL as '<user>'
//
// For a nonexistent user Asterisk logs both the first and the second line;
// the second is not counted again.
func (p *Parser) manager(pre *prefix, ev *parsers.Event) parsers.Outcome {
	lwp, b := pre.lwp, pre.body
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 {
		return parsers.Ignored
	}
	rest := b[sp+1:]
	var n int
	switch {
	case hasPrefix(rest, "tried to authenticate with nonexistent user '"):
		n, ev.Kind = len("tried to authenticate with nonexistent user '"), parsers.AdminAuthFailed
	case hasPrefix(rest, "failed to authenticate as '"):
		n, ev.Kind = len("failed to authenticate as '"), parsers.AdminAuthFailed
	case hasPrefix(rest, "failed to pass IP ACL as '"):
		n, ev.Kind = len("failed to pass IP ACL as '"), parsers.ACLDenied
	default:
		return parsers.Ignored
	}
	if !hasSuffix(rest[n:], "'") {
		return parsers.DropMalformed
	}
	a, ok := parsers.ParseAddr(b[:sp])
	if !ok {
		return parsers.DropAddress
	}
	user := rest[n : len(rest)-1]
	nonexistent := rest[0] == 't'
	if !nonexistent && p.amiPending.matches(lwp, a, user) {
		p.amiPending = amiAttempt{}
		return parsers.Ignored
	}
	p.amiPending = amiAttempt{}
	if nonexistent {
		p.amiPending = amiAttempt{lwp: string(lwp), addr: a, user: string(user)}
	}
	ev.Addr, ev.Service, pre.user = a, parsers.AMI, clip(user)
	return parsers.Matched
}

// amiAttempt remembers a "nonexistent user" line to skip its twin.
type amiAttempt struct {
	lwp  string
	addr netip.Addr
	user string
}

func (t amiAttempt) matches(lwp []byte, a netip.Addr, user []byte) bool {
	return t.addr == a && t.lwp == string(lwp) && t.user == string(user)
}

// iax2 reads chan_iax2.c failures (A8). All but one print the address
// first; "No registration" prints the client's peer name first.
//
//	Host <ip:port> failed to authenticate as <user>
//	Host <ip> failed MD5 authentication for '<peer>' (<hash> != <answer>)
//	Host <ip> denied access to register peer '<peer>'
//	Rejected connect attempt from <ip:port>, request '<exten>@<context>' does not exist
//	No registration for peer '<peer>' (from <ip>)
//
// The user, the peer of "No registration", the extension, the context and
// the MD5 answer are the client's, raw bytes of at most 255 (newlines
// too); the peers of "MD5" and "denied access" are configured ones. So
// each message but "denied access" reaches past its line (see
// Parser.Parse), and "No registration", whose address follows the
// client's text, is read only from whole messages.
func iax2(pre *prefix, ev *parsers.Event) (parsers.Outcome, reach) {
	b := pre.body
	ev.Service = parsers.IAX2
	var addr, user []byte
	var r reach
	switch {
	case hasPrefix(b, "No registration for peer '"):
		const tail = "' (from "
		r = reach{span: maxIE + len(tail) + len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255)")}
		k := bytes.LastIndex(b, []byte(tail))
		if k < len("No registration for peer '") || !hasSuffix(b, ")") {
			// The peer name holds a newline.
			r.cut = true
			return parsers.DropMalformed, r
		}
		if !pre.whole || pre.long() {
			return parsers.DropPlainText, r
		}
		addr, user, ev.Kind = b[k+len(tail):len(b)-1], b[len("No registration for peer '"):k], parsers.UnknownUser
	case hasPrefix(b, "Rejected connect attempt from "):
		rest := b[len("Rejected connect attempt from "):]
		k := bytes.Index(rest, []byte(", request '"))
		if k < 0 {
			return parsers.DropMalformed, reach{}
		}
		addr, user, ev.Kind = rest[:k], rest[k+len(", request '"):], parsers.UnknownExtension
		var whole bool
		user, whole = bytes.CutSuffix(user, []byte("' does not exist"))
		r = reach{span: 2*maxIE + len("@' does not exist"), cut: !whole}
	case hasPrefix(b, "Host "):
		rest := b[len("Host "):]
		sp := bytes.IndexByte(rest, ' ')
		if sp <= 0 {
			return parsers.Ignored, reach{}
		}
		addr, rest = rest[:sp], rest[sp+1:]
		switch {
		case hasPrefix(rest, "failed to authenticate as "):
			user, ev.Kind = rest[len("failed to authenticate as "):], parsers.AuthFailed
			r = reach{span: maxIE - len(user)}
		case hasPrefix(rest, "failed MD5 authentication for '"):
			user, ev.Kind = rest[len("failed MD5 authentication for '"):], parsers.AuthFailed
			if k := bytes.LastIndex(user, []byte("' (")); k >= 0 {
				user = user[:k]
			}
			r = reach{span: maxIE + len(")"), cut: !hasSuffix(b, ")")}
		case hasPrefix(rest, "denied access to register peer '"):
			user, ev.Kind = bytes.TrimSuffix(rest[len("denied access to register peer '"):], []byte("'")), parsers.ACLDenied
		default:
			// Includes "Host <peer> failed RSA authentication", whose first
			// field is a peer name, not an address.
			return parsers.Ignored, reach{}
		}
	default:
		return parsers.Ignored, reach{}
	}
	if pre.long() {
		r = reach{}
	}
	a, port, ok := parsers.ParseAddrPort(addr, false)
	if !ok {
		return parsers.DropAddress, r
	}
	ev.Addr, ev.Port, pre.user = a, port, clip(user)
	r.owner = a
	return parsers.Matched, r
}

// dialplan reads FreePBX's [from-sip-external] Log() line, whose exten (in
// the file slot, before the message) is attacker-chosen, so it is read from
// the end of the line; the address is the channel's receive address:
//
//	Ext. <exten>: "Rejecting unknown SIP connection from <ip>"            (chan_sip: recvip)
//	Ext. <exten>: "Rejecting unknown SIP connection from <ip:port>"       (pjsip: remote_addr)
//	Ext. <exten>:<prio> @ <context>: "Rejecting unknown SIP connection from ..."   ([plain])
//
// Every other dialplan line is ignored, notably FreePBX's "Friendly Scanner
// from <ip>", whose address comes from the Via header. The exten (at most
// 79 bytes) may hold raw newlines, and then the whole first line of the
// message, address included, may be the attacker's: the line is read only
// from whole messages (JSON, the journal), and in a plain-text log every
// dialplan line reaches past itself (see Parser.Parse).
func dialplan(pre *prefix, ev *parsers.Event) (parsers.Outcome, reach) {
	b := pre.body
	const msg = `: "Rejecting unknown SIP connection from `
	r := reach{span: maxExten + len(": ") + maxLogArgs}
	if bytes.Index(b, []byte(": ")) < 0 {
		// "Ext. <exten>" never reached its ": ": the exten holds a newline.
		r.cut = true
		return parsers.DropInjected, r
	}
	k := bytes.LastIndex(b, []byte(msg))
	if k < 0 || !hasSuffix(b, `"`) {
		return parsers.Ignored, r
	}
	if !pre.whole {
		return parsers.DropPlainText, r
	}
	a, port, ok := parsers.ParseAddrPort(b[k+len(msg):len(b)-1], false)
	if !ok {
		return parsers.DropAddress, r
	}
	ev.Addr, ev.Port, ev.Kind, ev.Service = a, port, parsers.RejectedConnection, parsers.SIP
	if port != 0 {
		ev.Service = parsers.PJSIP
	}
	return parsers.Matched, r
}

// sipUser returns the user part of the first SIP URI in a header value, or
// the header itself when it has none. It is informational only.
func sipUser(h []byte) []byte {
	k := sipAt(h)
	if k < 0 {
		return clip(h)
	}
	u := h[k+4:]
	if e := userEnd(u); e >= 0 {
		u = u[:e]
	}
	return clip(u)
}

// userEnd returns where the first "@", ">" or ";" of u is (-1: nowhere),
// eight bytes at a time: a user name is mostly a word, and a loop over
// its bytes mispredicts its end.
func userEnd(u []byte) int {
	i := 0
	for ; i+8 <= len(u); i += 8 {
		v := binary.LittleEndian.Uint64(u[i:])
		// The lowest bit of each mask is exact, so the lowest of all.
		if m := hasByte(v, '@') | hasByte(v, '>') | hasByte(v, ';'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(u); i++ {
		if c := u[i]; c == '@' || c == '>' || c == ';' {
			return i
		}
	}
	return -1
}

// sipAt is bytes.Index(h, "sip:"), found from the colons: a header
// holds few, and the first is usually the URI's.
func sipAt(h []byte) int {
	for off := 0; ; {
		c := bytes.IndexByte(h[off:], ':')
		if c < 0 {
			return -1
		}
		c += off
		if c >= 3 && string(h[c-3:c]) == "sip" {
			return c - 3
		}
		off = c + 1
	}
}

// clip cuts an account name to maxUser bytes.
func clip(b []byte) []byte {
	return b[:min(len(b), maxUser)]
}

// nameSlots hold the account names of the events read so far, so that
// each is one string: a string per event was a tenth of parsing's time.
// They are shared by every parser: offline replay makes a parser per
// chunk of a log, and a map of its own per parser was filled again for
// every chunk. Each name has two slots, chosen by a hash with a seed of
// this process, so names an attacker chooses only take each other's slots
// (bounded memory, a string per event at worst, as without the cache).
var (
	nameSeed  = maphash.MakeSeed()
	nameSlots [1024]atomic.Pointer[string]
)

// intern returns b as a string, the same one each time one of its two
// slots still holds it. Two, so that two names of one slot (a few of
// the ~100 names of a scan share one) do not take it from each other at
// every event.
func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := maphash.Bytes(nameSeed, b)
	first, second := &nameSlots[h%uint64(len(nameSlots))], &nameSlots[(h>>32)%uint64(len(nameSlots))]
	if s := first.Load(); s != nil && *s == string(b) {
		return *s
	}
	if s := second.Load(); s != nil && *s == string(b) {
		return *s
	}
	s := string(b)
	if first.Load() != nil && second.Load() == nil {
		second.Store(&s)
	} else {
		first.Store(&s)
	}
	return s
}
