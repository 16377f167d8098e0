// Package testutil holds what the tests of several packages share: a log
// sink that the goroutines of a daemon, a follower or a receiver can all
// write to, polling for a condition with a deadline, and the skips for a
// missing prerequisite, which fail instead in CI (skip.go).
package testutil

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects log output from any goroutine.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Count returns how many lines hold every one of subs.
func (b *Buffer) Count(subs ...string) int {
	n := 0
	for line := range strings.Lines(b.String()) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// poll is how often a condition is tried again.
const poll = 2 * time.Millisecond

// Eventually tries cond every 2 ms until it holds or d has passed, and
// reports whether it held (it is tried once more at the deadline).
func Eventually(d time.Duration, cond func() bool) bool { return EventuallyEvery(d, poll, cond) }

// EventuallyEvery is Eventually trying every interval: for conditions
// that cost something to check (running nft), which must not load the
// machine they measure.
func EventuallyEvery(d, every time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(every) {
		if cond() {
			return true
		}
	}
	return cond()
}

// WaitFor is Eventually that fails t, naming what it waited for, when cond
// never held. It returns how long cond took to hold.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitEvery(t, d, poll, what, cond)
}

// WaitEvery is EventuallyEvery that fails t when cond never held.
func WaitEvery(t testing.TB, d, every time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if !EventuallyEvery(d, every, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
	return time.Since(start)
}

// Linear fails t unless work on 10 times n takes at most limit times its
// time on n (the best of 5 runs each): what grows with the square takes
// about 100 times, what grows as n log n 12 or so, and up to 30 beside
// other tests on 2 cores (the small run fits the caches, the large one
// does not): a limit of 50 tells them apart. run does the work on n and
// returns how long it took, its own set-up left out.
func Linear(t testing.TB, what string, n int, limit float64, run func(n int) time.Duration) {
	t.Helper()
	best := func(n int) time.Duration {
		b := time.Duration(1 << 62)
		for range 5 {
			b = min(b, run(n))
		}
		return b
	}
	small, large := best(n), best(10*n)
	t.Logf("%s: %d in %v, %d in %v", what, n, small, 10*n, large)
	if float64(large) > limit*float64(small) {
		t.Errorf("%s: 10 times as many took %.0f times as long: quadratic", what, float64(large)/float64(small))
	}
}
