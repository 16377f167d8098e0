package parsertest

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/parsers"
)

func TestGen(t *testing.T) {
	for _, g := range []*Gen{Seeded(1), FromBytes([]byte{255, 7, 0, 1, 2, 3, 200, 100, 50})} {
		for _, n := range []int{1, 2, 7, 255, 256, 300, 70000} {
			for range 20 {
				if v := g.Intn(n); v < 0 || v >= n {
					t.Fatalf("Intn(%d) = %d", n, v)
				}
			}
		}
	}
	g := FromBytes([]byte{3})
	if v := g.Intn(10); v != 3 {
		t.Errorf("Intn(10) from byte 3 = %d", v)
	}
	if v := g.Intn(10); v != 0 {
		t.Errorf("Intn once the bytes are used up = %d; want the first choice", v)
	}
}

func TestAddrText(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:198.51.100.7")
	for _, c := range []struct {
		a    netip.Addr
		f    AddrForm
		want string
	}{
		{v4, Bare, "198.51.100.7"},
		{v4, WithPort, "198.51.100.7:5060"},
		{v6, WithPort, "[2001:db8::1]:5060"},
		{v6, V6Port, "2001:db8::1:5060"},
		{v6, SecurityLog, "IPV6/UDP/2001:db8::1/5060"},
		{mapped, WithPort, "[::ffff:198.51.100.7]:5060"},
		{mapped, SecurityLog, "IPV4/UDP/198.51.100.7/5060"},
	} {
		if got := AddrText(c.a, 5060, c.f); got != c.want {
			t.Errorf("AddrText(%v, %d) = %q; want %q", c.a, c.f, got, c.want)
		}
	}
}

// TestFieldClean: a field keeps only what the PBX writes of it.
func TestFieldClean(t *testing.T) {
	f := Field{Max: 5}
	if got := f.clean("a\r\nb\x00cdefg"); got != "abcde" {
		t.Errorf("header field: %q", got)
	}
	f = Field{Newlines: true}
	if got := f.clean("a\r\nb\x00c"); got != "a\r\nbc" {
		t.Errorf("raw field: %q", got)
	}
}

// firstAddr is a careless parser: the first IPv4 address in a line
// (lines without one are dropped).
type firstAddr struct{}

func (firstAddr) Parse(line []byte, ev *parsers.Event) parsers.Outcome {
	m := ipv4.Find(line)
	if m == nil {
		return parsers.DropAddress
	}
	a, ok := parsers.ParseAddr(m)
	if !ok {
		return parsers.DropAddress
	}
	*ev = parsers.Event{Addr: a, Kind: parsers.AuthFailed, Service: parsers.SIP}
	return parsers.Matched
}

var ipv4 = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+`)

// silent is a parser that reads nothing and counts nothing.
type silent struct{}

func (silent) Parse([]byte, *parsers.Event) parsers.Outcome { return parsers.Ignored }

// TestViolationFound: the property fails careless parsers, so the
// generators' passes mean something.
func TestViolationFound(t *testing.T) {
	for _, c := range []struct {
		p    parsers.Parser
		want string
	}{
		{firstAddr{}, "made an event for"},
		{silent{}, "neither an event nor counted"},
	} {
		gr := Generator{New: func(testing.TB) parsers.Parser { return c.p }}
		g := Seeded(1)
		found := ""
		for range 1000 {
			if _, v := gr.Violation(t, g.AsteriskCase(AsteriskOptions{})); v != "" {
				found = v
				break
			}
		}
		if !strings.Contains(found, c.want) {
			t.Errorf("%T: violation %q; want one about %q", c.p, found, c.want)
		}
	}
}
