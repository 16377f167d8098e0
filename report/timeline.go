package report

import "time"

// maxBuckets bounds the time buckets from a timeline's first to its last
// while counting: past it, buckets widen. Times come from log lines, so a
// wild timestamp widens the buckets rather than growing them.
const maxBuckets = 1000

// reportBuckets is the most buckets a report shows: a week of hours. A
// report has the narrowest buckets of widths that fit: an attack of a few
// minutes is drawn by the minute, a day's log by the quarter hour, a
// week's by the hour.
const reportBuckets = 168

// widths are the bucket widths in minutes, each a multiple of the one
// before so buckets merge whole; past the last, widths double.
var widths = []int64{1, 5, 15, 30, 60, 120, 360, 720, 1440, 7 * 1440}

// timeline counts failures by kind and bans by rule per time bucket.
type timeline struct {
	step    int   // index into widths, or past them
	width   int64 // seconds
	slots   int   // ban slots: one per rule and one for the compromise rule
	buckets map[int64]*bucket
	lo, hi  int64 // the first and last bucket
}

type bucket struct {
	kinds [kindSlots]int64
	bans  []int64
}

func newTimeline(slots int) timeline {
	return timeline{width: widths[0] * 60, slots: slots, buckets: make(map[int64]*bucket)}
}

// add counts a failure of kind (or none: -1) and a ban of slot (or none:
// -1) at t.
func (tl *timeline) add(t time.Time, kind, slot int) {
	k := floorDiv(t.Unix(), tl.width)
	b := tl.buckets[k]
	if b == nil {
		lo, hi := min(tl.lo, k), max(tl.hi, k)
		if len(tl.buckets) == 0 {
			lo, hi = k, k
		}
		if hi-lo >= maxBuckets {
			tl.widen()
			tl.add(t, kind, slot)
			return
		}
		tl.lo, tl.hi = lo, hi
		b = &bucket{bans: make([]int64, tl.slots)}
		tl.buckets[k] = b
	}
	if kind >= 0 {
		b.kinds[kind]++
	}
	if slot >= 0 {
		b.bans[slot]++
	}
}

// widen moves to the next width and merges the buckets into it.
func (tl *timeline) widen() {
	tl.step++
	next := tl.width * 2
	if tl.step < len(widths) {
		next = widths[tl.step] * 60
	}
	old := tl.buckets
	tl.buckets = make(map[int64]*bucket, len(old))
	for k, b := range old {
		nk := floorDiv(k*tl.width, next)
		if m := tl.buckets[nk]; m != nil {
			for i := range b.kinds {
				m.kinds[i] += b.kinds[i]
			}
			for i := range b.bans {
				m.bans[i] += b.bans[i]
			}
			continue
		}
		tl.buckets[nk] = b
	}
	tl.lo, tl.hi = floorDiv(tl.lo*tl.width, next), floorDiv(tl.hi*tl.width, next)
	tl.width = next
}

// fit widens the buckets until at most n span the timeline.
func (tl *timeline) fit(n int64) {
	for len(tl.buckets) > 0 && tl.hi-tl.lo >= n {
		tl.widen()
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
