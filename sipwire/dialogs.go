package sipwire

import (
	"net/netip"
)

// dialog is what the sensor remembers of one Call-ID from one address.
// The Call-ID itself is not kept: the table is keyed by a hash of the
// client address and the Call-ID with a per-sensor random seed (maphash),
// so an attacker can neither make its entries large nor aim a collision
// at another address's dialog.
type dialog struct {
	key  uint64
	last int64 // unix ns of the last response: the lifetime runs from here

	// lastTxn and lastStatus identify the last response, to recognise the
	// PBX sending it again.
	lastTxn    uint64
	lastStatus uint16

	challenged bool // a 401/407 not followed by a 2xx
	// pending: the first challenge is not answered yet. The dialog is then
	// on the pending list, in the order of chalAt.
	pending bool
	chalTxn uint64 // the transaction of the latest challenge
	// chalMethod identifies the challenged request's method (hashed like
	// a transaction): only responses to that method answer the challenge.
	chalMethod uint64
	chalAt     int64 // unix ns of the first challenge

	// What a challenge_unanswered event needs.
	addr netip.Addr
	port uint16
	user string

	// Links of the LRU list (most recent first) and the pending list, as
	// indexes into dialogs.slab; -1 is none.
	prev, next   int32
	pprev, pnext int32
}

// dialogs is a bounded table of dialogs: a map to slab indexes, an LRU
// list that evicts the least recently seen when full, and the list of
// pending challenges in time order. It is not safe for concurrent use.
type dialogs struct {
	max   int
	index map[uint64]int32
	slab  []dialog
	free  []int32

	head, tail   int32 // LRU: head most recent
	phead, ptail int32 // pending: head oldest
}

func newDialogs(max int) *dialogs {
	return &dialogs{max: max, index: map[uint64]int32{}, head: -1, tail: -1, phead: -1, ptail: -1}
}

func (t *dialogs) len() int { return len(t.index) }

// get returns the dialog of key, or -1.
func (t *dialogs) get(key uint64) int32 {
	if i, ok := t.index[key]; ok {
		return i
	}
	return -1
}

// add makes a new dialog for key at the front, evicting the least recently
// seen one when the table is full; evicted reports that it did.
func (t *dialogs) add(key uint64) (i int32, evicted bool) {
	if len(t.index) >= t.max {
		t.remove(t.tail)
		evicted = true
	}
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.slab = append(t.slab, dialog{})
		i = int32(len(t.slab) - 1)
	}
	t.slab[i] = dialog{key: key, prev: -1, next: -1, pprev: -1, pnext: -1}
	t.index[key] = i
	t.pushFront(i)
	return i, evicted
}

// touch moves i to the front of the LRU list.
func (t *dialogs) touch(i int32) {
	if t.head == i {
		return
	}
	t.unlink(i)
	t.pushFront(i)
}

func (t *dialogs) pushFront(i int32) {
	d := &t.slab[i]
	d.prev, d.next = -1, t.head
	if t.head >= 0 {
		t.slab[t.head].prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

func (t *dialogs) unlink(i int32) {
	d := &t.slab[i]
	if d.prev >= 0 {
		t.slab[d.prev].next = d.next
	} else {
		t.head = d.next
	}
	if d.next >= 0 {
		t.slab[d.next].prev = d.prev
	} else {
		t.tail = d.prev
	}
}

// remove forgets dialog i.
func (t *dialogs) remove(i int32) {
	t.unpend(i)
	t.unlink(i)
	delete(t.index, t.slab[i].key)
	t.slab[i] = dialog{} // drop the user string
	t.free = append(t.free, i)
}

// pend appends i to the pending list.
func (t *dialogs) pend(i int32) {
	d := &t.slab[i]
	if d.pending {
		return
	}
	d.pending, d.pprev, d.pnext = true, t.ptail, -1
	if t.ptail >= 0 {
		t.slab[t.ptail].pnext = i
	} else {
		t.phead = i
	}
	t.ptail = i
}

// unpend takes i off the pending list.
func (t *dialogs) unpend(i int32) {
	d := &t.slab[i]
	if !d.pending {
		return
	}
	if d.pprev >= 0 {
		t.slab[d.pprev].pnext = d.pnext
	} else {
		t.phead = d.pnext
	}
	if d.pnext >= 0 {
		t.slab[d.pnext].pprev = d.pprev
	} else {
		t.ptail = d.pprev
	}
	d.pending, d.pprev, d.pnext = false, -1, -1
}
