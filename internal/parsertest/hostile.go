package parsertest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

// Hostile line generators.
//
// A generator writes what a PBX writes about one packet: a message made
// from the PBX's own format string, whose attacker-written fields (user
// names, From and To headers, Call-IDs, extensions, user agents, ...) are
// filled with hostile material (addresses, among them the victim's, copies
// of the text around the address, quotes, the format's own delimiters,
// escaped and raw newlines, over-long values), while the generator knows
// the packet's true source address. The property every parser must keep:
// an event's address is the true one, or there is no event, and then the
// line that starts the message is counted as dropped (see Generator).

// Gen makes a generator's choices: from a fixed-seed random source in
// ordinary tests, from the fuzzer's bytes in fuzz targets, so that the
// fuzzer steers every choice and minimises what it finds.
type Gen struct {
	data []byte
	rng  *rand.Rand
}

// Seeded returns a Gen driven by a fixed seed.
func Seeded(seed uint64) *Gen { return &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

// FromBytes returns a Gen driven by b; once b is used up every choice is
// the first one.
func FromBytes(b []byte) *Gen { return &Gen{data: b} }

// Intn returns a choice in [0, n).
func (g *Gen) Intn(n int) int {
	if n <= 1 {
		return 0
	}
	if g.rng != nil {
		return g.rng.IntN(n)
	}
	v := 0
	for m := 1; m < n && len(g.data) > 0; m <<= 8 {
		v = v<<8 | int(g.data[0])
		g.data = g.data[1:]
	}
	return v % n
}

// OneIn reports true with a chance of one in n.
func (g *Gen) OneIn(n int) bool { return g.Intn(n) == 0 }

// Pick returns one of xs.
func Pick[T any](g *Gen, xs ...T) T { return xs[g.Intn(len(xs))] }

// Port returns a source port.
func (g *Gen) Port() uint16 {
	return Pick[uint16](g, 5060, 5061, 4569, 1024, 65535, uint16(1+g.Intn(65535)))
}

// victimAddrs are addresses an attacker wants banned: the IPv4 ones are
// in Victims, the IPv6 ones in 2001:db8:dead::/48.
var victimAddrs = []netip.Addr{
	netip.MustParseAddr("203.0.113.66"),
	netip.MustParseAddr("203.0.113.10"), // the PBX's own address in the testdata
	netip.MustParseAddr("2001:db8:dead::66"),
	netip.MustParseAddr("::ffff:203.0.113.67"),
}

// Victim returns an address an attacker wants banned.
func (g *Gen) Victim() netip.Addr { return Pick(g, victimAddrs...) }

// Source returns a packet's true source address. It may be IPv4-mapped
// (pjsip prints those as they are); its event must carry it unmapped.
func (g *Gen) Source() netip.Addr {
	return Pick(g,
		netip.MustParseAddr("198.51.100.7"),
		netip.MustParseAddr("198.51.100.254"),
		netip.MustParseAddr("2001:db8:bad::66"),
		netip.MustParseAddr("2001:db8:bad:1:2:3:4:5"),
		netip.MustParseAddr("::ffff:198.51.100.9"),
	)
}

// Source4 returns an IPv4 source address (formats that print only IPv4).
func (g *Gen) Source4() netip.Addr {
	return Pick(g, netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.254"))
}

// AddrForm is how a PBX prints an address.
type AddrForm int

// Address forms.
const (
	Bare        AddrForm = iota // 198.51.100.7, 2001:db8::1 (ast_sockaddr_stringify_addr)
	WithPort                    // 198.51.100.7:5060, [2001:db8::1]:5060 (ast_sockaddr_stringify, pj_sockaddr_print)
	V6Port                      // 198.51.100.7:5060, 2001:db8::1:5060 (pjsip's "%s:%d" before 13.24)
	SecurityLog                 // IPV4/UDP/198.51.100.7/5060 (ast_json_ipaddr)
)

// AddrText prints a with port in form f.
func AddrText(a netip.Addr, port uint16, f AddrForm) string {
	p := strconv.Itoa(int(port))
	switch f {
	case WithPort:
		if a.Is6() {
			return "[" + a.String() + "]:" + p
		}
		return a.String() + ":" + p
	case V6Port:
		return a.String() + ":" + p
	case SecurityLog:
		fam := "IPV4"
		if a.Is6() && !a.Is4In6() {
			fam = "IPV6"
		}
		return fam + "/UDP/" + a.Unmap().String() + "/" + p
	}
	return a.String()
}

// A Piece is text of a format that names an address.
type Piece func(a netip.Addr) string

// Frame returns the text before, then an address and its port 5060 in
// form, then after: the frame of an address in some format.
func Frame(before string, form AddrForm, after string) Piece {
	return func(a netip.Addr) string { return before + AddrText(a, 5060, form) + after }
}

// Fixed returns s whatever the address: fixed text of a format.
func Fixed(s string) Piece { return func(netip.Addr) string { return s } }

// Field says what an attacker can write into one field of a format and
// what the PBX does with it.
type Field struct {
	// Frames are the format's own texts around its address, with the
	// address filled in: copies of them in a field try to move the
	// address.
	Frames []Piece
	// Lines are whole log lines the PBX could write, naming a: what a
	// raw newline lets an attacker forge.
	Lines []Piece
	// Newlines: the PBX writes the field's newlines as they are (decoded
	// URIs, raw IAX2 elements, typed form fields). Otherwise CR and LF
	// never reach it (SIP headers cannot hold them).
	Newlines bool
	// Keep, when set, is the bytes the field can hold at all; the others
	// are left out.
	Keep func(c byte) bool
	// Max is the most bytes the PBX writes of the field (0: no limit).
	Max int
}

// plain is ordinary field content.
var plain = []string{
	"100", "admin", "1001", "sip:100@pbx.example.com", "<sip:100@203.0.113.10>", `"100" <sip:100@203.0.113.10>;tag=as1`,
	"friendly-scanner", "' or 1=1--", "", "anonymous", "+442079460000", "a84b4c76e66710@pc33", "sipvicious",
}

// delims are characters that delimit fields in some log format.
var delims = []string{"'", `"`, "(", ")", "[", "]", "<", ">", ":", ";", ",", "=", "@", "/", `\`, " ", "\t", "' - ", ": ", " - ", "{", "}", "%"}

// escapes are newlines as some layer escapes them, and other control bytes.
var escapes = []string{"%0A", "%0d%0a", `\n`, `\r\n`, "#012", `\012`, "&#10;", "\x1b[0;31m", "\x00", "\x7f", "\xff\xfe", "é", "\u202e"}

// Text returns hostile content for f: pieces of ordinary text, addresses
// (mostly victims', sometimes the true source a: an attacker may quote its
// own), f's frames around them, delimiters, escapes, newlines with forged
// lines after them, over-long runs; then what the PBX does to the field
// (f.clean).
func (g *Gen) Text(f Field, a netip.Addr) string {
	var b strings.Builder
	for range g.Intn(7) {
		switch g.Intn(10) {
		case 0, 1:
			b.WriteString(Pick(g, plain...))
		case 2:
			x := Pick(g, g.Victim(), a, g.Victim())
			b.WriteString(AddrText(x, g.Port(), AddrForm(g.Intn(4))))
		case 3, 4:
			if len(f.Frames) > 0 {
				b.WriteString(Pick(g, f.Frames...)(Pick(g, g.Victim(), a, g.Victim())))
			}
		case 5:
			b.WriteString(Pick(g, delims...))
		case 6:
			b.WriteString(Pick(g, escapes...))
		case 7:
			nl := Pick(g, "\n", "\r\n", "\r")
			if len(f.Lines) > 0 && g.OneIn(2) {
				b.WriteString(nl + Pick(g, f.Lines...)(g.Victim()) + Pick(g, "\n", "\r\n", ""))
			} else {
				b.WriteString(nl)
			}
		case 8:
			unit := Pick(g, "A", "%41", "' ", "1.2.3.4:5060 ", `",`, "(x) ")
			n := Pick(g, 64, 250, 1000, 3000)
			if f.Max > 0 {
				n = min(n, f.Max) // no need to write what the PBX cuts
			}
			b.WriteString(strings.Repeat(unit, n))
		case 9:
			b.WriteString(strconv.Itoa(g.Intn(100000)))
		}
	}
	return f.clean(b.String())
}

