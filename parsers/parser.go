// Package parsers owns the contract between log parsers and the rest of
// sipguard: what a parser produces (Event), how it reports lines it cannot
// use (Outcome), the registry of parsers by name, the Stream that runs one
// over a source and counts what became of each line, and what every parser
// shares: reading addresses (ParseAddr, ParseAddrPort) and the clock its
// Options give (NewClock). The parsers themselves are its subpackages.
//
// A parser reads one physical log line at a time and never does I/O, DNS or
// calls time.Now: the caller supplies the clock and the zone through Options.
// Parsers import only the standard library and logtime (the timestamp
// reader they share with syslogd), so they can be fuzzed and benchmarked in
// isolation.
//
// The one rule every parser follows: the attacker's address is taken only
// from the position the PBX's format string gives it. Text an attacker
// writes (SIP headers, Call-IDs, user names, extensions) is never searched
// for an address; a line that cannot be read unambiguously is dropped and
// counted, never guessed.
package parsers

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sipguard/sipguard/logtime"
)

// Event is one failure (or, with Kind AuthSucceeded, one success) seen in a log: who (the packet source), what (Kind,
// Service, User) and when.
type Event struct {
	// Time comes from the line. A line whose timestamp carries no year gets
	// the current year (the previous one when that would put it more than a
	// day in the future); one without a zone gets Options.Location. It is the
	// zero time when the line has no timestamp at all (journal copies): the
	// caller then stamps it with the time the line was read.
	Time time.Time
	// Addr is the packet source, never an address written by the attacker.
	// IPv4-mapped IPv6 addresses are unmapped.
	Addr netip.Addr
	// Port is the source port when the line logs one, else 0.
	Port    uint16
	Kind    Kind
	Service Service
	// User is the account, user or extension tried, when the line has one.
	// It is attacker-written text: display it escaped, never parse it.
	User string
	// Parser, Source and Line are filled in by the caller.
	Parser string
	Source string
	Line   int64
}

// Kind says what failed. One vocabulary is used in the config, the CLI and
// JSON output.
type Kind uint8

// Kinds of failure. The zero Kind is invalid.
const (
	AuthFailed         Kind = iota + 1 // wrong password or digest response
	UnknownUser                        // no such account, peer or endpoint
	ACLDenied                          // refused by an ACL, domain or transport check
	UnknownExtension                   // call to an extension that does not exist
	AdminAuthFailed                    // AMI or web GUI login failure
	RejectedConnection                 // the PBX refused the request for another reason
	// Injection: the address sent text that broke a log message into
	// several lines (a raw newline in a field the PBX logs as sent), the way
	// forged log lines are written. It is counted like any failure.
	Injection
	// ChallengeUnanswered: the PBX challenged a request (401/407) and no
	// answer came within SIP's transaction time (the wire sensor). Phones
	// that lose a packet or give up do this too, so it is in no default
	// set: only a rule that names it counts it.
	ChallengeUnanswered
	numKinds
)

// AuthSucceeded is not a failure: a successful login or registration with
// a password. It is never counted toward a ban and is in no KindSet; the
// daemon uses it to spot a guessed password (a success from an address
// that just failed). Kinds and ParseKind leave it out, so no rule can name
// it.
const AuthSucceeded Kind = 31

// Failure reports whether k is one of the failure kinds rules count.
func (k Kind) Failure() bool { return k > 0 && k < numKinds }

var kindNames = [numKinds]string{
	AuthFailed:          "auth_failed",
	UnknownUser:         "unknown_user",
	ACLDenied:           "acl_denied",
	UnknownExtension:    "unknown_extension",
	AdminAuthFailed:     "admin_auth_failed",
	RejectedConnection:  "rejected_connection",
	Injection:           "injection",
	ChallengeUnanswered: "challenge_unanswered",
}

