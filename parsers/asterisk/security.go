package asterisk

import (
	"bytes"
	"net/netip"
	"strconv"
	"time"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
)

// security reads a res_security_log.c line (A6). Values are printed without
// escaping, in a fixed key order:
//
//	SecurityEvent="X",EventTV="...",Severity="...",Service="...",EventVersion="...",
//	AccountID="...",SessionID="...",LocalAddress="...",RemoteAddress="IPV4/UDP/ip/port",...
//
// The first five values are written by Asterisk and read from the left.
// AccountID and SessionID (the From user and the raw Call-ID for PJSIP) come
// before the address, attacker-written. FailedACL, InvalidAccountID and
// SuccessfulAuth print nothing an attacker writes after RemoteAddress
// (Module, ACLName, SessionTV, UsingPassword), so their last RemoteAddress
// frame is the real one, unless the line reached the logger's limit (then
// the real one may be cut off, and the line is dropped as malformed).
// ChallengeResponseFailed and InvalidPassword print the client's
// challenge and response after it, so there the frame must occur exactly
// once.
// SuccessfulAuth with UsingPassword="1" (the key right after
// RemoteAddress, written by Asterisk) is a success (AuthSucceeded), never
// counted toward a ban; without a password (an endpoint identified by its
// address) it is ignored. ChallengeSent and the other events are not
// failures.
func security(pre *prefix, ev *parsers.Event, tvs *logtime.Cache) parsers.Outcome {
	name, rest, ok := field(pre.body, `SecurityEvent="`)
	if !ok {
		return parsers.DropMalformed
	}
	clientAfter := string(name) == "ChallengeResponseFailed" || string(name) == "InvalidPassword"
	switch string(name) {
	case "FailedACL":
		ev.Kind = parsers.ACLDenied
	case "InvalidAccountID":
		ev.Kind = parsers.UnknownUser
	case "ChallengeResponseFailed", "InvalidPassword":
		ev.Kind = parsers.AuthFailed
	case "SuccessfulAuth":
		ev.Kind = parsers.AuthSucceeded
	default:
		return parsers.Ignored
	}
	tv, rest, ok1 := field(rest, `,EventTV="`)
	_, rest, ok2 := field(rest, `,Severity="`)
	svc, rest, ok3 := field(rest, `,Service="`)
	_, rest, ok4 := field(rest, `,EventVersion="`)
	if !(ok1 && ok2 && ok3 && ok4) || !hasPrefix(rest, `,AccountID="`) {
		return parsers.DropMalformed
	}
	switch string(svc) {
	case "SIP":
		ev.Service = parsers.SIP
	case "PJSIP":
		ev.Service = parsers.PJSIP
	case "IAX2":
		ev.Service = parsers.IAX2
	case "AMI":
		ev.Service = parsers.AMI
		if ev.Kind.Failure() && ev.Kind != parsers.ACLDenied {
			ev.Kind = parsers.AdminAuthFailed
		}
	default:
		return parsers.DropMalformed
	}
	if pre.long() {
		return parsers.DropMalformed
	}
	var (
		a            netip.Addr
		port         uint16
		end, n, seen int
		remote       = []byte(`,RemoteAddress="`)
	)
	if clientAfter {
		a, port, _, end, n, seen = frames(rest, remote, '"', false, valueEnd, remoteAddress)
	} else {
		a, port, end, n, seen = lastFrame(rest, remote, '"', valueEnd, remoteAddress)
	}
	if n != 1 {
		return frameDrop(n, seen)
	}
	if ev.Kind == parsers.AuthSucceeded && !hasPrefix(rest[end:], `,UsingPassword="1"`) {
		return parsers.Ignored
	}
	ev.Addr, ev.Port = a, port
	acct := rest[len(`,AccountID="`):]
	if k := bytes.Index(acct, []byte(`",SessionID="`)); k >= 0 {
		pre.user = clip(acct[:k])
	}
	ev.Time = eventTV(tv, tvs)
	return parsers.Matched
}

