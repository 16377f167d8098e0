package config

import (
	"time"

	"github.com/sipguard/sipguard/duration"
)

// Duration is a config duration: a string with units ("30s", "10m", "1h",
// "7d", "1h30m"; see package duration). A bare number is refused: plain
// time.Duration would read ban_time = 3600 as 3.6 µs.
type Duration time.Duration

// String formats d with the largest units that divide it: "7d", "1h30m".
func (d Duration) String() string { return duration.Format(time.Duration(d)) }

// MarshalText writes d as in the config file.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// StringList is a string or an array of strings.
type StringList []string
