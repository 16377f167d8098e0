package parsers_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/sipguard/sipguard/parsers"
	_ "github.com/sipguard/sipguard/parsers/asterisk"
)

// TestStreamTimeOfDatelessLines: an event from a line without a date (an
// Asterisk journal copy) takes the time of the source's previous event
// that had one; before any, the time it is read, each time (never the
// first one's: a source of such lines alone would age every later event,
// and its bans would be over before they were made). Lines that give no
// event do not set the time.
func TestStreamTimeOfDatelessLines(t *testing.T) {
	clock := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st, err := parsers.NewStream("pbx", "asterisk", parsers.Options{Location: time.UTC, Now: func() time.Time { return clock }}, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	const (
		dateless = "NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '<sip:100@192.0.2.1>' failed for '198.51.100.7:5060' - Wrong password"
		dated    = "[2026-12-02 09:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:100@192.0.2.1>' failed for '198.51.100.8:5060' - Wrong password"
		verbose  = "[2026-12-02 09:30:00] VERBOSE[1] pbx.c: Executing [s@default:1] Answer"
	)
	var n int64
	line := func(text string, advance time.Duration) (time.Time, bool) {
		t.Helper()
		clock = clock.Add(advance)
		n++
		var ev parsers.Event
		if !st.Line([]byte(text), n, &ev) {
			return time.Time{}, false
		}
		if ev.Source != "pbx" || ev.Parser != "asterisk" || ev.Line != n {
			t.Errorf("line %d: source %q, parser %q, line %d", n, ev.Source, ev.Parser, ev.Line)
		}
		return ev.Time, true
	}
	steps := []struct {
		text    string
		advance time.Duration
		want    time.Time // zero: no event
	}{
		{dateless, 0, clock},                        // nothing dated yet: now
		{dateless, time.Hour, clock.Add(time.Hour)}, // still nothing dated: now again
		{dated, time.Minute, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)},
		{dateless, time.Hour, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}, // the dated event's
		{verbose, 0, time.Time{}},                                           // no event: time unchanged
		{dateless, 0, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)},
	}
	for i, s := range steps {
		got, ok := line(s.text, s.advance)
		if ok != !s.want.IsZero() || !got.Equal(s.want) {
			t.Errorf("step %d: event %v at %v; want %v at %v", i, ok, got, !s.want.IsZero(), s.want)
		}
	}
	// A stream continued (offline replay, the next piece of the log)
	// keeps the time; counts are its own.
	next := st.Continue()
	var ev parsers.Event
	if !next.Line([]byte(dateless), n+1, &ev) || !ev.Time.Equal(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("continued stream: time %v; want the dated event's", ev.Time)
	}
	if c, d := st.Counts(), next.Counts(); c.Lines != 6 || c.Events != 5 || d.Lines != 1 || d.Events != 1 {
		t.Errorf("counts %+v and %+v; want 6 lines, 5 events and 1, 1", c, d)
	}
}

// TestStreamUncounted: lines read with Uncounted count, events and drops
// too, once AddLines adds them, as Line counts them at once.
func TestStreamUncounted(t *testing.T) {
	lines := []string{
		"[2026-12-02 09:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:100@192.0.2.1>' failed for '198.51.100.8:5060' - Wrong password",
		"[2026-12-02 09:00:01] VERBOSE[1] pbx.c: Executing [s@default:1] Answer",
		"[2026-12-02 09:00:02] NOTICE[1] chan_sip.c: Registration from '<sip:100@192.0.2.1>' failed for 'pbx.example:5060' - Wrong password",
		`[2026-12-02 09:00:03] SECURITY[1] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="2026-12-02T09:00:03.000+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="113",SessionID="x",LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/198.51.100.9/5060",UsingPassword="1"`,
	}
	opts := parsers.Options{Location: time.UTC}
	counted, err := parsers.NewStream("pbx", "asterisk", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	uncounted, err := parsers.NewStream("pbx", "asterisk", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		var a, b parsers.Event
		if counted.Line([]byte(l), int64(i+1), &a) != uncounted.Uncounted([]byte(l), int64(i+1), &b) || a != b {
			t.Fatalf("line %d: Line and Uncounted differ: %+v, %+v", i+1, a, b)
		}
	}
	if c := uncounted.Counts(); c.Lines != 0 || c.Events != 0 || c.Successes != 0 || c.Dropped != 0 {
		t.Errorf("before AddLines: %+v; want nothing counted", c)
	}
	uncounted.AddLines(int64(len(lines)))
	want := counted.Counts()
	if want.Lines != 4 || want.Events != 1 || want.Successes != 1 || want.Dropped != 1 {
		t.Fatalf("Line counted %+v; want 4 lines, 1 event, 1 success, 1 dropped", want)
	}
	if got := uncounted.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("after AddLines: %+v; want %+v", got, want)
	}
}
