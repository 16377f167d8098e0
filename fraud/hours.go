package fraud

import (
	"fmt"
	"strings"
	"time"
)

// Hours are business hours: days of the week and a time of day range, in
// a zone.
type Hours struct {
	Days     [7]bool       // by time.Weekday
	From, To time.Duration // since midnight; From < To
	Location *time.Location
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseHours reads "mon-fri 08:00-18:00" (days as a range or a list,
// "mon,wed,fri"; times on a 24-hour clock) in loc.
func ParseHours(s string, loc *time.Location) (Hours, error) {
	h := Hours{Location: loc}
	if loc == nil {
		h.Location = time.Local
	}
	days, times, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), " ")
	if !ok {
		return h, fmt.Errorf("business hours %q: want days and times, like \"mon-fri 08:00-18:00\"", s)
	}
	for _, part := range strings.Split(days, ",") {
		a, b, isRange := strings.Cut(part, "-")
		i, j := dayIndex(a), dayIndex(b)
		if !isRange {
			j = i
		}
		if i < 0 || j < 0 {
			return h, fmt.Errorf("business hours %q: unknown day in %q (%s)", s, part, strings.Join(dayNames, ", "))
		}
		for d := i; ; d = (d + 1) % 7 {
			h.Days[d] = true
			if d == j {
				break
			}
		}
	}
	from, to, ok := strings.Cut(strings.TrimSpace(times), "-")
	var err1, err2 error
	h.From, err1 = clock(from)
	h.To, err2 = clock(to)
	if !ok || err1 != nil || err2 != nil || h.From >= h.To {
		return h, fmt.Errorf("business hours %q: want a time range like 08:00-18:00, the start before the end", s)
	}
	return h, nil
}

func dayIndex(s string) int {
	for i, n := range dayNames {
		if s == n {
			return i
		}
	}
	return -1
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		if strings.TrimSpace(s) == "24:00" {
			return 24 * time.Hour, nil
		}
		return 0, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Within reports whether t falls in the business hours.
func (h Hours) Within(t time.Time) bool {
	t = t.In(h.Location)
	since := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
	return h.Days[t.Weekday()] && since >= h.From && since < h.To
}
