package parsers

import (
	"sync/atomic"
	"time"
)

// Stream runs a Parser over the lines of one source, in order: it stamps
// each event with the source's name, parser name and line number, gives
// events from lines without a timestamp a time, and counts what became of
// every line. Line is called from one goroutine; Counts from any.
type Stream struct {
	source  string
	name    string
	parser  Parser
	ignorer Ignorer // the parser, when it is one
	now     func() time.Time
	last    time.Time // time of the last event that had one

	lines, events, successes, tooLong atomic.Int64
	drops                             [numOutcomes]atomic.Int64
	kinds                             [AuthSucceeded + 1]atomic.Int64

	// pending is what Uncounted read since the last AddLines, counted
	// without atomic operations by the one goroutine that reads lines.
	pending tally
}

// tally counts what became of lines.
type tally struct {
	events, successes int64
	drops             [numOutcomes]int64
	kinds             [AuthSucceeded + 1]int64
}

// NewStream makes the parser registered as parserName for source. now is
// the clock (nil: time.Now).
func NewStream(source, parserName string, opts Options, now func() time.Time) (*Stream, error) {
	return NewStreamFrom(source, parserName, func(o Options) (Parser, error) { return New(parserName, o) }, opts, now)
}

// NewStreamFrom is NewStream with the parser made by f (a parser that is
// not registered, such as a config's custom one).
func NewStreamFrom(source, parserName string, f Factory, opts Options, now func() time.Time) (*Stream, error) {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p, err := f(opts)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	ignorer, _ := p.(Ignorer)
	return &Stream{source: source, name: parserName, parser: p, ignorer: ignorer, now: now}, nil
}

// Source returns the source's name.
func (s *Stream) Source() string { return s.source }

// Parser returns the parser's name.
func (s *Stream) Parser() string { return s.name }

// Line parses one line (numbered num) and reports whether it gave an event
// in ev. An event from a line without a timestamp (a journal copy) takes
// the time of the source's previous event that had one, or else now: now
// each time, for a source of such lines alone would otherwise date every
// event at its first, and the engine would take its bans as over.
func (s *Stream) Line(line []byte, num int64, ev *Event) bool {
	ok := s.Uncounted(line, num, ev)
	s.AddLines(1)
	return ok
}

// Uncounted is Line for a caller that counts its lines itself and adds
// them with AddLines: offline replay parses a million lines a second per
// core, where an atomic add per line shows. What became of the lines
// (events, drops) is counted when AddLines adds them, too.
func (s *Stream) Uncounted(line []byte, num int64, ev *Event) bool {
	if s.ignorer != nil && s.ignorer.Ignores(line) {
		return false
	}
	out := s.read(line, num, ev)
	t := &s.pending
	switch {
	case out == Matched && ev.Kind.Failure():
		t.events++
	case out == Matched:
		t.successes++
	case out.Dropped():
		t.drops[out]++
	}
	if out == Matched && int(ev.Kind) < len(t.kinds) {
		t.kinds[ev.Kind]++
	}
	return out == Matched
}

// read parses one line and, when it gives an event, completes it (see
// Line).
func (s *Stream) read(line []byte, num int64, ev *Event) Outcome {
	out := s.parser.Parse(line, ev)
	if out != Matched {
		return out
	}
	switch {
	case ev.Time.IsZero() && s.last.IsZero():
		ev.Time = s.now()
	case ev.Time.IsZero():
		ev.Time = s.last
	default:
		s.last = ev.Time
	}
	ev.Parser, ev.Source, ev.Line = s.name, s.source, num
	return Matched
}

// Resumable is a Parser that can tell when it holds nothing from the lines
// it has read (a message broken into several lines, a line waiting for the
// next one, a distrust learnt from the stream): then a new Parser reads the
// rest of the stream exactly as it would. Caches that only speed parsing
// up do not count. Offline replay parses pieces of a log at once on several
// cores, and keeps a piece's events only when the parser before it ended
// idle (package replay); parsers that are not Resumable are read in order.
type Resumable interface {
	Parser
	Idle() bool
}

// Idle reports whether the stream's parser holds nothing from the lines
// read so far (see Resumable); false for a parser that cannot tell.
func (s *Stream) Idle() bool {
	r, ok := s.parser.(Resumable)
	return ok && r.Idle()
}

// Resumes reports whether the stream's parser can tell when it is idle.
func (s *Stream) Resumes() bool {
	_, ok := s.parser.(Resumable)
	return ok
}

// Continue returns a stream that goes on with s's parser, in the state
// s's lines left it, and with s's time for lines without one, but with its
// own counters: the lines read through it are counted apart.
func (s *Stream) Continue() *Stream {
	return &Stream{source: s.source, name: s.name, parser: s.parser, ignorer: s.ignorer, now: s.now, last: s.last}
}

// AddLines counts n lines read with Uncounted, and what became of the
// lines Uncounted read since the last call.
func (s *Stream) AddLines(n int64) {
	s.lines.Add(n)
	t := &s.pending
	s.events.Add(t.events)
	s.successes.Add(t.successes)
	for o, n := range t.drops {
		if n != 0 {
			s.drops[o].Add(n)
		}
	}
	for k, n := range t.kinds {
		if n != 0 {
			s.kinds[k].Add(n)
		}
	}
	*t = tally{}
}

// TooLong counts n lines skipped for their length before parsing.
func (s *Stream) TooLong(n int64) {
	s.lines.Add(n)
	s.tooLong.Add(n)
}

// Counts is what became of a stream's lines.
type Counts struct {
	Lines     int64            `json:"lines"`
	Events    int64            `json:"events"`    // failures
	Successes int64            `json:"successes"` // auth_succeeded events
	Dropped   int64            `json:"dropped"`
	DropBy    map[string]int64 `json:"dropped_by_reason"` // every reason, and "too_long"
	ByKind    map[string]int64 `json:"events_by_kind"`
}

// Counts returns the stream's counters.
func (s *Stream) Counts() Counts {
	c := Counts{
		Lines: s.lines.Load(), Events: s.events.Load(), Successes: s.successes.Load(),
		DropBy: map[string]int64{"too_long": s.tooLong.Load()},
		ByKind: map[string]int64{},
	}
	c.Dropped = c.DropBy["too_long"]
	for _, o := range DropOutcomes() {
		n := s.drops[o].Load()
		c.DropBy[o.String()] = n
		c.Dropped += n
	}
	for _, k := range append(Kinds(), AuthSucceeded) {
		c.ByKind[k.String()] = s.kinds[k].Load()
	}
	return c
}

// Add sums counts.
func (c *Counts) Add(o Counts) {
	c.Lines += o.Lines
	c.Events += o.Events
	c.Successes += o.Successes
	c.Dropped += o.Dropped
	if c.DropBy == nil {
		c.DropBy, c.ByKind = map[string]int64{}, map[string]int64{}
	}
	for k, v := range o.DropBy {
		c.DropBy[k] += v
	}
	for k, v := range o.ByKind {
		c.ByKind[k] += v
	}
}
