// Package custom builds parsers from patterns users write in rules.toml
// ([[parser]] tables), for PBX lines sipguard does not know yet.
//
// A pattern is an RE2 regular expression with a named group "ip" (and
// optionally "port", "user" and "time"). Because a user's pattern decides
// which address gets banned, it is checked when the config is loaded:
//
//   - anchored at both ends (^ … $), so it describes the whole line and
//     cannot match a fragment an attacker wrote inside it;
//   - exactly one "ip" group, not optional or repeated, which can match only
//     address characters (hex digits, ".", ":", and "[" "]" for
//     "[v6]:port"), so it can never capture a host name or free text;
//   - small (RE2 runs in linear time, so there is no catastrophic
//     backtracking, but a huge pattern is refused);
//   - at least one example line, which must match and give a literal IP.
//
// At run time a line is read only if the patterns read it one way: it is
// matched twice, once preferring long matches and once short ones, and a
// line where the two place the address differently (attacker text on both
// sides holding a copy of the address's surroundings) is dropped as
// malformed, never guessed. So is a line that a later pattern also matches
// with its address elsewhere (attacker text that makes a line of one
// format end like a line of another).
package custom

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"github.com/sipguard/sipguard/logtime"
	"github.com/sipguard/sipguard/parsers"
)

// Spec is a [[parser]] table.
type Spec struct {
	Name string
	// Timestamp is the strftime layout of the "time" group ("%F %T",
	// "%b %e %T", ...). Empty: the forms logtime.Clock knows.
	Timestamp string
	Patterns  []PatternSpec
}

// PatternSpec is one [[parser.pattern]].
type PatternSpec struct {
	Kind     string
	Service  string // default "sip"
	Regex    string
	Examples []string
}

// maxProgram bounds a pattern's compiled size.
const maxProgram = 4000

// addrChars are the only characters the ip group may match: an address,
// possibly with its port ("198.51.100.7:5060", "[2001:db8::1]:5060").
const addrChars = "0123456789abcdefABCDEF:.[]"

// Error is a problem in a Spec, with the pattern (index, -1 for the
// parser) and the field it concerns.
type Error struct {
	Pattern int
	Field   string
	Msg     string
}

func (e *Error) Error() string { return e.Msg }

type pattern struct {
	kind                 parsers.Kind
	service              parsers.Service
	re                   *regexp.Regexp // prefers long matches
	lazy                 *regexp.Regexp // the same, preferring short ones
	ip, port, user, time int
}

// Compiled is a checked Spec: a parser factory.
type Compiled struct {
	name     string
	layout   string // Go layout, "" for logtime.Clock
	patterns []pattern
}

