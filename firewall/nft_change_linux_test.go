//go:build linux

package firewall

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestChangeOpsRefresh: a ban of a prefix the kernel holds is refreshed
// (add, delete, add: a plain add leaves its old timeout before kernel
// 6.12) even beside a lift in the same Change, unless it overlaps a
// network lifted there. Addresses never overlap networks (they have sets
// of their own): a lifted network does not stop the refresh of an address
// inside it, nor a lifted address that of a network around it, as when
// the daemon extends a network and lifts the address it covered.
func TestChangeOpsRefresh(t *testing.T) {
	host, net8, net16 := netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")
	for _, tc := range []struct {
		name    string
		held    []netip.Prefix
		lift    []netip.Prefix
		ban     netip.Prefix
		refresh bool
	}{
		{"address inside a lifted network", []netip.Prefix{net8, host}, []netip.Prefix{net8}, host, true},
		{"network around a lifted address", []netip.Prefix{net8, host}, []netip.Prefix{host}, net8, true},
		{"network around a lifted network", []netip.Prefix{net16}, []netip.Prefix{net16}, net8, false},
		{"network inside a lifted network", []netip.Prefix{net8}, []netip.Prefix{net8}, net16, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := &profile{bans: map[netip.Prefix]time.Time{}, nets: map[netip.Prefix]time.Time{}}
			n := &NFT{profiles: []*profile{pr}, synced: true}
			for _, p := range tc.held {
				pr.mapFor(p)[p] = time.Now().Add(time.Hour)
			}
			var gone []banItem
			for _, p := range tc.lift {
				gone = append(gone, banItem{pr: pr, p: p})
			}
			o := n.changeOps(gone, []banItem{{pr, tc.ban, 2 * time.Hour}})
			var pre [4][]netip.Addr
			for k, els := range o.pre[0] {
				for _, e := range els {
					a, _ := netip.AddrFromSlice(e.Key)
					pre[k] = append(pre[k], a)
				}
			}
			if got := slices.Contains(pre[kindOf(tc.ban)], tc.ban.Addr()); got != tc.refresh {
				t.Errorf("ban of %s beside lifts of %v: refreshed %v; want %v", tc.ban, tc.lift, got, tc.refresh)
			}
		})
	}
}