// clean keeps what f can hold.
func (f Field) clean(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || !f.Newlines && (c == '\n' || c == '\r') || f.Keep != nil && !f.Keep(c) {
			continue
		}
		out = append(out, c)
	}
	if f.Max > 0 && len(out) > f.Max {
		out = out[:f.Max]
	}
	return string(out)
}

// A Case is one message a PBX wrote about one packet, as its log holds it.
type Case struct {
	// Name is the message's template, for the test's counts.
	Name string
	// Text is the message. Raw newlines in it split it into several
	// physical lines, which the parser reads one by one.
	Text string
	// Addr is the packet's true source address.
	Addr netip.Addr
	// Ignorable: the message is no failure (a successful login, a line
	// that carries no packet address): the parser may ignore it rather
	// than count it. An event from it must still have Addr.
	Ignorable bool
	// NoEvent: the message must make no event at all (its only addresses
	// are client-written).
	NoEvent bool
}

// A Generator checks a parser against the lines a generator writes.
type Generator struct {
	New  func(testing.TB) parsers.Parser
	Case func(*Gen) Case
	// MayIgnore: a message's first line need not be counted when the
	// parser does not read it. Only for parsers that cannot tell a failure
	// line they do not read from any other line (custom patterns).
	MayIgnore bool
}

