package engine

import (
	"encoding/binary"
	"iter"
	"net/netip"
)

// table holds the trackers by key. The keys of IPv4 addresses, nearly all
// of them in practice, are kept apart by their last 4 bytes: a map of
// uint32 hashes and compares them in fewer instructions than a map of
// 16-byte keys, and its slots are smaller (issue 11).
type table struct {
	v4 map[uint32]*tracker
	v6 map[key]*tracker
}

// v4 returns the IPv4 address of k, if k is one (::ffff:a.b.c.d).
func (k *key) v4() (uint32, bool) {
	return binary.BigEndian.Uint32(k[12:]),
		binary.LittleEndian.Uint64(k[:8]) == 0 && binary.BigEndian.Uint32(k[8:12]) == 0xffff
}

func (t *table) get(k key) *tracker {
	if a, ok := k.v4(); ok {
		return t.v4[a]
	}
	return t.v6[k]
}

// find is get by prefix. An IPv4 address is looked up by its 4 bytes: its
// 16-byte key, built and read back at once, cost a store-forwarding stall
// on each event (a sixth of Observe's own time in the 1M-line scan); the
// key is built only for a new tracker.
func (t *table) find(p netip.Prefix) *tracker {
	if a := p.Addr(); a.Is4() {
		b := a.As4()
		return t.v4[binary.BigEndian.Uint32(b[:])]
	}
	return t.v6[key(p.Addr().As16())]
}

func (t *table) set(k key, tr *tracker) {
	if a, ok := k.v4(); ok {
		t.v4[a] = tr
	} else {
		t.v6[k] = tr
	}
}

func (t *table) del(k key) {
	if a, ok := k.v4(); ok {
		delete(t.v4, a)
	} else {
		delete(t.v6, k)
	}
}

func (t *table) len() int { return len(t.v4) + len(t.v6) }

// all yields every tracker and its key. The loop may drop trackers.
func (t *table) all() iter.Seq2[key, *tracker] {
	return func(yield func(key, *tracker) bool) {
		for _, tr := range t.v4 {
			if !yield(tr.key, tr) {
				return
			}
		}
		for k, tr := range t.v6 {
			if !yield(k, tr) {
				return
			}
		}
	}
}
