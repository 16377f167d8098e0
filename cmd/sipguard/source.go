package main

import (
	"time"

	"github.com/sipguard/sipguard/parsers"
)

// sourceCounts counts what became of the lines of one source.
type sourceCounts struct {
	Lines   int64
	Events  int64
	drops   [16]int64 // by parsers.Outcome
	tooLong int64     // lines over the line reader's limit
	byKind  [16]int64 // events by parsers.Kind
}

// Dropped returns the dropped lines by reason: the parsers' reasons and
// "too_long".
func (c *sourceCounts) Dropped() map[string]int64 {
	m := map[string]int64{"too_long": c.tooLong}
	for _, o := range parsers.DropOutcomes() {
		m[o.String()] = c.drops[o]
	}
	return m
}

// dropped returns the total of dropped lines.
func (c *sourceCounts) dropped() int64 {
	n := c.tooLong
	for _, d := range c.drops {
		n += d
	}
	return n
}

// lineSource turns the lines of one log into events: it runs the source's
// parser, stamps events with the source's name and line numbers, gives
// lines without a timestamp a time, and counts everything.
type lineSource struct {
	name       string
	parserName string
	parser     parsers.Parser
	now        func() time.Time
	last       time.Time // time of the last event that had one
	counts     sourceCounts
}

func newLineSource(name, parserName string, opts parsers.Options, now func() time.Time) (*lineSource, error) {
	p, err := parsers.New(parserName, opts)
	if err != nil {
		return nil, err
	}
	return &lineSource{name: name, parserName: parserName, parser: p, now: now}, nil
}

// line parses one line and reports whether it produced an event in ev.
// An event from a line without a timestamp (journal copies) takes the time
// of the previous event of the source that had one, or now.
func (s *lineSource) line(line []byte, num int64, ev *parsers.Event) bool {
	s.counts.Lines++
	out := s.parser.Parse(line, ev)
	if out != parsers.Matched {
		if out.Dropped() {
			s.counts.drops[out]++
		}
		return false
	}
	if ev.Time.IsZero() {
		if s.last.IsZero() {
			s.last = s.now()
		}
		ev.Time = s.last
	} else {
		s.last = ev.Time
	}
	ev.Parser, ev.Source, ev.Line = s.parserName, s.name, num
	s.counts.Events++
	s.counts.byKind[ev.Kind]++
	return true
}
