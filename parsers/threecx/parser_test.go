package threecx_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/parsertest"
	"github.com/sipguard/sipguard/parsers"
)

var newParser = parsertest.New("3cx", parsertest.Now)

func TestTestdata(t *testing.T) { parsertest.Testdata(t, newParser, 0, nil) }

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