// Kinds lists every valid Kind in order.
func Kinds() []Kind {
	ks := make([]Kind, 0, numKinds-1)
	for k := Kind(1); k < numKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

func (k Kind) String() string {
	if k.Failure() {
		return kindNames[k]
	}
	if k == AuthSucceeded {
		return "auth_succeeded"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the Kind with the given name.
func ParseKind(s string) (Kind, error) {
	for k := Kind(1); k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown kind %q (known: %s)", s, strings.Join(kindNames[1:], ", "))
}

// ParseEventKind returns the Kind with the given name, auth_succeeded
// included: what a pattern may produce, unlike what a rule may count.
func ParseEventKind(s string) (Kind, error) {
	if s == AuthSucceeded.String() {
		return AuthSucceeded, nil
	}
	k, err := ParseKind(s)
	if err != nil {
		return 0, fmt.Errorf("unknown kind %q (known: %s, %s)", s, strings.Join(kindNames[1:], ", "), AuthSucceeded)
	}
	return k, nil
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It reads every Kind
// MarshalText writes, AuthSucceeded included.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseEventKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// KindSet is a set of Kinds.
type KindSet uint32

// AllKinds contains every Kind.
const AllKinds = KindSet(1<<numKinds-1) &^ 1

// DefaultKinds is what a rule that lists no events counts: every Kind
// but ChallengeUnanswered, a weak signal that a rule must name to count.
const DefaultKinds = AllKinds &^ (1 << ChallengeUnanswered)

// Has reports whether k is in the set.
func (s KindSet) Has(k Kind) bool { return s&(1<<k) != 0 }

// With returns the set with k added.
func (s KindSet) With(k Kind) KindSet { return s | 1<<k }

func (s KindSet) String() string {
	var names []string
	for _, k := range Kinds() {
		if s.Has(k) {
			names = append(names, k.String())
		}
	}
	return strings.Join(names, ",")
}

// Service names the PBX service that was attacked.
type Service uint8

// Services. The zero Service is invalid.
const (
	SIP   Service = iota + 1 // chan_sip, or SIP without a known stack
	PJSIP                    // Asterisk res_pjsip
	IAX2                     // Asterisk chan_iax2
	AMI                      // Asterisk Manager Interface
	GUI                      // web administration or user portal
	numServices
)

var serviceNames = [numServices]string{SIP: "sip", PJSIP: "pjsip", IAX2: "iax2", AMI: "ami", GUI: "gui"}

func (s Service) String() string {
	if s > 0 && s < numServices {
		return serviceNames[s]
	}
	return fmt.Sprintf("service(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s Service) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Outcome says what a parser made of a line.
type Outcome uint8

// Outcomes. Every Outcome from DropMalformed on means the line was dropped
// and must be counted.
const (
	// Ignored: not a failure message (noise, successes, informational events).
	Ignored Outcome = iota
	// Matched: the Event was filled in.
	Matched
	// DropMalformed: a failure message whose fields cannot be read
	// unambiguously, typically because attacker text contains delimiters.
	DropMalformed
	// DropAddress: a failure message whose address slot holds no literal IP
	// address (a host name, a masked address). No DNS lookup is ever made.
	DropAddress
	// DropTime: a failure message whose timestamp cannot be read.
	DropTime
	// DropInjected: a line inside a message into which an attacker injected
	// newlines; it may imitate a complete log line.
	DropInjected
	// DropPlainText: a failure message whose address follows text an
	// attacker can break into lines: in a plain-text log the line may be
	// forged, so it is read only where every line is one whole message (a
	// JSON log, the journal).
	DropPlainText
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	Ignored:       "ignored",
	Matched:       "matched",
	DropMalformed: "malformed",
	DropAddress:   "bad_address",
	DropTime:      "bad_time",
	DropInjected:  "injected",
	DropPlainText: "plain_text",
}

func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Dropped reports whether the line was dropped (and must be counted).
func (o Outcome) Dropped() bool { return o >= DropMalformed && o < numOutcomes }

// DropOutcomes lists the Outcomes that mean a dropped line.
func DropOutcomes() []Outcome {
	return []Outcome{DropMalformed, DropAddress, DropTime, DropInjected, DropPlainText}
}

// Parser turns log lines into Events.
//
// A Parser may keep state between lines of one stream (for example to
// recognise the continuation of a message with injected newlines), so each
// log source gets its own Parser and calls it from one goroutine.
type Parser interface {
	// Parse reads one line, without its line terminator. On Matched it has
	// filled in ev (but not ev.Parser, ev.Source or ev.Line). line is only
	// valid during the call.
	Parse(line []byte, ev *Event) Outcome
}

// Ignorer is a Parser that can tell at a glance, for most of the lines it
// ignores, that it would ignore them: when Ignores(line) is true, Parse
// would return Ignored and change nothing, so the caller need not call it.
// Ignores never changes the parser. (Four lines of five of an Asterisk log
// are VERBOSE: skipping them saves the calls and checks of Parse, 3% of
// reading the mix of bench/compare.sh: BenchmarkIgnores in
// parsers/asterisk.)
type Ignorer interface {
	Parser
	Ignores(line []byte) bool
}

// Options configure a Parser.
type Options struct {
	// Location is the zone of timestamps that carry none. nil means time.Local.
	Location *time.Location
	// Now returns the current time. It is used only to choose the year of
	// timestamps that carry none. nil means time.Now.
	Now func() time.Time
	// Whole says that every line is one whole message, with the newlines
	// in it escaped (the journal's lines): no message can continue on the
	// next line, so no line can be forged inside another.
	Whole bool
}

// NewClock returns the clock that reads timestamps as opts says: the
// zone and the current year of logtime.NewClock.
func NewClock(opts Options) logtime.Clock { return logtime.NewClock(opts.Location, opts.Now) }

// Factory makes a Parser.
type Factory func(Options) (Parser, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a parser available by name. It panics on an empty or
// duplicate name: both are programming errors.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || f == nil {
		panic("parsers: Register with empty name or nil factory")
	}
	if _, dup := registry[name]; dup {
		panic("parsers: Register called twice for " + name)
	}
	registry[name] = f
}

// New makes the parser registered under name.
func New(name string, opts Options) (Parser, error) {
	registryMu.RLock()
	f, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown parser %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return f(opts)
}

// Known reports whether a parser is registered under name.
func Known(name string) bool {
	registryMu.RLock()
	defer registryMu.RUnlock()
	_, ok := registry[name]
	return ok
}

// Names lists the registered parsers, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