// Compile checks spec and returns every problem found.
func Compile(spec Spec) (*Compiled, error) {
	c := &Compiled{name: spec.Name}
	var errs []error
	fail := func(i int, field, format string, args ...any) {
		errs = append(errs, &Error{Pattern: i, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if spec.Name == "" {
		fail(-1, "name", "missing")
	}
	if spec.Timestamp != "" {
		layout, err := goLayout(spec.Timestamp)
		if err != nil {
			fail(-1, "timestamp", "%v", err)
		}
		c.layout = layout
	}
	if len(spec.Patterns) == 0 {
		fail(-1, "pattern", "at least one [[parser.pattern]] is needed")
	}
	ok := make([]bool, len(spec.Patterns))
	for i, ps := range spec.Patterns {
		p, err := compilePattern(ps)
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				pe.Pattern = i
			}
			errs = append(errs, err)
			continue
		}
		ok[i] = true
		c.patterns = append(c.patterns, p)
	}
	// Every example must be read, with an address, by its own pattern.
	probe := &parser{c: c, clock: parsers.NewClock(parsers.Options{Location: time.UTC, Now: time.Now})}
	n := 0
	for i, ps := range spec.Patterns {
		if len(ps.Examples) == 0 {
			fail(i, "example", "give at least one example line the pattern must match: `sipguard check` tests it")
		}
		if !ok[i] {
			continue
		}
		for _, ex := range ps.Examples {
			var ev parsers.Event
			switch o := probe.parseWith([]byte(ex), &ev, &c.patterns[n]); o {
			case parsers.Matched:
				if probe.elsewhere([]byte(ex), n) {
					fail(i, "example", "example %q is read by a later pattern with its address elsewhere: such lines are dropped", ex)
				}
			case parsers.Ignored:
				fail(i, "example", "example %q does not match the pattern", ex)
			default:
				fail(i, "example", "example %q matches but is dropped (%v)", ex, o)
			}
		}
		n++
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func compilePattern(ps PatternSpec) (pattern, error) {
	var p pattern
	fail := func(field, format string, args ...any) (pattern, error) {
		return pattern{}, &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	k, err := parsers.ParseEventKind(ps.Kind)
	if err != nil {
		return fail("kind", "%v", err)
	}
	p.kind = k
	p.service = parsers.SIP
	if ps.Service != "" {
		found := false
		for s := parsers.SIP; s <= parsers.GUI; s++ {
			if s.String() == ps.Service {
				p.service, found = s, true
			}
		}
		if !found {
			return fail("service", "unknown service %q (sip, pjsip, iax2, ami, gui)", ps.Service)
		}
	}
	tree, err := syntax.Parse(ps.Regex, syntax.Perl)
	if err != nil {
		return fail("regex", "%v", err)
	}
	if !anchored(tree) {
		return fail("regex", "must be anchored at both ends: start with ^ and end with $")
	}
	ips := 0
	if err := walk(tree, false, &ips); err != nil {
		return fail("regex", "%v", err)
	}
	if ips != 1 {
		return fail("regex", "needs exactly one (?P<ip>...) group, found %d", ips)
	}
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil || len(prog.Inst) > maxProgram {
		return fail("regex", "too large")
	}
	p.re = regexp.MustCompile(tree.String())
	lazy := *tree
	flipGreed(&lazy)
	p.lazy = regexp.MustCompile(lazy.String())
	p.ip, p.port, p.user, p.time = p.re.SubexpIndex("ip"), p.re.SubexpIndex("port"), p.re.SubexpIndex("user"), p.re.SubexpIndex("time")
	for _, name := range p.re.SubexpNames() {
		switch name {
		case "", "ip", "port", "user", "time":
		default:
			return fail("regex", "unknown group %q (groups: ip, port, user, time)", name)
		}
	}
	return p, nil
}

// anchored reports whether the pattern begins with ^ and ends with $.
func anchored(re *syntax.Regexp) bool {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return false
	}
	first, last := re.Sub[0].Op, re.Sub[len(re.Sub)-1].Op
	return (first == syntax.OpBeginLine || first == syntax.OpBeginText) &&
		(last == syntax.OpEndLine || last == syntax.OpEndText)
}

// walk checks the ip group: counted, never optional or repeated, matching
// only address characters.
func walk(re *syntax.Regexp, repeated bool, ips *int) error {
	switch re.Op {
	case syntax.OpCapture:
		if re.Name == "ip" {
			*ips++
			if repeated {
				return errors.New("the ip group must not be optional or repeated")
			}
			return addrOnly(re.Sub[0])
		}
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpAlternate:
		repeated = true
	}
	for _, sub := range re.Sub {
		if err := walk(sub, repeated, ips); err != nil {
			return err
		}
	}
	return nil
}

// addrOnly checks that re can match address characters only.
func addrOnly(re *syntax.Regexp) error {
	bad := errors.New(`the ip group may match only address characters (0-9 a-f A-F : . [ ]), e.g. (?P<ip>[0-9a-fA-F:.]+)`)
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if !strings.ContainsRune(addrChars, r) {
				return bad
			}
		}
	case syntax.OpCharClass:
		for i := 0; i < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if !strings.ContainsRune(addrChars, r) {
					return bad
				}
			}
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return bad
	case syntax.OpCapture:
		return errors.New("no group inside the ip group")
	}
	for _, sub := range re.Sub {
		if err := addrOnly(sub); err != nil {
			return err
		}
	}
	return nil
}

// flipGreed turns every greedy repetition lazy and every lazy one greedy.
func flipGreed(re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		re.Flags ^= syntax.NonGreedy
	}
	subs := make([]*syntax.Regexp, len(re.Sub))
	for i, s := range re.Sub {
		c := *s
		flipGreed(&c)
		subs[i] = &c
	}
	re.Sub = subs
}

// Name returns the parser's name.
func (c *Compiled) Name() string { return c.name }

// New makes a parser: a parsers.Factory.
func (c *Compiled) New(opts parsers.Options) (parsers.Parser, error) {
	return &parser{c: c, clock: parsers.NewClock(opts)}, nil
}

type parser struct {
	c     *Compiled
	clock logtime.Clock
}

// Idle reports true: patterns read each line alone (parsers.Resumable).
func (p *parser) Idle() bool { return true }

