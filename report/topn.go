package report

import (
	"cmp"
	"slices"
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
	idx  map[K]int32 // where each key's entry is in ents
	keys []K
	ents []entry[V]
	lost int64 // the sum over evictions of the largest count forgotten
}

// entry is one key's counts: its true count is between Count and
// Count+Err. First and Last are Unix nanoseconds. V holds what the caller
// keeps per key.
type entry[V any] struct {
	Count, Err  int64
	First, Last int64
	V           V
}

func newTopN[K comparable, V any](size int) *topN[K, V] {
	return &topN[K, V]{
		size: size, idx: make(map[K]int32, 2*size),
		keys: make([]K, 0, 2*size), ents: make([]entry[V], 0, 2*size),
	}
}

// add counts one event of k at t (Unix ns) and returns k's entry to
// update, valid until the next add or remove.
func (c *topN[K, V]) add(k K, t int64) *entry[V] {
	i, ok := c.idx[k]
	if !ok {
		if len(c.ents) >= 2*c.size {
			c.evict()
		}
		i = int32(len(c.ents))
		c.idx[k] = i
		c.keys = append(c.keys, k)
		c.ents = append(c.ents, entry[V]{Err: c.lost, First: t, Last: t})
	}
	e := &c.ents[i]
	e.Count++
	e.First, e.Last = min(e.First, t), max(e.Last, t)
	return e
}

// get returns k's entry, or nil.
func (c *topN[K, V]) get(k K) *entry[V] {
	if i, ok := c.idx[k]; ok {
		return &c.ents[i]
	}
	return nil
}

// remove forgets k.
func (c *topN[K, V]) remove(k K) {
	i, ok := c.idx[k]
	if !ok {
		return
	}
	last := int32(len(c.ents) - 1)
	if i != last {
		c.keys[i], c.ents[i] = c.keys[last], c.ents[last]
		c.idx[c.keys[i]] = i
	}
	delete(c.idx, k)
	c.keys, c.ents = c.keys[:last], c.ents[:last]
}

// evict keeps the size largest counts.
func (c *topN[K, V]) evict() {
	counts := make([]int64, len(c.ents))
	for i := range c.ents {
		counts[i] = c.ents[i].Count
	}
	slices.SortFunc(counts, func(a, b int64) int { return cmp.Compare(b, a) })
	keep := counts[c.size-1] // the size-th largest
	n := 0                   // entries kept
	var most int64
	clear(c.idx)
	for i := range c.ents {
		// Keep the counts above keep, and of those equal to it as many
		// as fit in size.
		if e := c.ents[i]; e.Count > keep || e.Count == keep && n < c.size {
			c.keys[n], c.ents[n] = c.keys[i], e
			c.idx[c.keys[n]] = int32(n)
			n++
			continue
		}
		most = max(most, c.ents[i].Count)
	}
	clear(c.keys[n:]) // let forgotten keys (strings) go
	clear(c.ents[n:])
	c.keys, c.ents = c.keys[:n], c.ents[:n]
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
	out := make([]keyed[K, V], 0, len(c.ents))
	for i := range c.ents {
		out = append(out, keyed[K, V]{c.keys[i], &c.ents[i]})
	}
	slices.SortFunc(out, func(a, b keyed[K, V]) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return less(a.Key, b.Key)
	})
	return out[:min(n, len(out))]
}
