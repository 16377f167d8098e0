package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/sipguard/sipguard/bans"
)

// The messages nodes exchange, one JSON object each, on these subjects
// (prefix "sipguard" by default):
//
//	<prefix>.ban.<node>.<key>    a ban decided by <node>, or its "lifted" tombstone
//	<prefix>.unban.<node>.<key>  `sipguard unban --cluster` run on <node>
//
// <key> encodes the target, so that the stream, keeping one message per
// subject, keeps the latest word of each node on each target. A receiver
// checks that the origin in the body is the <node> of the subject: the
// server's publish permissions then decide who may speak for whom.

// Message types.
const (
	typeBan    = "ban"
	typeLifted = "lifted" // the origin lifted its ban (after a cluster unban)
	typeUnban  = "unban"
)

// Limits of what a message may carry. Anything larger or wider is dropped:
// a compromised node must not be able to ban the Internet.
const (
	// MaxMessage is the largest message accepted, in bytes.
	MaxMessage = 4096
	// MinBits4 and MinBits6 are the widest networks a remote ban may cover.
	MinBits4 = 16
	MinBits6 = 32
	maxRule  = 64
	maxText  = 512
)

// Ban is a ban in force, as nodes share it.
type Ban struct {
	Target   netip.Prefix // address (/32, /128) or network
	Rule     string       // the rule that decided it on its origin, or "manual"
	Reason   string
	Origin   string // the node that decided it
	Since    time.Time
	Expires  time.Time
	Count    int // events that led to it
	Offences int // earlier bans of the address on its origin
}

// Unban lifts, on every node, the bans of Target (and of what it overlaps)
// made before Time: `sipguard unban --cluster`.
type Unban struct {
	Target netip.Prefix
	Origin string // the node it was run on
	Time   time.Time
	// Until is how long the stream keeps the unban, for nodes that are
	// away: as long as a ban it lifts could still be in force.
	Until time.Time
}

