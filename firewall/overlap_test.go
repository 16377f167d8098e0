package firewall

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
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

// TestNewOverlapEdges: cases the random mixes seldom make agree with the
// pairwise check, with few new networks and with many (padded with
// networks far from the rest): the widest networks of both families,
// addresses held at a network's start, the same network held and new or
// twice new, a network held and lifted, held networks that overlap.
func TestNewOverlapEdges(t *testing.T) {
	now := time.Now()
	ps := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		held, gone, nets []netip.Prefix
		want             bool
	}{
		{ps("10.0.0.0/8"), nil, ps("0.0.0.0/0"), true},
		{ps("2001:db8::/32"), nil, ps("::/0"), true},
		{ps("2001:db8::/32", "::/0"), ps("::/0"), ps("0.0.0.0/0"), false}, // families apart
		{ps("0.0.0.0/0"), nil, ps("255.255.255.254/31"), true},
		{ps("::/0"), nil, ps("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"), true},
		{ps("10.0.0.0/32", "10.0.0.0/24"), ps("10.0.0.0/24"), ps("10.0.0.0/16"), false}, // an address at its start
		{ps("10.0.0.0/16"), nil, ps("10.0.0.0/16"), false},                              // a re-ban
		{nil, nil, ps("10.0.0.0/16", "10.0.0.0/16"), false},
		{nil, nil, ps("10.0.0.0/16", "10.0.0.0/16", "10.0.1.0/24"), true},
		{ps("10.0.0.0/16"), ps("10.0.0.0/16"), ps("10.0.0.0/8", "10.0.0.0/16"), true}, // lifted, and banned again
		{ps("10.0.0.0/16", "10.0.0.0/24"), ps("10.0.0.0/16"), ps("10.0.0.0/8"), true}, // held overlapping
		{ps("::ffff:10.0.0.0/104"), nil, ps("10.0.0.0/8"), false},                     // not normalised: apart
	} {
		held := map[netip.Prefix]time.Time{}
		for _, q := range tc.held {
			held[q] = now.Add(time.Hour)
		}
		gone := map[netip.Prefix]bool{}
		for _, q := range tc.gone {
			gone[q] = true
		}
		// Apart from the rest: IPv6 beside an IPv4 /0.
		v4zero := slices.Contains(append(slices.Clone(tc.held), tc.nets...), netip.MustParsePrefix("0.0.0.0/0"))
		pad := make([]netip.Prefix, 9)
		for i := range pad {
			pad[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i), 0}), 24)
			if v4zero {
				pad[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfc, 0, byte(i)}), 48)
			}
		}
		for _, nets := range [][]netip.Prefix{tc.nets, append(slices.Clone(tc.nets), pad...)} {
			if naive := naiveOverlap(held, gone, nets, now); naive != tc.want {
				t.Fatalf("held %v gone %v nets %v: the pairwise check says %v; want %v", tc.held, tc.gone, nets, naive, tc.want)
			}
			if err := newOverlap(held, gone, nets, now); (err != nil) != tc.want {
				t.Errorf("held %v gone %v nets %v: %v; want overlap %v", tc.held, tc.gone, nets, err, tc.want)
			}
		}
	}
}

// naiveDrop is dropOverlaps as it was: widest first, each network against
// every one kept, the reference it must agree with.
func naiveDrop(nets map[netip.Prefix]time.Time) (kept []netip.Prefix, errs []*OverlapError) {
	sorted := slices.Collect(maps.Keys(nets))
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})
	for _, p := range sorted {
		if i := slices.IndexFunc(kept, p.Overlaps); i >= 0 {
			errs = append(errs, &OverlapError{Prefix: p, With: kept[i]})
			continue
		}
		kept = append(kept, p)
	}
	return kept, errs
}

// TestDropOverlaps: what Sync keeps of overlapping networks, and the
// errors it reports, are those of the check of each against every one
// kept, over random mixes of nested IPv4 and IPv6 networks.
func TestDropOverlaps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	now := time.Now()
	dropped := 0
	for round := range 2000 {
		nets := map[netip.Prefix]time.Time{}
		for _, p := range randNets(r, r.IntN(40)) {
			if p.Bits() != p.Addr().BitLen() {
				nets[p] = now
			}
		}
		wantKept, wantErrs := naiveDrop(nets)
		errs := dropOverlaps(nets)
		kept := slices.Collect(maps.Keys(nets))
		slices.SortFunc(kept, comparePrefix)
		slices.SortFunc(wantKept, comparePrefix)
		if !slices.Equal(kept, wantKept) || len(errs) != len(wantErrs) {
			t.Fatalf("round %d: kept %v, %d errors; want %v, %d", round, kept, len(errs), wantKept, len(wantErrs))
		}
		for i, err := range errs {
			if oe := err.(*OverlapError); *oe != *wantErrs[i] {
				t.Fatalf("round %d: error %d: %v; want %v", round, i, oe, wantErrs[i])
			}
		}
		dropped += len(errs)
	}
	if dropped < 1000 {
		t.Errorf("%d networks dropped in 2000 rounds: the mixes test too little", dropped)
	}
}

// TestDropOverlapsScales: a restart with 50,000 networks takes about 10
// times one with 5,000 (each against every one kept, it took 100 times:
// 2.1 s for 20,000, holding the firewall).
func TestDropOverlapsScales(t *testing.T) {
	now := time.Now()
	testutil.Linear(t, "networks loaded at a restart", 5_000, 50, func(n int) time.Duration {
		nets := make(map[netip.Prefix]time.Time, n)
		for k := range n {
			nets[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 10), byte(k >> 2), byte(k << 6)}), 26)] = now
		}
		start := time.Now()
		if errs := dropOverlaps(nets); len(errs) != 0 {
			t.Fatal(errs)
		}
		return time.Since(start)
	})
}
