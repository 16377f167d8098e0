package threecx_test

import (
	"flag"
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func newParser(t testing.TB) parsers.Parser {
	t.Helper()
	p, err := parsers.New("3cx", parsers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGolden compares each testdata/*.log line's outcome with
// testdata/*.golden ("go test -update" rewrites them; review the diff).
func TestGolden(t *testing.T) { parsertest.Golden(t, newParser, *update) }

// TestNeverAnEvent: the [CM102001] lines, whose addresses are SIP header
// text, are counted and never become events.
func TestNeverAnEvent(t *testing.T) {
	p := newParser(t)
	_, lines := parsertest.Lines(t, "testdata/3cx.log")
	dropped := 0
	for _, l := range lines {
		var ev parsers.Event
		switch o := p.Parse(l, &ev); {
		case o == parsers.Matched:
			t.Errorf("%q: matched %v; 3CX lines carry no packet source", l, ev.Addr)
		case o == parsers.DropAddress:
			dropped++
		}
	}
	if dropped != 4 {
		t.Errorf("%d [CM102001] lines counted; want 4", dropped)
	}
}
