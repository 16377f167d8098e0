package bans

import (
	"net/netip"
	"slices"
)

// Index answers "does p overlap one of these networks?" in O(distinct
// lengths + log n), for lists of 100,000 entries (feeds, imports) checked
// against each other or against the bans in force.
type Index struct {
	set     map[netip.Prefix]struct{}
	sorted  []netip.Prefix // by address
	lengths []int          // distinct prefix lengths, ascending
	dirty   bool           // sorted needs sorting
}

// NewIndex returns an index of ps.
func NewIndex(ps ...netip.Prefix) *Index {
	ix := &Index{set: make(map[netip.Prefix]struct{}, len(ps))}
	for _, p := range ps {
		ix.Add(p)
	}
	return ix
}

// Add adds p to the index.
func (ix *Index) Add(p netip.Prefix) {
	if _, ok := ix.set[p]; ok {
		return
	}
	ix.set[p] = struct{}{}
	ix.sorted = append(ix.sorted, p)
	// Kept in order as they come (129 at most): Contains needs them so,
	// and an import adds and asks in turn (a sort of every entry at each
	// question took 5 s for 50,000).
	if i, found := slices.BinarySearch(ix.lengths, p.Bits()); !found {
		ix.lengths = slices.Insert(ix.lengths, i, p.Bits())
	}
	ix.dirty = true
}

// Has reports whether p itself is in the index.
func (ix *Index) Has(p netip.Prefix) bool {
	_, ok := ix.set[p]
	return ok
}

func (ix *Index) sort() {
	if !ix.dirty {
		return
	}
	slices.SortFunc(ix.sorted, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	ix.dirty = false
}

// Contains reports whether a network of the index strictly contains p.
func (ix *Index) Contains(p netip.Prefix) bool {
	for _, b := range ix.lengths {
		if b >= p.Bits() {
			break
		}
		if ix.Has(mask(p.Addr(), b)) {
			return true
		}
	}
	return false
}

// Overlaps reports whether p overlaps a network of the index: one that
// contains p, equals it, or lies inside it.
func (ix *Index) Overlaps(p netip.Prefix) bool {
	if len(ix.sorted) == 0 {
		return false
	}
	if ix.Has(p) || ix.Contains(p) {
		return true
	}
	ix.sort()
	// A network inside p: the first one at or after p's address.
	i, _ := slices.BinarySearchFunc(ix.sorted, p.Addr(), func(q netip.Prefix, a netip.Addr) int { return q.Addr().Compare(a) })
	return i < len(ix.sorted) && p.Contains(ix.sorted[i].Addr())
}

// mask returns the network of length bits that contains a (invalid when
// bits is out of range for a's family).
func mask(a netip.Addr, bits int) netip.Prefix {
	p, _ := a.Prefix(bits)
	return p
}