// Parse tries the patterns in order; the first that matches decides,
// unless a later one also matches with the address elsewhere: attacker
// text made a line of one format look like a line of another, and the
// line reads two ways.
func (p *parser) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	for i := range p.c.patterns {
		o := p.parseWith(line, ev, &p.c.patterns[i])
		if o == parsers.Ignored {
			continue
		}
		if o == parsers.Matched && p.elsewhere(line, i) {
			*ev = parsers.Event{}
			return parsers.DropMalformed
		}
		return o
	}
	return parsers.Ignored
}

// elsewhere reports whether a pattern after the i-th matches line with
// its address at another place than the i-th does.
func (p *parser) elsewhere(line []byte, i int) bool {
	pt := &p.c.patterns[i]
	m := pt.re.FindSubmatchIndex(line)
	for j := i + 1; j < len(p.c.patterns); j++ {
		other := &p.c.patterns[j]
		for _, re := range []*regexp.Regexp{other.re, other.lazy} {
			if o := re.FindSubmatchIndex(line); o != nil && (o[2*other.ip] != m[2*pt.ip] || o[2*other.ip+1] != m[2*pt.ip+1]) {
				return true
			}
		}
	}
	return false
}

func (p *parser) parseWith(line []byte, ev *parsers.Event, pt *pattern) parsers.Outcome {
	m := pt.re.FindSubmatchIndex(line)
	if m == nil {
		return parsers.Ignored
	}
	// The same pattern preferring short matches must place the address at
	// the same spot: otherwise the line reads two ways.
	if l := pt.lazy.FindSubmatchIndex(line); l == nil || l[2*pt.ip] != m[2*pt.ip] || l[2*pt.ip+1] != m[2*pt.ip+1] {
		return parsers.DropMalformed
	}
	*ev = parsers.Event{Kind: pt.kind, Service: pt.service}
	a, ok := parsers.ParseAddr(group(line, m, pt.ip))
	if !ok {
		// An address with its port ("198.51.100.7:5060", "[2001:db8::1]:5060").
		var port uint16
		if a, port, ok = parsers.ParseAddrPort(group(line, m, pt.ip), false); !ok {
			return parsers.DropAddress
		}
		ev.Port = port
	}
	ev.Addr = a
	if pt.port >= 0 && m[2*pt.port] >= 0 {
		n, err := strconv.ParseUint(string(group(line, m, pt.port)), 10, 16)
		if err != nil || n == 0 {
			return parsers.DropMalformed
		}
		ev.Port = uint16(n)
	}
	if pt.user >= 0 && m[2*pt.user] >= 0 {
		u := group(line, m, pt.user)
		if len(u) > 128 {
			u = u[:128]
		}
		ev.User = string(u)
	}
	if pt.time >= 0 && m[2*pt.time] >= 0 {
		t, ok := p.parseTime(group(line, m, pt.time))
		if !ok {
			return parsers.DropTime
		}
		ev.Time = t
	}
	return parsers.Matched
}

func group(line []byte, m []int, i int) []byte { return line[m[2*i]:m[2*i+1]] }

func (p *parser) parseTime(b []byte) (time.Time, bool) {
	if p.c.layout == "" {
		t, n, ok := p.clock.Parse(b)
		return t, ok && n == len(b)
	}
	t, err := time.ParseInLocation(p.c.layout, string(b), p.clock.Location())
	if err != nil {
		return time.Time{}, false
	}
	if t.Year() == 0 {
		// A layout without a year: the clock's rule (current year, or the
		// last one for a date more than a day ahead).
		y, _, _ := p.clock.Parse([]byte(t.Format("Jan _2 15:04:05")))
		t = time.Date(y.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	}
	return t, true
}

// goLayout turns a strftime layout into Go's.
func goLayout(s string) (string, error) {
	tokens := map[byte]string{
		'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'b': "Jan", 'h': "Jan", 'B': "January",
		'a': "Mon", 'A': "Monday", 'H': "15", 'I': "03", 'M': "04", 'S': "05", 'p': "PM",
		'z': "-0700", 'Z': "MST", 'F': "2006-01-02", 'T': "15:04:05", 'f': "999999999", '%': "%",
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("layout ends with %")
		}
		i++
		t, ok := tokens[s[i]]
		if !ok {
			return "", fmt.Errorf("layout: %%%c is not supported (%%Y %%m %%d %%e %%b %%H %%M %%S %%F %%T %%z %%f ...)", s[i])
		}
		b.WriteString(t)
	}
	return b.String(), nil
}
