package watchers

import (
	"time"

	"github.com/rs/zerolog"
)

// logEvery is the least time between two log lines of the same kind and
// reason from one Follower. A path flipped between a FIFO, a missing file
// and a log would otherwise write a line per flip; Stats tells the state
// at every moment all the same.
const logEvery = time.Minute

// maxLogKeys bounds the kinds and reasons a limiter remembers; reasons are
// the system's error texts, a small set.
const maxLogKeys = 32

// limiter lets a log line of each key through at most once per logEvery,
// and counts those it held back.
type limiter struct {
	last map[string]logSlot
}

type logSlot struct {
	at   time.Time
	held int
}

// allow tells whether a line of key may be logged now, and how many were
// held back since the last one that was.
func (l *limiter) allow(key string, now time.Time) (ok bool, held int) {
	if l.last == nil {
		l.last = map[string]logSlot{}
	}
	s, seen := l.last[key]
	if seen && now.Sub(s.at) < logEvery {
		s.held++
		l.last[key] = s
		return false, 0
	}
	if !seen && len(l.last) >= maxLogKeys {
		for k, s := range l.last {
			if now.Sub(s.at) >= logEvery {
				delete(l.last, k)
			}
		}
		if len(l.last) >= maxLogKeys {
			return false, 0
		}
	}
	l.last[key] = logSlot{at: now}
	return true, s.held
}

// heldBack adds to ev how many lines like it were held back, if any.
func heldBack(ev *zerolog.Event, held int) *zerolog.Event {
	if held > 0 {
		ev = ev.Int("held_back", held)
	}
	return ev
}