// wire is the JSON form of every message.
type wire struct {
	V        int       `json:"v"`
	Type     string    `json:"type"`
	Target   string    `json:"target"`
	Origin   string    `json:"origin"`
	Rule     string    `json:"rule,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	Time     time.Time `json:"time,omitzero"`
	Until    time.Time `json:"until,omitzero"`
	Count    int       `json:"count,omitempty"`
	Offences int       `json:"offences,omitempty"`
	// Sent is the origin's clock when it published the message: against
	// the server's time of the message, it shows the origin's clock skew.
	Sent time.Time `json:"sent,omitzero"`
}

// ValidName reports whether s can name a node: it is a subject token of
// 1-64 letters, digits, _ and -. (A loop, not a regexp: compiling
// {1,64} cost every command a millisecond at start.)
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// key encodes a target as one subject token: 192.0.2.1 -> 192-0-2-1,
// 2001:db8::/64 -> 2001_db8__p64 ("p" is no hex digit: no two targets
// share a key).
func key(p netip.Prefix) string {
	s := p.Addr().String()
	if p.Bits() != p.Addr().BitLen() {
		s += "/" + fmt.Sprint(p.Bits())
	}
	return keyReplacer.Replace(s)
}

var keyReplacer = strings.NewReplacer(".", "-", ":", "_", "/", "p")

// subjects of a node's messages.
func banSubject(prefix, node string, p netip.Prefix) string {
	return prefix + ".ban." + node + "." + key(p)
}

func unbanSubject(prefix, node string, p netip.Prefix) string {
	return prefix + ".unban." + node + "." + key(p)
}

func banWire(b Ban, typ string) wire {
	return wire{
		V: 1, Type: typ, Target: b.Target.String(), Origin: b.Origin, Rule: clip(b.Rule, maxRule),
		Reason: clip(b.Reason, maxText), Since: b.Since.UTC(), Expires: b.Expires.UTC(), Count: b.Count, Offences: b.Offences,
	}
}

func unbanWire(u Unban) wire {
	return wire{V: 1, Type: typeUnban, Target: u.Target.String(), Origin: u.Origin, Time: u.Time.UTC(), Until: u.Until.UTC()}
}

func (w wire) encode() []byte {
	data, _ := json.Marshal(w)
	return data
}

func encodeBan(b Ban, typ string) []byte { return banWire(b, typ).encode() }

func encodeUnban(u Unban) []byte { return unbanWire(u).encode() }

// message is a decoded message: a ban, a lifted ban or an unban.
type message struct {
	typ   string
	ban   Ban
	unban Unban
	sent  time.Time // by the origin's clock; zero if not said
}

// Errors of decode, counted by kind.
var (
	errOversize  = errors.New("message too large")
	errMalformed = errors.New("malformed message")
)

// decode checks a message received on subject against everything the
// subject says and the limits above. Whatever it returns is safe to
// enforce, allowlist aside.
func decode(prefix, subject string, data []byte) (message, error) {
	if len(data) > MaxMessage {
		return message{}, fmt.Errorf("%w: %d bytes", errOversize, len(data))
	}
	bad := func(format string, a ...any) (message, error) {
		return message{}, fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, a...))
	}
	kind, node, k, ok := splitSubject(prefix, subject)
	if !ok {
		return bad("unexpected subject %q", subject)
	}
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return bad("%v", err)
	}
	if !bytes.Equal(w.encode(), data) {
		// Not as a node writes it: say why, when a key is at fault.
		if err := strictKeys(data); err != nil {
			return bad("%v", err)
		}
		return bad("not in the form nodes write")
	}
	if w.V != 1 {
		return bad("version %d", w.V)
	}
	if w.Origin != node {
		return bad("origin %q sent on the subject of %q", w.Origin, node)
	}
	p, err := netip.ParsePrefix(w.Target)
	if err != nil || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return bad("target %q", w.Target)
	}
	if key(p) != k {
		return bad("target %s sent on the subject of %s", p, k)
	}
	if p.Addr().Is4() && p.Bits() < MinBits4 || p.Addr().Is6() && p.Bits() < MinBits6 {
		return bad("target %s is too wide", p)
	}
	switch {
	case kind == "ban" && (w.Type == typeBan || w.Type == typeLifted):
		if w.Since.IsZero() || !w.Expires.After(w.Since) {
			return bad("ban of %s: since %s, expires %s", p, w.Since, w.Expires)
		}
		if len(w.Rule) == 0 || len(w.Rule) > maxRule || !printable(w.Rule) || len(w.Reason) > maxText {
			return bad("ban of %s: rule %q", p, clip(w.Rule, maxRule))
		}
		if looksLocal(w.Rule) {
			// list, the bans file and the metrics would show it as a
			// feed's entry or a ban found in the kernel here.
			return bad("ban of %s: rule %q is the label of bans no node shares", p, w.Rule)
		}
		return message{typ: w.Type, sent: w.Sent, ban: Ban{
			Target: p, Rule: w.Rule, Reason: clean(w.Reason), Origin: w.Origin, Since: w.Since, Expires: w.Expires,
			Count: max(w.Count, 0), Offences: max(w.Offences, 0),
		}}, nil
	case kind == "unban" && w.Type == typeUnban:
		if w.Time.IsZero() || !w.Until.After(w.Time) {
			return bad("unban of %s: time %s, until %s", p, w.Time, w.Until)
		}
		return message{typ: typeUnban, sent: w.Sent, unban: Unban{Target: p, Origin: w.Origin, Time: w.Time, Until: w.Until}}, nil
	}
	return bad("type %q on a %s subject", w.Type, kind)
}

// wireKeys are the keys of wire, as encoding/json writes them.
var wireKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[wire]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys[name] = true
	}
	return keys
}()

// A message is accepted only as a node writes it: the encoding of what
// it decodes to, byte for byte. encoding/json alone matches keys
// case-insensitively, lets the last of two win and skips unknown ones:
// "origin" and "ORIGIN" in one message would say two things, and a
// receiver must not choose. Comparing with the encoding is cheaper than
// walking the tokens, which is done only to explain a refusal.

// strictKeys checks that data is one JSON object of plain values whose
// keys are wire's, exactly as written and each once.
func strictKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		switch {
		case !wireKeys[k]:
			return fmt.Errorf("unknown key %q", clip(k, maxRule))
		case seen[k]:
			return fmt.Errorf("key %q twice", k)
		}
		seen[k] = true
		if t, err = dec.Token(); err != nil {
			return err
		}
		if _, nested := t.(json.Delim); nested {
			return fmt.Errorf("key %q: not a plain value", k)
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the message")
	}
	return nil
}

// looksLocal reports whether a peer's rule is a label this node gives to
// bans no node shares (bans.Reserved): a feed's entries, bans adopted
// from the kernel. "manual" is a peer's manual ban, and is shared.
func looksLocal(rule string) bool {
	return rule != "manual" && bans.Reserved(rule)
}

// splitSubject reads <prefix>.<kind>.<node>.<key>.
func splitSubject(prefix, subject string) (kind, node, k string, ok bool) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] != "ban" && parts[0] != "unban" || !ValidName(parts[1]) || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// clean replaces what would let a reason forge lines in a log or a table.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
