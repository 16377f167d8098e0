package logtime

// Stamp is a timestamp as printed, read and checked field by field but not
// yet placed in time: a BSD date has no year and either form may have no
// zone.
type Stamp struct {
	year   int // 0: none printed (the BSD form)
	month  int
	day    int
	hour   int
	minute int
	second int // 60: a leap second
	nsec   int
	digits int  // fraction digits printed; only the first 9 count
	zone   byte // 0: none printed; 'Z': UTC; '+': offset
	offset int  // seconds east of UTC, when zone is '+'
}

// BSD reports whether s is in the BSD form, which has no year.
func (s Stamp) BSD() bool { return s.year == 0 }

// AppendBSD appends s, a BSD date, in the form syslog daemons write it:
// "Mmm dd hh:mm:ss" with the day space-padded, and the fraction as printed
// (at most 9 digits: ReadSyslog reads no more). The zero Stamp appends
// nothing.
func (s Stamp) AppendBSD(dst []byte) []byte {
	if s.month == 0 {
		return dst
	}
	dst = append(dst, months[s.month-1]...)
	dst = append(dst, ' ')
	if s.day < 10 {
		dst = append(dst, ' ')
	}
	dst = appendInt(dst, s.day, 1)
	dst = append(dst, ' ')
	dst = appendInt(dst, s.hour, 2)
	dst = append(dst, ':')
	dst = appendInt(dst, s.minute, 2)
	dst = append(dst, ':')
	dst = appendInt(dst, s.second, 2)
	if d := min(s.digits, 9); d > 0 {
		f := s.nsec
		for range 9 - d {
			f /= 10
		}
		dst = append(dst, '.')
		dst = appendInt(dst, f, d)
	}
	return dst
}

// appendInt appends v, zero-padded to width digits.
func appendInt(dst []byte, v, width int) []byte {
	var b [9]byte
	i := len(b)
	for v > 0 || width > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	return append(dst, b[i:]...)
}

// Read reads a timestamp at the start of b and returns it with the number
// of bytes it used, 0 when b does not start with one. It knows the forms
// PBXs and syslog daemons write to files:
//
//	2026-11-26 10:00:00           (Asterisk %F %T, FreePBX)
//	2026-11-26 10:00:00.123       (%F %T.%3q; 1 or more fraction digits, the first 9 kept)
//	2026-11-26T10:00:00.123+01:00 (RFC 3339, rsyslog; zone Z, +hh:mm, +hhmm or +hh)
//	Nov 26 10:00:00, Nov  6 10:00:00, Nov 06 10:00:00 (%b %e %T, syslog)
//	Nov 6 10:00:00                (seen in hand-edited logs)
//	Nov  6 10:00:00.123
//
// Text after the seconds that is not a zone is left unread.
func Read(b []byte) (Stamp, int) {
	var s Stamp
	if n := s.read(b, false); n > 0 {
		return s, n
	}
	return Stamp{}, 0
}

// ReadSyslog is Read for the timestamp of a syslog message: it reads only
// what RFC 5424 (by RFC 3339) and RFC 3164 allow, with the relaxations
// syslog daemons accept. An ISO date has 'T' (or 't') between date and time
// and a zone Z (or z) or +hh:mm, if any; the BSD date's day may be space-
// or zero-padded or not padded; either form has at most 9 fraction digits.
// A zone it cannot read is an error, not text after the timestamp.
func ReadSyslog(b []byte) (Stamp, int) {
	var s Stamp
	if n := s.read(b, true); n > 0 {
		return s, n
	}
	return Stamp{}, 0
}

// Looks reports whether b starts the way a timestamp does (a month's
// abbreviation and a space, or four digits and a dash), so that a broken
// timestamp can be told from text that is none.
func Looks(b []byte) bool {
	if len(b) >= 4 && b[3] == ' ' && month(b[:3]) > 0 {
		return true
	}
	return len(b) >= 5 && isDigit(b[0]) && isDigit(b[1]) && isDigit(b[2]) && isDigit(b[3]) && b[4] == '-'
}

// read reads a timestamp at the start of b into s and returns the bytes
// it used, 0 when b does not start with one (s is then left in any state).
func (s *Stamp) read(b []byte, strict bool) int {
	if len(b) >= 19 && isDigit(b[0]) {
		return s.readISO(b, strict)
	}
	return s.readBSD(b, strict)
}

