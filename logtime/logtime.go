// Package logtime owns the reading of the timestamps log lines start with:
// the one reader behind the parsers, which turn them into times (Clock,
// Cache), and behind syslogd, which checks a message's timestamp and writes
// it again (ReadSyslog, Stamp.AppendBSD).
//
// It knows two families of forms: ISO dates ("2026-11-26 10:00:00",
// RFC 3339) and the BSD syslog date without a year ("Nov 26 10:00:00").
// Every field is checked (Feb 30 is refused, not read as Mar 2) and no date
// before 1970 is accepted: no log predates Unix time, and year 1 would be
// the zero time, which means "no time" everywhere else.
//
// It imports only the standard library, as the parsers do.
package logtime

import (
	"encoding/binary"
	"time"
)

// Clock turns the timestamps printed in log lines into times. It fills in
// what a line leaves out: the zone (its Location) and the year.
//
// A date without a year gets the current year, or the previous one when the
// current year would put it more than a day in the future: a December line
// read in January belongs to last year.
type Clock struct {
	loc *time.Location
	now func() time.Time
}

// NewClock returns the Clock that gives timestamps without a zone the zone
// loc (nil: time.Local) and takes the current year from now (nil:
// time.Now).
func NewClock(loc *time.Location, now func() time.Time) Clock {
	if loc == nil {
		loc = time.Local
	}
	if now == nil {
		now = time.Now
	}
	return Clock{loc: loc, now: now}
}

// Location returns the zone used for timestamps without one.
func (c Clock) Location() *time.Location { return c.loc }

// Parse reads a timestamp at the start of b, in one of the forms Read
// knows, and returns its time with the number of bytes it used.
func (c Clock) Parse(b []byte) (time.Time, int, bool) {
	var s Stamp
	n := s.read(b, false)
	if n == 0 {
		return time.Time{}, 0, false
	}
	t, ok := c.place(&s)
	return t, n, ok
}

// place places s in time: in its zone or the Clock's Location, in its year
// or the one the Clock infers.
func (c Clock) place(s *Stamp) (time.Time, bool) {
	loc := c.loc
	switch s.zone {
	case 'Z':
		loc = time.UTC
	case '+':
		loc = fixedZone(s.offset)
	}
	if !s.BSD() {
		return makeTime(s.year, s, loc)
	}
	now := c.now().In(loc)
	t, ok := makeTime(now.Year(), s, loc)
	// Feb 29 outside a leap year belongs to the last leap year.
	for y := now.Year() - 1; !ok && y >= now.Year()-4; y-- {
		t, ok = makeTime(y, s, loc)
	}
	if !ok {
		return time.Time{}, false
	}
	if t.After(now.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t, true
}

// makeTime builds the time of s in year, refusing a date time.Date would
// normalise (Feb 29 outside a leap year is an error, not Mar 1).
func makeTime(year int, s *Stamp, loc *time.Location) (time.Time, bool) {
	if year < 1970 {
		return time.Time{}, false
	}
	ss := s.second
	if ss == 60 { // leap second as printed by some syslog daemons
		ss = 59
	}
	t := time.Date(year, time.Month(s.month), s.day, s.hour, s.minute, ss, s.nsec, loc)
	if t.Day() != s.day {
		return time.Time{}, false
	}
	return t, true
}

var utcZone = time.FixedZone("", 0)

func fixedZone(off int) *time.Location {
	if off == 0 {
		return utcZone
	}
	return time.FixedZone("", off)
}

// Cache reads whole timestamps with a Clock and remembers the last text
// it read and its time: consecutive lines of a log mostly share the second
// they were written in, and else the minute. A Cache belongs to one stream
// of lines.
type Cache struct {
	Clock Clock

	text []byte
	time time.Time

	// minute is the last dated stamp read, without its seconds, and
	// minuteTime its time, when its zone has had one offset forever (UTC,
	// a fixed offset): the stamps of that minute are that time and their
	// seconds. Placing a stamp in a zone costs more than reading it.
	minute     Stamp
	minuteTime time.Time
	// plain: text is "YYYY-MM-DD hh:mm:ss" (an ISO date without fraction
	// or zone, 19 bytes) in minute. A stamp that differs from it in its
	// seconds alone is then minuteTime and its seconds, without reading
	// it again: most lines of a log are in the minute of the line before.
	plain bool
}

// plainLen is the length of "YYYY-MM-DD hh:mm:ss"; the seconds are its
// last two bytes, 17 and 18.
const plainLen = 19

// sameMinute reports whether two plain stamps have the same first 17
// bytes, up to the seconds: compared in two words and a byte, where a
// comparison of strings calls memequal.
func sameMinute(a, b []byte) bool {
	return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) &&
		binary.LittleEndian.Uint64(a[8:]) == binary.LittleEndian.Uint64(b[8:]) && a[16] == b[16]
}

// Parse reads b, which must hold a timestamp and nothing else, and returns
// its time.
func (c *Cache) Parse(b []byte) (time.Time, bool) {
	if c.plain && len(b) == plainLen && sameMinute(b, c.text) {
		if b[17] == c.text[17] && b[18] == c.text[18] {
			return c.time, true // text itself
		}
		// Read, b would be the Stamp of text but for its second, which
		// place takes from minuteTime. A leap second (60) and seconds
		// that are no number go the long way, to be read or refused.
		if sec := two(b[17:]); uint(sec) <= 59 {
			c.time = c.minuteTime.Add(time.Duration(sec) * time.Second)
			c.text[17], c.text[18] = b[17], b[18]
			return c.time, true
		}
	} else if len(b) > 0 && string(b) == string(c.text) {
		return c.time, true
	}
	var s Stamp
	n := s.read(b, false)
	if n == 0 || n != len(b) {
		return time.Time{}, false
	}
	t, ok := c.place(&s)
	if !ok {
		return time.Time{}, false
	}
	c.text = append(c.text[:0], b...)
	c.time = t
	m := s
	m.second, m.nsec, m.digits = 0, 0, 0
	c.plain = n == plainLen && !s.BSD() && m == c.minute
	return t, true
}

// place is Clock.place, from the time of the minute when s is in the last
// one placed.
func (c *Cache) place(s *Stamp) (time.Time, bool) {
	m := *s
	m.second, m.nsec, m.digits = 0, 0, 0
	if !s.BSD() && m == c.minute {
		second := min(s.second, 59) // a leap second, as makeTime reads it
		return c.minuteTime.Add(time.Duration(second)*time.Second + time.Duration(s.nsec)), true
	}
	t, ok := c.Clock.place(s)
	// A BSD date's year depends on the clock's now; fixedZone makes a new
	// Location for each offset but 0.
	if !ok || s.BSD() || s.zone == '+' && s.offset != 0 {
		return t, ok
	}
	if mt, ok := c.Clock.place(&m); ok {
		if start, end := mt.ZoneBounds(); start.IsZero() && end.IsZero() {
			c.minute, c.minuteTime = m, mt
		}
	}
	return t, ok
}
