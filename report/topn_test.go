package report

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
)

// TestTopNBounded: a stream of many keys never holds more than 2*size of
// them, every count is within its err of the truth, and the heavy hitters
// are the top, nearly exact.
func TestTopNBounded(t *testing.T) {
	const size, heavy = 50, 10
	c := newTopN[int, struct{}](size)
	truth := map[int]int64{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200_000 {
		k := 100 + rng.IntN(100_000) // the long tail: mostly seen once
		if i%4 == 0 {
			k = rng.IntN(heavy) // ten heavy hitters: 5,000 each
		}
		c.add(k, 0)
		truth[k]++
		if len(c.ents) > 2*size {
			t.Fatalf("holds %d keys, more than %d", len(c.ents), 2*size)
		}
	}
	top := c.top(heavy, cmp.Compare[int])
	for _, e := range top {
		if e.Key >= heavy {
			t.Errorf("key %d (count %d) in the top %d", e.Key, e.Count, heavy)
		}
	}
	for _, e := range c.top(2*size, cmp.Compare[int]) {
		if tr := truth[e.Key]; e.Key < heavy && e.Err > 10 || e.Count > tr || e.Count+e.Err < tr {
			t.Errorf("key %d: count %d err %d, true %d", e.Key, e.Count, e.Err, tr)
		}
	}
}

// TestTimelineWidens: a year of logs, counted by the minute at first, ends
// in buckets of 12 hours (730 of them: at most maxBuckets), the counts all
// kept; a report of it fits in reportBuckets.
func TestTimelineWidens(t *testing.T) {
	tl := newTimeline(1)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hours := 24 * 365
	for h := range hours {
		tl.add(start.Add(time.Duration(h)*time.Hour), 1, -1)
	}
	tl.add(start, -1, 0)
	if tl.hi-tl.lo >= maxBuckets || tl.width != 12*3600 || len(tl.buckets) != 730 {
		t.Errorf("width %ds, %d buckets", tl.width, tl.hi-tl.lo+1)
	}
	var failures, bans int64
	for _, b := range tl.buckets {
		failures += b.kinds[1]
		bans += b.bans[0]
	}
	if failures != int64(hours) || bans != 1 {
		t.Errorf("%d failures, %d bans", failures, bans)
	}
	tl.fit(reportBuckets)
	if tl.hi-tl.lo >= reportBuckets || tl.width != 7*24*3600 {
		t.Errorf("fit: width %ds, %d buckets", tl.width, tl.hi-tl.lo+1)
	}
	// A wild timestamp widens the buckets instead of growing them.
	tl.add(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 1, -1)
	if tl.hi-tl.lo >= maxBuckets || len(tl.buckets) > maxBuckets {
		t.Errorf("after 1970: width %ds, %d buckets", tl.width, len(tl.buckets))
	}
}

func TestClip(t *testing.T) {
	long := ""
	for range 40 {
		long += "é" // two bytes
	}
	if got := clip(long); len(got) > maxUser+len("…") || got != long[:64]+"…" {
		t.Errorf("clip: %q", got)
	}
	if clip("1001") != "1001" {
		t.Error("clip cut a short name")
	}
}

// TestCollectorBounded feeds a Collector 300,000 failures, each from a new
// address, with a new user name and extension, over a year: what it holds
// stays within its bounds, whatever the number of lines.
func TestCollectorBounded(t *testing.T) {
	eng, err := engine.New(engine.Options{
		Rules: []engine.Rule{{Name: "burst", Kinds: parsers.AllKinds, MaxRetry: 5, FindTime: time.Minute, BanTime: time.Hour, Factor: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const capacity = 100
	c := NewCollector(eng, Options{Capacity: capacity})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 300_000
	for i := range n {
		kind := parsers.AuthFailed
		if i%3 == 0 {
			kind = parsers.UnknownExtension
		}
		ev := parsers.Event{
			Time: start.Add(time.Duration(i) * 100 * time.Second), Kind: kind, Service: parsers.SIP,
			Addr: netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1}), User: fmt.Sprintf("user-%d", i),
		}
		c.Add(&ev)
	}
	for name, size := range map[string]int{
		"addresses": len(c.addrs.ents), "networks": len(c.nets.ents), "accounts": len(c.accounts.ents),
		"extensions": len(c.exts.ents), "below rules": len(c.unbanned.ents),
	} {
		if size > 2*capacity || size == 0 {
			t.Errorf("%s: %d keys held, want 1 to %d", name, size, 2*capacity)
		}
	}
	if len(c.timeline.buckets) > maxBuckets {
		t.Errorf("%d time buckets", len(c.timeline.buckets))
	}
	r := c.Report(nil)
	if r.Totals.Failures != n || len(r.Addresses) != DefaultTop || len(r.Timeline) > reportBuckets {
		t.Errorf("%d failures, %d addresses, %d buckets", r.Totals.Failures, len(r.Addresses), len(r.Timeline))
	}
	// Every address was seen once: the counts are 1, and the list forgot
	// some (the keys it held from the start are exact).
	for _, a := range r.Addresses {
		if a.Failures != 1 {
			t.Errorf("address %+v", a)
		}
	}
	if c.addrs.lost == 0 {
		t.Error("the address list never forgot a key")
	}
}
