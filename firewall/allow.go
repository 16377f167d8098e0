package firewall

import (
	"fmt"
	"net/netip"
	"slices"
)

// addrRange is the addresses from lo to hi, both included, of one family.
type addrRange struct{ lo, hi netip.Addr }

// allowRanges turns an allowlist into sorted, disjoint ranges per family:
// entries that overlap or touch are merged, because a kernel interval set
// refuses overlapping elements. IPv4-mapped IPv6 entries count as IPv4
// (see Normalize).
func allowRanges(allow []netip.Prefix) (v4, v6 []addrRange, err error) {
	var rs []addrRange
	for _, p := range allow {
		q, err := Normalize(p)
		if err != nil {
			return nil, nil, fmt.Errorf("allowlist: %w", err)
		}
		rs = append(rs, addrRange{q.Addr(), lastAddr(q)})
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	for _, r := range rs {
		out := &v6
		if r.lo.Is4() {
			out = &v4
		}
		if n := len(*out); n > 0 {
			last := &(*out)[n-1]
			if next := last.hi.Next(); !next.IsValid() || r.lo.Compare(next) <= 0 {
				// Overlaps or touches the previous range (or that one
				// reaches the top of the address space).
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		*out = append(*out, r)
	}
	return v4, v6, nil
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