// lastFrame is frames for the last frame only: its address when parse
// accepts it (n is 1 then), and where it ends; seen is 1 when there is a
// frame at all.
func lastFrame(b, left []byte, stop byte, follows func([]byte) int, parse func([]byte) (netip.Addr, uint16, bool)) (a netip.Addr, port uint16, end, n, seen int) {
	for k := len(b); ; {
		k = lastIndex(b[:k], left)
		if k < 0 {
			return a, port, end, n, seen
		}
		vs := k + len(left)
		v := bytes.IndexByte(b[vs:], stop)
		if v < 0 {
			continue
		}
		r := follows(b[vs+v:])
		if r < 0 {
			continue
		}
		if fa, fp, ok := parse(b[vs : vs+v]); ok {
			return fa, fp, vs + v + r, 1, 1
		}
		return a, port, end, 0, 1
	}
}

// valueEnd accepts the closing quote of a value when the next key or the
// end of the line follows.
func valueEnd(after []byte) int {
	if len(after) == 1 || after[1] == ',' {
		return 1
	}
	return -1
}

// field reads key (which ends in `="`) and its value up to the next quote.
func field(b []byte, key string) (value, rest []byte, ok bool) {
	if !hasPrefix(b, key) {
		return nil, b, false
	}
	b = b[len(key):]
	k := bytes.IndexByte(b, '"')
	if k < 0 {
		return nil, b, false
	}
	return b[:k], b[k+1:], true
}

// remoteAddress reads ast_json_ipaddr's "IPV4/UDP/192.0.2.1/5060" (the
// address is printed without brackets, IPv6 too).
func remoteAddress(v []byte) (netip.Addr, uint16, bool) {
	var fam byte
	switch {
	case hasPrefix(v, "IPV4/"):
		fam = 4
	case hasPrefix(v, "IPV6/"):
		fam = 6
	default:
		return netip.Addr{}, 0, false
	}
	v = v[5:]
	t := bytes.IndexByte(v, '/')
	if t < 0 {
		return netip.Addr{}, 0, false
	}
	switch string(v[:t]) {
	case "UDP", "TCP", "TLS", "WS", "WSS":
	default:
		return netip.Addr{}, 0, false
	}
	v = v[t+1:]
	p := bytes.LastIndexByte(v, '/')
	if p < 0 {
		return netip.Addr{}, 0, false
	}
	a, ok := parsers.ParseAddr(v[:p])
	if !ok || (fam == 4) != (bytes.IndexByte(v[:p], ':') < 0) {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(string(v[p+1:]), 10, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	return a, uint16(port), true
}

// eventTV reads EventTV: "%FT%T.%q%z" (Asterisk 12+) or "sec-usec" (11 and
// older). It has the full date and zone, unlike the line's prefix, so it is
// preferred; the zero time means "use the prefix". tvs, whose Clock is
// isoClock, remembers the last one read.
func eventTV(tv []byte, tvs *logtime.Cache) time.Time {
	if k := bytes.IndexByte(tv, '-'); k > 0 && k < len(tv)-1 && isDigits(tv[:k]) && isDigits(tv[k+1:]) && len(tv[k+1:]) <= 6 {
		sec, err1 := strconv.ParseInt(string(tv[:k]), 10, 64)
		usec, err2 := strconv.ParseInt(string(tv[k+1:]), 10, 64)
		if err1 == nil && err2 == nil {
			return time.Unix(sec, usec*1000)
		}
		return time.Time{}
	}
	// A full ISO timestamp with zone needs no clock: the zone is explicit.
	if len(tv) <= 23 {
		return time.Time{}
	}
	if isDigits(tv[:1]) {
		// An ISO date (Read's choice for 19 bytes or more that start with
		// a digit) is placed without the clock's now: the Cache gives
		// what isoClock would.
		t, ok := tvs.Parse(tv)
		if !ok {
			return time.Time{}
		}
		return t
	}
	t, n, ok := isoClock.Parse(tv)
	if !ok || n != len(tv) {
		return time.Time{}
	}
	return t
}

// isoClock parses timestamps that carry their zone; its Location is never
// used for them.
var isoClock = parsers.NewClock(parsers.Options{Location: time.UTC})
