package feeds

import "time"

// SetTiming changes how often l loads, for tests: interval replaces
// Feed.Interval (no minimum), retry the first delay after a failure, and
// jitter turns the random delay added to the interval on or off. Call it
// before Run.
func SetTiming(l *Loader, interval, retry time.Duration, jitter bool) {
	l.interval = interval
	l.retryMin = retry
	l.jitter = jitter
}
