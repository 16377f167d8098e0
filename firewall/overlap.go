package firewall

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Overlaps are checked before a transaction, as the kernel would refuse
// them (its interval sets hold no overlapping ranges), but so that the
// caller learns which ban overlaps which. A feed's first load or an
// import brings tens of thousands of networks at once: a check of each
// against every other, and against every network held, took 10.9 s of
// the daemon's core for 50,000 (measured by an attack on issue 20); these
// take O(n log n).

// newOverlap returns an *OverlapError for a network of nets that
// overlaps one held in its profile (held, but not gone: lifted in the same
// transaction), or another of nets, or nil. held may hold addresses too:
// they never overlap (they have sets of their own). The same network again is no
// overlap (a re-ban). Networks are either nested or apart, so each needs
// a look at the networks around it (one map lookup per shorter length)
// and, in order by address, at the held networks from its start on; and
// in nets sorted by address, a network inside an earlier one is inside
// the one just before it.
func newOverlap(held map[netip.Prefix]time.Time, gone map[netip.Prefix]bool, nets []netip.Prefix, now time.Time) *OverlapError {
	if len(nets) == 0 {
		return nil
	}
	live := func(q netip.Prefix) bool { // a network (addresses have sets of their own) in force
		exp, ok := held[q]
		return ok && !gone[q] && exp.After(now) && q.Bits() != q.Addr().BitLen()
	}
	// The held networks inside one of nets: sorted once for many nets; a
	// scan of them costs less for a few.
	var sorted []netip.Prefix
	if len(nets) > 8 {
		sorted = make([]netip.Prefix, 0, len(held))
		for q := range held {
			if live(q) {
				sorted = append(sorted, q)
			}
		}
		slices.SortFunc(sorted, comparePrefix)
	}
	for _, p := range nets {
		if q, ok := around(p, live); ok {
			return &OverlapError{Prefix: p, With: q, Until: held[q]}
		}
		if sorted == nil {
			for q := range held {
				if q.Bits() > p.Bits() && p.Contains(q.Addr()) && live(q) {
					return &OverlapError{Prefix: p, With: q, Until: held[q]}
				}
			}
			continue
		}
		if q, ok := inside(sorted, p); ok {
			return &OverlapError{Prefix: p, With: q, Until: held[q]}
		}
	}
	order := slices.Clone(nets)
	slices.SortFunc(order, comparePrefix)
	for k := 1; k < len(order); k++ {
		if a, b := order[k-1], order[k]; a != b && a.Contains(b.Addr()) {
			return &OverlapError{Prefix: b, With: a}
		}
	}
	return nil
}

// dropOverlaps removes from nets the networks overlapping a wider one (or
// an equal-length one before it in address order) and returns an
// *OverlapError for each: what Sync does with the entries it is given.
// Taken widest first, a network overlaps one kept only if one kept is
// around it (one map lookup per shorter length): a scan of every kept
// network for each took 2.1 s for 20,000 networks at a restart, holding
// the firewall.
func dropOverlaps(nets map[netip.Prefix]time.Time) []error {
	if len(nets) < 2 {
		return nil
	}
	sorted := make([]netip.Prefix, 0, len(nets))
	for p := range nets {
		sorted = append(sorted, p)
	}
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})
	var errs []error
	kept := make(map[netip.Prefix]bool, len(nets))
	for _, p := range sorted {
		// The kept networks never overlap: at most one is around p.
		if q, ok := around(p, func(q netip.Prefix) bool { return kept[q] }); ok {
			errs = append(errs, &OverlapError{Prefix: p, With: q})
			delete(nets, p)
			continue
		}
		kept[p] = true
	}
	return errs
}

// around returns a network strictly around p that is in (one map lookup
// per shorter length).
func around(p netip.Prefix, in func(netip.Prefix) bool) (netip.Prefix, bool) {
	for bits := 0; bits < p.Bits(); bits++ {
		if q, _ := p.Addr().Prefix(bits); in(q) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// inside returns a network of sorted (by comparePrefix) strictly inside
// p: by address, the first at or after p's start.
func inside(sorted []netip.Prefix, p netip.Prefix) (netip.Prefix, bool) {
	i, _ := slices.BinarySearchFunc(sorted, p, comparePrefix)
	for ; i < len(sorted) && p.Contains(sorted[i].Addr()); i++ {
		if sorted[i].Bits() > p.Bits() {
			return sorted[i], true
		}
	}
	return netip.Prefix{}, false
}

// comparePrefix orders prefixes by address, then the wider first.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
