package parsers

import (
	"time"
)

// Clock turns the timestamps printed in log lines into times. It fills in
// what a line leaves out: the zone (Options.Location) and the year.
//
// A date without a year gets the current year, or the previous one when the
// current year would put it more than a day in the future: a December line
// read in January belongs to last year.
type Clock struct {
	loc *time.Location
	now func() time.Time
}

// NewClock returns the Clock for opts; nil fields take the defaults of New.
func NewClock(opts Options) Clock {
	c := Clock{loc: opts.Location, now: opts.Now}
	if c.loc == nil {
		c.loc = time.Local
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Location returns the zone used for timestamps without one.
func (c Clock) Location() *time.Location { return c.loc }

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Parse reads a timestamp at the start of b and returns it with the number
// of bytes it used. It knows the forms PBXs and syslog daemons write:
//
//	2026-11-26 10:00:00           (Asterisk %F %T, FreePBX)
//	2026-11-26 10:00:00.123       (%F %T.%3q; 1 to 9 fraction digits)
//	2026-11-26T10:00:00.123+01:00 (RFC 3339, rsyslog; zone Z, +hh:mm or +hhmm)
//	Nov 26 10:00:00, Nov  6 10:00:00, Nov 06 10:00:00 (%b %e %T, syslog)
//	Nov 6 10:00:00                (seen in hand-edited logs)
//	Nov  6 10:00:00.123
func (c Clock) Parse(b []byte) (time.Time, int, bool) {
	if len(b) >= 19 && isDigit(b[0]) {
		return c.parseISO(b)
	}
	return c.parseBSD(b)
}

func (c Clock) parseISO(b []byte) (time.Time, int, bool) {
	// YYYY-MM-DD[ T]hh:mm:ss
	if b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, 0, false
	}
	year, ok1 := digits(b[0:4])
	mon, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hh, ok4 := digits(b[11:13])
	mm, ok5 := digits(b[14:16])
	ss, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, 0, false
	}
	n := 19
	nsec, k := fraction(b[n:])
	n += k
	loc := c.loc
	if n < len(b) {
		if l, k := zone(b[n:]); k > 0 {
			loc, n = l, n+k
		}
	}
	t, ok := makeTime(year, mon, day, hh, mm, ss, nsec, loc)
	return t, n, ok
}

func (c Clock) parseBSD(b []byte) (time.Time, int, bool) {
	// Mmm dd hh:mm:ss with dd space- or zero-padded (or, rarely, not
	// padded at all).
	if len(b) < 14 || b[3] != ' ' {
		return time.Time{}, 0, false
	}
	mon := 0
	for i, m := range months {
		if string(b[:3]) == m {
			mon = i + 1
			break
		}
	}
	if mon == 0 {
		return time.Time{}, 0, false
	}
	var day int
	i := 4
	switch {
	case b[4] == ' ' && isDigit(b[5]):
		day, i = int(b[5]-'0'), 6
	case isDigit(b[4]) && isDigit(b[5]):
		day, i = int(b[4]-'0')*10+int(b[5]-'0'), 6
	case isDigit(b[4]) && b[5] == ' ':
		day, i = int(b[4]-'0'), 5
	default:
		return time.Time{}, 0, false
	}
	if len(b) < i+9 || b[i] != ' ' || b[i+3] != ':' || b[i+6] != ':' {
		return time.Time{}, 0, false
	}
	hh, ok1 := digits(b[i+1 : i+3])
	mm, ok2 := digits(b[i+4 : i+6])
	ss, ok3 := digits(b[i+7 : i+9])
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, 0, false
	}
	n := i + 9
	nsec, k := fraction(b[n:])
	now := c.now().In(c.loc)
	t, ok := makeTime(now.Year(), mon, day, hh, mm, ss, nsec, c.loc)
	// Feb 29 outside a leap year belongs to the last leap year.
	for y := now.Year() - 1; !ok && y >= now.Year()-4; y-- {
		t, ok = makeTime(y, mon, day, hh, mm, ss, nsec, c.loc)
	}
	if !ok {
		return time.Time{}, 0, false
	}
	if t.After(now.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t, n + k, true
}

// makeTime builds a time, refusing fields out of range instead of
// normalising them as time.Date does (Feb 30 is an error, not Mar 2).
func makeTime(year, mon, day, hh, mm, ss, nsec int, loc *time.Location) (time.Time, bool) {
	if mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	if year < 1970 {
		// No log predates Unix time, and year 1 would be the zero time,
		// which means "no time" everywhere else.
		return time.Time{}, false
	}
	if ss == 60 { // leap second as printed by some syslog daemons
		ss = 59
	}
	t := time.Date(year, time.Month(mon), day, hh, mm, ss, nsec, loc)
	if t.Day() != day {
		return time.Time{}, false
	}
	return t, true
}

// fraction reads ".ddd" (1-9 digits) and returns nanoseconds and bytes used.
func fraction(b []byte) (int, int) {
	if len(b) < 2 || b[0] != '.' || !isDigit(b[1]) {
		return 0, 0
	}
	ns, i := 0, 1
	for ; i < len(b) && isDigit(b[i]); i++ {
		if i <= 9 {
			ns = ns*10 + int(b[i]-'0')
		}
	}
	for k := i; k <= 9; k++ {
		ns *= 10
	}
	return ns, i
}

// zone reads "Z", "+hh:mm", "+hhmm" or "+hh" and returns a fixed zone.
func zone(b []byte) (*time.Location, int) {
	if b[0] == 'Z' {
		return time.UTC, 1
	}
	if b[0] != '+' && b[0] != '-' || len(b) < 3 {
		return nil, 0
	}
	hh, ok := digits(b[1:3])
	if !ok || hh > 23 {
		return nil, 0
	}
	n, mm := 3, 0
	switch {
	case len(b) >= 6 && b[3] == ':':
		if m, ok := digits(b[4:6]); ok {
			n, mm = 6, m
		}
	case len(b) >= 5 && isDigit(b[3]):
		if m, ok := digits(b[3:5]); ok {
			n, mm = 5, m
		}
	}
	if mm > 59 {
		return nil, 0
	}
	off := hh*3600 + mm*60
	if b[0] == '-' {
		off = -off
	}
	return fixedZone(off), n
}

var utcZone = time.FixedZone("", 0)

func fixedZone(off int) *time.Location {
	if off == 0 {
		return utcZone
	}
	return time.FixedZone("", off)
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
