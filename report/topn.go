package report

import (
	"cmp"
	"slices"
	"time"
)

// topN counts keys in bounded memory: the heavy hitters of a stream. It
// holds at most 2*size keys; when full, it keeps the size largest counts
// and forgets the rest. A key counted again after it was forgotten starts
// over, so a count is never too high and may be too low by what forgotten
// keys held: each eviction forgets at most its largest evicted count of a
// key, so a key's count is short by at most the sum of those maxima up to
// its (last) entry, its Err. Keys held since before the first eviction
// (the heavy hitters of any log that starts with them) are exact.
type topN[K comparable, V any] struct {
	size int
	m    map[K]*entry[V]
	lost int64 // the sum over evictions of the largest count forgotten
}

// entry is one key's counts: its true count is between Count and
// Count+Err. V holds what the caller keeps per key.
type entry[V any] struct {
	Count, Err  int64
	First, Last time.Time
	V           V
}

func newTopN[K comparable, V any](size int) *topN[K, V] {
	return &topN[K, V]{size: size, m: make(map[K]*entry[V], 2*size)}
}

// add counts one event of k at t and returns k's entry to update.
func (c *topN[K, V]) add(k K, t time.Time) *entry[V] {
	e := c.m[k]
	if e == nil {
		if len(c.m) >= 2*c.size {
			c.evict()
		}
		e = &entry[V]{Err: c.lost, First: t, Last: t}
		c.m[k] = e
	}
	e.Count++
	if t.Before(e.First) {
		e.First = t
	}
	if t.After(e.Last) {
		e.Last = t
	}
	return e
}

// get returns k's entry, or nil.
func (c *topN[K, V]) get(k K) *entry[V] { return c.m[k] }

// remove forgets k.
func (c *topN[K, V]) remove(k K) { delete(c.m, k) }

// evict keeps the size largest counts.
func (c *topN[K, V]) evict() {
	counts := make([]int64, 0, len(c.m))
	for _, e := range c.m {
		counts = append(counts, e.Count)
	}
	slices.SortFunc(counts, func(a, b int64) int { return cmp.Compare(b, a) })
	keep := counts[c.size-1] // the size-th largest; ties above size go too
	n := 0                   // entries kept
	var most int64
	for k, e := range c.m {
		// Keep the counts above keep, and of those equal to it as many
		// as fit in size.
		if e.Count > keep || e.Count == keep && n < c.size {
			n++
			continue
		}
		most = max(most, e.Count)
		delete(c.m, k)
	}
	c.lost += most
}

// keyed is an entry and its key.
type keyed[K comparable, V any] struct {
	Key K
	*entry[V]
}

// top returns up to n entries, largest count first; equal counts in the
// order less gives their keys, so the answer does not depend on map order.
func (c *topN[K, V]) top(n int, less func(a, b K) int) []keyed[K, V] {
	out := make([]keyed[K, V], 0, len(c.m))
	for k, e := range c.m {
		out = append(out, keyed[K, V]{k, e})
	}
	slices.SortFunc(out, func(a, b keyed[K, V]) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return less(a.Key, b.Key)
	})
	return out[:min(n, len(out))]
}