// readISO reads "YYYY-MM-DD[ T]hh:mm:ss[.f][zone]".
func (s *Stamp) readISO(b []byte, strict bool) int {
	sep := b[10] == 'T' || strict && b[10] == 't' || !strict && b[10] == ' '
	if b[4] != '-' || b[7] != '-' || !sep || b[13] != ':' || b[16] != ':' {
		return 0
	}
	cc, yy := two(b[0:2]), two(b[2:4])
	if cc < 0 || yy < 0 {
		return 0
	}
	s.year = cc*100 + yy
	s.month, s.day = two(b[5:7]), two(b[8:10])
	s.hour, s.minute, s.second = two(b[11:13]), two(b[14:16]), two(b[17:19])
	if !s.valid(s.year) {
		return 0
	}
	n := 19
	k := s.fraction(b[n:])
	if strict && s.digits > 9 {
		return 0
	}
	n += k
	if n < len(b) {
		k, ok := s.readZone(b[n:], strict)
		if !ok {
			return 0
		}
		n += k
	}
	return n
}

// readBSD reads "Mmm dd hh:mm:ss[.f]" with dd space- or zero-padded (or,
// rarely, not padded at all).
func (s *Stamp) readBSD(b []byte, strict bool) int {
	if len(b) < 14 || b[3] != ' ' {
		return 0
	}
	if s.month = month(b[:3]); s.month == 0 {
		return 0
	}
	i := 4
	switch {
	case b[4] == ' ' && isDigit(b[5]):
		s.day, i = int(b[5]-'0'), 6
	case isDigit(b[4]) && isDigit(b[5]):
		s.day, i = int(b[4]-'0')*10+int(b[5]-'0'), 6
	case isDigit(b[4]) && b[5] == ' ':
		s.day, i = int(b[4]-'0'), 5
	default:
		return 0
	}
	if len(b) < i+9 || b[i] != ' ' || b[i+3] != ':' || b[i+6] != ':' {
		return 0
	}
	s.hour, s.minute, s.second = two(b[i+1:i+3]), two(b[i+4:i+6]), two(b[i+7:i+9])
	// No year: Feb 29 is allowed (Clock finds the leap year).
	if !s.valid(2000) {
		return 0
	}
	n := i + 9
	n += s.fraction(b[n:])
	if strict && s.digits > 9 {
		return 0
	}
	return n
}

// valid reports whether every field of s is in range (-1, two's "not
// digits", never is), the day in its month of year.
func (s *Stamp) valid(year int) bool {
	return year >= 1970 && uint(s.month-1) < 12 && uint(s.day-1) < uint(daysIn(s.month, year)) &&
		uint(s.hour) <= 23 && uint(s.minute) <= 59 && uint(s.second) <= 60
}

// fraction reads ".ddd" (1 or more digits) into s and returns the bytes
// used.
func (s *Stamp) fraction(b []byte) int {
	if len(b) < 2 || b[0] != '.' || !isDigit(b[1]) {
		return 0
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
	s.nsec, s.digits = ns, i-1
	return i
}

// readZone reads "Z", "+hh:mm" or, unless strict, "+hhmm" or "+hh" into s
// and returns the bytes used. Text that is no zone uses none, unless
// strict and it starts like one ('+' or '-'): then ok is false.
func (s *Stamp) readZone(b []byte, strict bool) (n int, ok bool) {
	if b[0] == 'Z' || strict && b[0] == 'z' {
		s.zone = 'Z'
		return 1, true
	}
	if b[0] != '+' && b[0] != '-' {
		return 0, true
	}
	hh, mm, n := 0, 0, 0
	switch {
	case strict:
		if len(b) < 6 || b[3] != ':' {
			return 0, false
		}
		hh, mm = two(b[1:3]), two(b[4:6])
		if uint(hh) > 23 || uint(mm) > 59 {
			return 0, false
		}
		n = 6
	default:
		if len(b) < 3 {
			return 0, true
		}
		if hh = two(b[1:3]); uint(hh) > 23 {
			return 0, true
		}
		n = 3
		switch {
		case len(b) >= 6 && b[3] == ':':
			if m := two(b[4:6]); m >= 0 {
				n, mm = 6, m
			}
		case len(b) >= 5 && isDigit(b[3]):
			if m := two(b[3:5]); m >= 0 {
				n, mm = 5, m
			}
		}
		if mm > 59 {
			return 0, true
		}
	}
	s.zone, s.offset = '+', hh*3600+mm*60
	if b[0] == '-' {
		s.offset = -s.offset
	}
	return n, true
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// month returns the number of the month abbreviated b, 0 for none.
func month(b []byte) int {
	for i, m := range months {
		if string(b) == m {
			return i + 1
		}
	}
	return 0
}

func daysIn(mon, year int) int {
	switch mon {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// two reads the two digits b holds, or returns -1.
func two(b []byte) int {
	hi, lo := b[0]-'0', b[1]-'0'
	if hi > 9 || lo > 9 {
		return -1
	}
	return int(hi)*10 + int(lo)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
