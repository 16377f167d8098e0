package notify

import "time"

// SetBackoff changes the waits between webhook attempts (1s doubling up to
// 30s), for tests. Call it before Run.
func (d *Dispatcher) SetBackoff(base, max time.Duration) {
	d.backoffBase, d.backoffMax = base, max
}

// SetWarnEvery changes how often, at most, drops are logged per target,
// for tests. Call it before Notify.
func (d *Dispatcher) SetWarnEvery(every time.Duration) { d.warnEvery = every }

// Backoff is the wait before retry n (0 for the first).
func (d *Dispatcher) Backoff(n int) time.Duration { return d.backoff(n) }
