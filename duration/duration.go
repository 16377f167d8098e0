// Package duration reads and writes durations as sipguard's users write
// them, in rules.toml and on the command line: "30s", "10m", "1h", "7d",
// "2w", "1h30m". Unlike time.ParseDuration it knows days and weeks, and a
// number without a unit is an error rather than nanoseconds.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var units = map[string]time.Duration{
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
	"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour,
}

// Parse reads a duration with units ms, s, m, h, d (24h) and w (7d).
func Parse(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		unit, ok := units[rest[i:j]]
		if i == 0 || !ok {
			if i == len(rest) {
				return 0, fmt.Errorf("%q has no unit (write e.g. \"30s\", \"10m\", \"1h\" or \"7d\")", s)
			}
			return 0, fmt.Errorf("%q is not a duration (write e.g. \"30s\", \"10m\", \"1h\" or \"7d\")", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/unit) || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, fmt.Errorf("%q is too long", s)
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return total, nil
}

// Format writes d with the largest units that divide it: "7d", "1h30m".
func Format(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	if d > 0 {
		fmt.Fprintf(&b, "%dns", d)
	}
	return b.String()
}