// Result is what became of one Case.
type Result struct {
	First   parsers.Outcome // the outcome of its first physical line
	Matched bool            // some line made an event (with the true address)
}

// Check parses c's physical lines with a new parser and fails t unless
// every event has c's address and the first line either makes an event or
// is counted as dropped (see Violation).
func (gr Generator) Check(t testing.TB, c Case) Result {
	t.Helper()
	r, v := gr.Violation(t, c)
	if v != "" {
		t.Fatalf("%s: %s:\n%s", c.Name, v, Show(c.Text))
	}
	return r
}

// Violation parses c's physical lines with a new parser and says how the
// parser broke the property, if it did: an event whose address is not
// c's, or a first line neither read nor counted as dropped.
func (gr Generator) Violation(t testing.TB, c Case) (Result, string) {
	return gr.violation(t, gr.New(t), c)
}

// violation is Violation with the parser p, which may have read other
// cases before.
func (gr Generator) violation(t testing.TB, p parsers.Parser, c Case) (Result, string) {
	want := c.Addr.Unmap()
	var r Result
	for i, line := range strings.Split(c.Text, "\n") {
		var ev parsers.Event
		o := p.Parse([]byte(line), &ev)
		if i == 0 {
			r.First = o
		}
		if o != parsers.Matched {
			continue
		}
		if c.NoEvent {
			return r, fmt.Sprintf("line %d made an event (%v)", i+1, ev.Addr)
		}
		CheckEvent(t, []byte(line), &ev)
		if ev.Addr != want {
			return r, fmt.Sprintf("line %d made an event for %v, the packet came from %v", i+1, ev.Addr, want)
		}
		r.Matched = true
	}
	if r.First != parsers.Matched && !r.First.Dropped() && !gr.MayIgnore && !c.Ignorable {
		return r, fmt.Sprintf("the message's first line was %v, neither an event nor counted as dropped", r.First)
	}
	return r, ""
}

// Test checks n cases made from a fixed seed, each with a new parser and
// again all with one parser, as a source reads them (parsers keep state
// between lines). A generator whose lines are all dropped proves nothing:
// it fails unless every template made an event at least once (or was
// always counted as dropped: a form the parser never trusts) and half the
// cases made one. It logs what became of the lines.
func (gr Generator) Test(t *testing.T, n int) {
	g := Seeded(19)
	stream := gr.New(t)
	type count struct {
		cases, matched, dropped int
		noEvent                 bool
	}
	counts := map[string]*count{}
	outcomes := map[parsers.Outcome]int{}
	for range n {
		c := gr.Case(g)
		r := gr.Check(t, c)
		if _, v := gr.violation(t, stream, c); v != "" {
			t.Fatalf("%s, read after the cases before it: %s:\n%s", c.Name, v, Show(c.Text))
		}
		if t.Failed() {
			return
		}
		k := counts[c.Name]
		if k == nil {
			k = &count{}
			counts[c.Name] = k
		}
		k.cases++
		k.noEvent = c.NoEvent
		if r.Matched {
			k.matched++
		}
		if r.First.Dropped() {
			k.dropped++
		}
		outcomes[r.First]++
	}
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	sort.Strings(names)
	var sum strings.Builder
	readable, matched := 0, 0
	for _, name := range names {
		k := counts[name]
		fmt.Fprintf(&sum, " %s %d/%d", name, k.matched, k.cases)
		switch {
		case k.noEvent:
			continue
		case k.matched == 0 && k.dropped == k.cases:
			// A message the parser never trusts in this form (counted).
			t.Logf("template %s: never read, every line counted as dropped", name)
		case k.matched == 0:
			t.Errorf("template %s: no event in %d cases; the generator proves nothing", name, k.cases)
		}
		readable, matched = readable+k.cases, matched+k.matched
	}
	if matched < readable/2 {
		t.Errorf("events from %d of %d cases: the generator's lines are mostly dropped and prove little", matched, readable)
	}
	t.Logf("events per template (matched/cases):%s", sum.String())
	t.Logf("first lines: %v", outcomes)
}

// Fuzz is the body of a FuzzHostile target: the fuzzer's bytes drive the
// generator's choices. Seeds: byte strings from a fixed random source.
func (gr Generator) Fuzz(f *testing.F) {
	r := rand.New(rand.NewPCG(19, 13))
	for range 32 {
		b := make([]byte, 8+r.IntN(56))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		gr.Check(t, gr.Case(FromBytes(data)))
	})
}

// Show quotes s for a failure message, its middle left out when it is long.
func Show(s string) string {
	const keep = 400
	if len(s) <= 2*keep {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q ...(%d bytes)... %q", s[:keep], len(s)-2*keep, s[len(s)-keep:])
}
