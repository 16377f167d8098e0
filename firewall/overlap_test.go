package firewall

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/testutil"
)

// naiveOverlap is newOverlap as it was: each network against every held
// one and every earlier one of nets, the reference it must agree with.
func naiveOverlap(held map[netip.Prefix]time.Time, gone map[netip.Prefix]bool, nets []netip.Prefix, now time.Time) bool {
	for i, p := range nets {
		for q, exp := range held {
			if q != p && !gone[q] && q.Bits() != q.Addr().BitLen() && exp.After(now) && q.Overlaps(p) {
				return true
			}
		}
		for _, q := range nets[:i] {
			if q != p && q.Overlaps(p) {
				return true
			}
		}
	}
	return false
}

// randNets returns n random networks (and addresses) in a few small
// ranges, so that many overlap.
func randNets(r *rand.Rand, n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		if r.IntN(4) == 0 {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(4)), byte(r.IntN(256))})
			out[i], _ = a.Prefix(40 + r.IntN(89))
			continue
		}
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
		out[i], _ = a.Prefix(16 + r.IntN(17))
	}
	return out
}

// TestNewOverlap: the sorted check finds an overlap exactly when the
// check of every pair does, over random mixes of held, lifted, expired
// and new networks, many and few (the two ways newOverlap looks inside).
func TestNewOverlap(t *testing.T) {
	now := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	found := 0
	for round := range 3000 {
		held := map[netip.Prefix]time.Time{}
		gone := map[netip.Prefix]bool{}
		for _, q := range randNets(r, r.IntN(30)) {
			held[q] = now.Add(time.Duration(r.IntN(3)-1) * time.Hour) // some expired
			if r.IntN(5) == 0 {
				gone[q] = true
			}
		}
		var nets []netip.Prefix
		seen := map[netip.Prefix]bool{}
		for _, p := range randNets(r, 1+r.IntN(20)) {
			if p.Bits() != p.Addr().BitLen() && !seen[p] {
				seen[p] = true
				nets = append(nets, p)
			}
		}
		want := naiveOverlap(held, gone, nets, now)
		err := newOverlap(held, gone, nets, now)
		if (err != nil) != want {
			t.Fatalf("round %d: held %v gone %v nets %v: newOverlap %v; pairwise: overlap %v", round, held, gone, nets, err, want)
		}
		if err != nil {
			found++
			if !err.Prefix.Overlaps(err.With) || !seen[err.Prefix] {
				t.Fatalf("round %d: %v: not an overlap of a new network", round, err)
			}
		}
	}
	if found < 300 || found > 2700 {
		t.Errorf("%d of 3000 rounds overlapped: the mixes test too little", found)
	}
}

// TestNewOverlapScales: 50,000 new networks among 50,000 held take about
// 10 times 5,000 among 5,000 (it was 100: each against every other and
// every held, 10.9 s of the daemon's core for 50,000).
func TestNewOverlapScales(t *testing.T) {
	mk := func(n, base int) []netip.Prefix {
		out := make([]netip.Prefix, n)
		for i := range out {
			k := base + i
			out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 10), byte(k >> 2), byte(k << 6)}), 26)
		}
		return out
	}
	now := time.Now()
	testutil.Linear(t, "new networks among as many held", 5000, 50, func(n int) time.Duration {
		held := map[netip.Prefix]time.Time{}
		for _, q := range mk(n, 0) {
			held[q] = now.Add(time.Hour)
		}
		nets := mk(n, n)
		start := time.Now()
		if err := newOverlap(held, nil, nets, now); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	})
}
