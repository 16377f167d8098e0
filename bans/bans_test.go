package bans_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/internal/testutil"
)

var now = time.UnixMilli(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli())

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func rec(target string, o bans.Origin, left time.Duration) *bans.Record {
	return &bans.Record{Target: pfx(target), Origin: o, Rule: "burst", Since: now, Expires: now.Add(left)}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      string // substring of the error; "" for none
		masked   string // HostBitsError.Masked
	}{
		{in: "198.51.100.7", want: "198.51.100.7/32"},
		{in: " 198.51.100.7\t", want: "198.51.100.7/32"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::ffff:198.51.100.7", want: "198.51.100.7/32"},
		{in: "203.0.113.0/24", want: "203.0.113.0/24"},
		{in: "2001:db8::/64", want: "2001:db8::/64"},
		{in: "::ffff:203.0.113.0/120", want: "203.0.113.0/24"},
		{in: "::ffff:198.51.100.7/128", want: "198.51.100.7/32"}, // an allowlist entry written mapped matches
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "10.1.2.3/8", err: `"10.1.2.3/8" has host bits set (did you mean 10.0.0.0/8?)`, masked: "10.0.0.0/8"},
		{in: "::ffff:203.0.113.7/120", err: "host bits", masked: "203.0.113.0/24"},
		{in: "fe80::1%eth0", err: "not an IP address or CIDR"},
		{in: "example.com", err: `"example.com": not an IP address or CIDR`},
		{in: "198.51.100.7/33", err: "not an IP address or CIDR"},
		{in: "", err: "not an IP address or CIDR"},
		{in: "198.51.100.7 # comment", err: "not an IP address or CIDR"},
	} {
		got, err := bans.ParseTarget(tc.in)
		if tc.err == "" {
			if err != nil || got != pfx(tc.want) {
				t.Errorf("ParseTarget(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, bans.ErrNotTarget) {
			t.Errorf("ParseTarget(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			continue
		}
		var hb *bans.HostBitsError
		if errors.As(err, &hb) != (tc.masked != "") || tc.masked != "" && hb.Masked != pfx(tc.masked) {
			t.Errorf("ParseTarget(%q): %#v; want masked %q", tc.in, err, tc.masked)
		}
	}
}

// TestSpecial: the special-purpose address space is never banned, nor a
// network holding any of it; the documentation ranges (every test's
// attackers) and ordinary networks are not special.
func TestSpecial(t *testing.T) {
	for _, tc := range []struct{ in, why string }{
		{"0.0.0.0/32", `"this network" (0.0.0.0/8)`},
		{"0.0.0.0/8", `"this network"`},
		{"0.1.2.3/32", `"this network"`},
		{"127.0.0.1/32", "loopback (127.0.0.0/8)"},
		{"127.0.0.0/7", "a network holding loopback"},
		{"169.254.169.254/32", "link-local (169.254.0.0/16)"},
		{"224.0.0.0/8", "multicast"},
		{"239.255.255.250/32", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"255.255.255.0/24", "a network holding the broadcast address"},
		{"128.0.0.0/1", "a network holding link-local"},
		{"::/128", "the unspecified address"},
		{"::1/128", "loopback (::1)"},
		{"::/64", "a network holding loopback (::1)"},
		{"::102:304/128", "IPv4-compatible"},
		{"::ffff:127.0.0.1/128", "loopback (127.0.0.0/8)"}, // as the firewall reads it
		{"::ffff:0:0/96", "a network holding \"this network\""},
		{"::fffe:0:0/95", "a network holding IPv4-mapped"},
		{"fe80::1/128", "link-local (fe80::/10)"},
		{"fe80::/64", "link-local"},
		{"fe80::/19", "link-local"},
		{"fe00::/7", "a network holding link-local"},
		{"ff02::1/128", "multicast (ff00::/8)"},
		{"ff02::/19", "multicast"},
		{"::/0", "a network holding loopback"},
	} {
		why, bad := bans.Special(pfx(tc.in))
		if !bad || !strings.Contains(why, tc.why) {
			t.Errorf("Special(%s) = %q, %v; want %q", tc.in, why, bad, tc.why)
		}
	}
	if _, bad := bans.Special(netip.Prefix{}); !bad {
		t.Error("an invalid prefix is not special")
	}
	for _, in := range []string{
		"192.0.2.1/32", "198.51.100.0/24", "203.0.113.44/32", "2001:db8::1/128", "2001:db8::/32", "2001:db8:1::/64",
		"10.0.0.1/32", "192.168.0.0/16", "100.64.0.0/10", "1.0.0.0/8", "126.0.0.0/8", "128.0.0.0/8", "223.255.255.255/32",
		"240.0.0.0/5", "255.255.255.254/32", "64:ff9b::c000:201/128", "::ffff:198.51.100.7/128", "fd00::/8", "fec0::/10", "2000::/3", "1::/64",
	} {
		if why, bad := bans.Special(pfx(in)); bad {
			t.Errorf("Special(%s) = %q: not special", in, why)
		}
	}
}

// TestPlan is the ledger's rules for new bans: a network ban inside a
// wider one in force is not needed, a wider one replaces the narrower
// ones inside it, addresses are never covered, ended bans cover nothing.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		held    []*bans.Record
		add     []string
		enforce []string
		replace []string
		covered []string
	}{
		{name: "empty", add: []string{"198.51.100.7/32", "2001:db8::/64"}, enforce: []string{"198.51.100.7/32", "2001:db8::/64"}},
		{
			name: "network inside a wider one", held: []*bans.Record{rec("2001:db8::/48", bans.ByHand, time.Hour)},
			add: []string{"2001:db8:0:1::/64"}, covered: []string{"2001:db8:0:1::/64"},
		},
		{
			name: "address inside a network is its own element", held: []*bans.Record{rec("203.0.113.0/24", bans.ByHand, time.Hour)},
			add: []string{"203.0.113.7/32"}, enforce: []string{"203.0.113.7/32"},
		},
		{
			name: "an ended ban covers nothing", held: []*bans.Record{rec("2001:db8::/48", bans.ByHand, -time.Second)},
			add: []string{"2001:db8::/64"}, enforce: []string{"2001:db8::/64"},
		},
		{
			name: "wider replaces narrower",
			held: []*bans.Record{rec("2001:db8:0:1::/64", bans.ByRule, time.Hour), rec("2001:db8:0:2::/64", bans.ByRule, time.Hour),
				rec("2001:db8:1::/64", bans.ByRule, time.Hour), rec("2001:db8::7/128", bans.ByRule, time.Hour)},
			add: []string{"2001:db8::/48"}, enforce: []string{"2001:db8::/48"},
			replace: []string{"2001:db8:0:1::/64", "2001:db8:0:2::/64"},
		},
		{
			// Those inside a wider ban in force are not in the kernel: a
			// wider one (or its renewal) leaves them, covered.
			name: "covered ones stay",
			held: []*bans.Record{rec("100.70.0.0/16", bans.FromPeer("m"), time.Hour), rec("100.70.1.0/24", bans.FromPeer("n"), time.Hour),
				rec("100.70.0.0/20", bans.FromPeer("n"), time.Hour)},
			add: []string{"100.70.0.0/16", "100.70.0.0/15"}, enforce: []string{"100.70.0.0/15"},
			replace: []string{"100.70.0.0/16"}, covered: []string{"100.70.0.0/16"},
		},
		{
			name: "same target renews", held: []*bans.Record{rec("203.0.113.0/24", bans.ByHand, time.Hour)},
			add: []string{"203.0.113.0/24"}, enforce: []string{"203.0.113.0/24"},
		},
		{
			// The kernel would refuse both: the narrower one waits, recorded,
			// for the wider one to go, whichever came first in the batch.
			name: "wider in the same batch covers", held: nil,
			add:     []string{"198.51.100.0/25", "198.51.100.0/24", "198.51.100.128/26", "198.51.100.7/32", "203.0.113.0/25"},
			enforce: []string{"198.51.100.0/24", "198.51.100.7/32", "203.0.113.0/25"},
			covered: []string{"198.51.100.0/25", "198.51.100.128/26"},
		},
		{
			name: "families apart", held: []*bans.Record{rec("0.0.0.0/1", bans.ByHand, time.Hour)},
			add: []string{"::/64", "10.0.0.0/8"}, enforce: []string{"::/64"}, covered: []string{"10.0.0.0/8"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := bans.NewLedger()
			for _, r := range tc.held {
				l.Put(r)
			}
			var add []*bans.Record
			for _, a := range tc.add {
				add = append(add, rec(a, bans.ByRule, time.Hour))
			}
			p := l.Plan(add, now)
			targets := func(rs []*bans.Record) []string {
				var out []string
				for _, r := range rs {
					out = append(out, r.Target.String())
				}
				return out
			}
			var replace []string
			for _, q := range p.Replace {
				replace = append(replace, q.Target.String())
			}
			if !slices.Equal(targets(p.Enforce), tc.enforce) || !slices.Equal(replace, tc.replace) || !slices.Equal(targets(p.Covered), tc.covered) {
				t.Errorf("plan: enforce %v, replace %v, covered %v; want %v, %v, %v",
					targets(p.Enforce), replace, targets(p.Covered), tc.enforce, tc.replace, tc.covered)
			}
			if l.Len() != len(tc.held) {
				t.Errorf("Plan changed the ledger: %d bans", l.Len())
			}
		})
	}
}

// TestPlanProfiles: a network ban covers or replaces only bans of its
// own ports profile (other profiles' sets hold other ports' bans), and a
// record of each origin is kept per profile.
func TestPlanProfiles(t *testing.T) {
	const gui = "80/tcp,443/tcp"
	inGUI := func(r *bans.Record) *bans.Record { r.Ports = gui; return r }
	l := bans.NewLedger()
	l.Put(inGUI(rec("203.0.113.0/24", bans.ByRule, time.Hour)))
	l.Put(rec("198.51.100.0/25", bans.ByRule, time.Hour))
	p := l.Plan([]*bans.Record{
		rec("203.0.113.0/25", bans.ByRule, time.Hour),          // the default: not covered by the GUI's /24
		inGUI(rec("203.0.113.128/25", bans.ByRule, time.Hour)), // covered
		inGUI(rec("198.51.100.0/24", bans.ByRule, time.Hour)),  // replaces nothing: the /25 is the default's
		rec("198.51.100.0/23", bans.ByRule, time.Hour),         // replaces the default's /25
	}, now)
	var enforce, covered []string
	for _, r := range p.Enforce {
		enforce = append(enforce, r.Target.String()+" "+r.Ports)
	}
	for _, r := range p.Covered {
		covered = append(covered, r.Target.String()+" "+r.Ports)
	}
	if want := []string{"203.0.113.0/25 ", "198.51.100.0/24 " + gui, "198.51.100.0/23 "}; !slices.Equal(enforce, want) {
		t.Errorf("enforce %q; want %q", enforce, want)
	}
	if want := []string{"203.0.113.128/25 " + gui}; !slices.Equal(covered, want) {
		t.Errorf("covered %q; want %q", covered, want)
	}
	if want := []bans.Replaced{{Target: pfx("198.51.100.0/25")}}; !slices.Equal(p.Replace, want) {
		t.Errorf("replace %+v; want %+v", p.Replace, want)
	}
	// One record per origin and profile; UntilIn reads one profile.
	l.Put(rec("203.0.113.0/24", bans.ByRule, 2*time.Hour))
	if got := len(l.RecordsOf(pfx("203.0.113.0/24"))); got != 2 {
		t.Errorf("%d records of the /24; want one per profile", got)
	}
	if got := l.UntilIn(pfx("203.0.113.0/24"), gui, now); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("UntilIn the GUI profile: %v", got)
	}
}

func TestLedger(t *testing.T) {
	l := bans.NewLedger()
	a, n := rec("198.51.100.7/32", bans.ByRule, time.Hour), rec("2001:db8::/48", bans.FromFeed("drop"), time.Minute)
	if old := l.Put(a); old != nil {
		t.Errorf("Put replaced %+v", old)
	}
	l.Put(n)
	renewed := rec("198.51.100.7/32", bans.ByRule, 2*time.Hour)
	if old := l.Put(renewed); old != a {
		t.Errorf("Put replaced %+v; want the first record (same origin)", old)
	}
	if r, ok := l.Covering(pfx("2001:db8:0:5::/64"), "", now); !ok || r != n {
		t.Errorf("Covering = %v, %v", r, ok)
	}
	if got := l.Overlapping(pfx("2001:db8::1/128"), nil); !slices.Equal(got, []netip.Prefix{pfx("2001:db8::/48")}) {
		t.Errorf("Overlapping = %v", got)
	}
	if got := l.Overlapping(pfx("::/0"), func(r *bans.Record) bool { return r.Origin.Kind == bans.Manual }); len(got) != 0 {
		t.Errorf("Overlapping with a filter = %v", got)
	}
	if got := l.Ended(now.Add(time.Minute)); len(got) != 1 || got[0] != n {
		t.Errorf("Ended = %v", got)
	}
	if r := l.Remove(pfx("2001:db8::/48")); len(r) != 1 || r[0] != n || l.Len() != 1 {
		t.Errorf("Remove = %v, %d left", r, l.Len())
	}
	// Once removed, the network covers nothing: the length count is kept.
	if _, ok := l.Covering(pfx("2001:db8:0:5::/64"), "", now); ok {
		t.Error("a removed network still covers")
	}
	if l.Remove(pfx("2001:db8::/48")) != nil {
		t.Error("removed twice")
	}

	l.Remember(pfx("203.0.113.0/24"), bans.Lift{At: now, Until: now.Add(time.Hour)})
	if !l.Lifted(pfx("203.0.113.9/32"), now) || l.Lifted(pfx("203.0.113.9/32"), now.Add(time.Millisecond)) || l.Lifted(pfx("198.51.100.0/24"), now) {
		t.Error("Lifted: a ban made before the unban of an overlapping target is lifted, no other")
	}
	// Remembering it again extends it, never shortens it, and it stays
	// its first origin's.
	l.Remember(pfx("203.0.113.0/24"), bans.Lift{At: now.Add(-time.Hour), Until: now.Add(time.Minute), Origin: "pbx-x"})
	if u, _ := l.Remembered(pfx("203.0.113.0/24")); !u.At.Equal(now) || !u.Until.Equal(now.Add(time.Hour)) || u.Origin != "" {
		t.Errorf("an unban remembered again: %+v", u)
	}
	l.Remember(pfx("198.51.100.0/24"), bans.Lift{At: now, Until: now.Add(2 * time.Hour), Origin: "pbx-x"})
	if l.LiftsOf("pbx-x") != 1 || l.LiftsOf("") != 1 {
		t.Errorf("unbans of pbx-x %d, of this node %d; want 1 each", l.LiftsOf("pbx-x"), l.LiftsOf(""))
	}
	l.Forget(now.Add(time.Hour))
	if l.NumLifts() != 1 {
		t.Error("an unban remembered past its end, or one forgotten before")
	}
	l.Forget(now.Add(2 * time.Hour))
	if l.NumLifts() != 0 {
		t.Error("an unban remembered past its end")
	}
}

// TestLedgerUnion: a target banned by several origins is banned as long
// as the longest; removing one origin's record leaves the others (a peer
// cannot take over, then lift, this node's own ban).
// TestLedgerExpiry: the records ended are found by their expiry, not by a
// look at every record, whatever replaced or removed them; a Copy keeps
// the records of its moment while the ledger changes, and may be read on
// another goroutine meanwhile (the saver's: -race).
func TestLedgerExpiry(t *testing.T) {
	l := bans.NewLedger()
	short := rec("198.51.100.1/32", bans.ByRule, time.Minute)
	peer := rec("198.51.100.1/32", bans.FromPeer("pbx-b"), 2*time.Minute)
	renewed := rec("198.51.100.2/32", bans.ByRule, time.Minute)
	net := rec("203.0.113.0/24", bans.FromFeed("drop"), 3*time.Minute)
	for _, r := range []*bans.Record{short, peer, renewed, net} {
		l.Put(r)
	}
	before := l.Copy()
	later := rec("198.51.100.2/32", bans.ByRule, time.Hour)
	l.Put(later) // replaces renewed: it no longer ends at +1m
	l.RemoveIf(pfx("198.51.100.1/32"), func(r *bans.Record) bool { return r == peer })
	if got := l.Ended(now.Add(5 * time.Minute)); !slices.Equal(got, []*bans.Record{short, net}) {
		t.Errorf("Ended at +5m = %v; want the rule's short ban and the feed's network, by expiry", got)
	}
	if got := l.Ended(now.Add(30 * time.Second)); len(got) != 0 {
		t.Errorf("Ended at +30s = %v; want none", got)
	}

	done := make(chan []*bans.Record)
	go func() { done <- before.Records() }()
	for i := range 1000 { // changes while the copy is read
		l.Put(rec(fmt.Sprintf("192.0.2.%d/32", i%250+1), bans.FromPeer(fmt.Sprint(i)), time.Duration(i)*time.Second))
	}
	if got := <-done; !slices.Equal(got, []*bans.Record{short, renewed, peer, net}) {
		t.Errorf("the copy's records = %v; want the four of its moment, by expiry", got)
	}
	l.Remove(pfx("203.0.113.0/24"))
	if got := l.Records(); len(got) != 1002 || slices.Contains(got, net) || !slices.Contains(got, later) {
		t.Errorf("Records: %d, the removed network %v, the renewal %v", len(got), slices.Contains(got, net), slices.Contains(got, later))
	}
}

// TestCoverEnd: the next end of a network ban that holds others, whichever
// came first, the wider or the narrower; renewals, shortenings and ended
// bans move it; networks holding none, and addresses, never count.
func TestCoverEnd(t *testing.T) {
	l := bans.NewLedger()
	if got := l.CoverEnd(now); !got.IsZero() || l.TakeHoldChange() {
		t.Errorf("empty ledger: %v", got)
	}
	l.Put(rec("198.51.100.0/24", bans.FromPeer("a"), time.Minute)) // holds nothing
	l.Put(rec("198.51.100.7/32", bans.ByRule, 30*time.Second))     // an address: its own set
	if got := l.CoverEnd(now); !got.IsZero() {
		t.Errorf("no network inside another: %v", got)
	}
	// The narrower first, then the wider around it.
	l.Put(rec("203.0.113.0/25", bans.ByHand, time.Hour))
	l.Put(rec("203.0.113.0/24", bans.FromPeer("a"), 10*time.Minute))
	if !l.TakeHoldChange() || l.TakeHoldChange() {
		t.Error("a new holder not reported once")
	}
	if got := l.CoverEnd(now); !got.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("CoverEnd = %v; want the /24's end, +10m", got)
	}
	// The wider first, then the narrower: the wider holds it.
	l.Put(rec("100.64.0.0/16", bans.FromPeer("b"), 5*time.Minute))
	l.Put(rec("100.64.1.0/24", bans.FromPeer("c"), time.Hour))
	if got := l.CoverEnd(now); !got.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("CoverEnd = %v; want the /16's end, +5m", got)
	}
	// Renewed longer, then sooner by its origin: reported, and it moves.
	l.Put(rec("100.64.0.0/16", bans.FromPeer("b"), 20*time.Minute))
	if !l.TakeHoldChange() {
		t.Error("a holder's renewal not reported")
	}
	if got := l.CoverEnd(now); !got.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("CoverEnd after the /16's renewal = %v; want the /24's end, +10m", got)
	}
	l.Put(rec("100.64.0.0/16", bans.FromPeer("b"), 2*time.Minute))
	if got := l.CoverEnd(now); !got.Equal(now.Add(2 * time.Minute)) {
		t.Errorf("CoverEnd after the /16's shortening = %v; want +2m", got)
	}
	// Ended and not yet removed: due now; removed, the next one.
	at := now.Add(3 * time.Minute)
	if got := l.CoverEnd(at); !got.Equal(at) {
		t.Errorf("CoverEnd with the /16 ended, still held = %v; want now", got)
	}
	l.Remove(pfx("100.64.0.0/16"))
	if got := l.CoverEnd(at); !got.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("CoverEnd after the /16 went = %v; want the /24's end, +10m", got)
	}
	// The one inside gone: the /24 still counts (early, harmless) until
	// it goes too.
	l.Remove(pfx("203.0.113.0/25"))
	if got := l.CoverEnd(at); !got.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("CoverEnd with the /25 gone = %v; want the /24's end still, +10m", got)
	}
	l.Remove(pfx("203.0.113.0/24"))
	if got := l.CoverEnd(at); !got.IsZero() {
		t.Errorf("CoverEnd with nothing held = %v", got)
	}
}

func TestLedgerUnion(t *testing.T) {
	l := bans.NewLedger()
	local := rec("198.51.100.7/32", bans.ByRule, time.Hour)
	peer := rec("198.51.100.7/32", bans.FromPeer("pbx-b"), 3*time.Hour)
	feed := rec("198.51.100.7/32", bans.FromFeed("drop"), 2*time.Hour)
	for _, r := range []*bans.Record{local, peer, feed} {
		if old := l.Put(r); old != nil {
			t.Fatalf("Put(%v) replaced %v", r.Origin, old)
		}
	}
	if top, _ := l.Get(pfx("198.51.100.7/32")); top != peer || !l.Until(pfx("198.51.100.7/32"), now).Equal(peer.Expires) || l.Len() != 1 {
		t.Errorf("Get = %v, Until %v; want the peer's, the longest", top.Origin, l.Until(pfx("198.51.100.7/32"), now))
	}
	if r, ok := l.Of(pfx("198.51.100.7/32"), bans.ByRule); !ok || r != local {
		t.Errorf("Of(rule) = %v, %v", r, ok)
	}
	if w := l.Without(pfx("198.51.100.7/32"), func(r *bans.Record) bool { return r.Origin.Kind == bans.Peer }); w != feed {
		t.Errorf("Without the peer: %v; want the feed's", w)
	}
	// The peer lifts its own: this node's and the feed's stay.
	gone, rest := l.RemoveOrigin(pfx("198.51.100.7/32"), bans.FromPeer("pbx-b"))
	if gone != peer || rest != feed || len(l.RecordsOf(pfx("198.51.100.7/32"))) != 2 {
		t.Errorf("RemoveOrigin(peer) = %v, %v", gone, rest)
	}
	if gone, _ := l.RemoveOrigin(pfx("198.51.100.7/32"), bans.FromPeer("pbx-c")); gone != nil {
		t.Errorf("another peer removed %v", gone)
	}
	// Records end one by one; the target stays while one is in force.
	if ended := l.Ended(now.Add(90 * time.Minute)); len(ended) != 1 || ended[0] != local {
		t.Errorf("Ended at +90m = %v; want the rule's only", ended)
	}
	if !l.Until(pfx("198.51.100.7/32"), now.Add(90*time.Minute)).Equal(feed.Expires) {
		t.Error("Until after the rule's ended")
	}
	if got := l.Overlapping(pfx("198.51.100.0/24"), func(r *bans.Record) bool { return r.Origin.Kind == bans.Feed }); len(got) != 1 {
		t.Errorf("Overlapping any record: %v", got)
	}
	if gone := l.RemoveIf(pfx("198.51.100.7/32"), func(*bans.Record) bool { return true }); len(gone) != 2 || l.Len() != 0 {
		t.Errorf("RemoveIf all: %v, %d left", gone, l.Len())
	}
}

// TestInsideScales: finding the networks inside a network takes
// O(log n + found), whatever the number of network bans (a flood of
// 65,536 /16s from a peer).
func TestInsideScales(t *testing.T) {
	l := bans.NewLedger()
	for i := range 65536 {
		l.Put(rec(netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 0}), 16).String(), bans.FromPeer("x"), time.Hour))
	}
	l.Put(rec("2001:db8::/48", bans.ByHand, time.Hour))
	start := time.Now()
	for i := range 1000 {
		got := l.Inside(netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i), 0, 0, 0}), 8))
		if len(got) != 256 {
			t.Fatalf("Inside(%d.0.0.0/8) = %d networks; want 256", i%256, len(got))
		}
	}
	if got := l.Inside(pfx("2001:db8::/32")); len(got) != 1 {
		t.Errorf("Inside IPv6: %v", got)
	}
	if got := l.Inside(pfx("10.0.0.0/16")); len(got) != 0 {
		t.Errorf("Inside the same /16: %v; want none (strictly inside)", got)
	}
	// 1,000 lookups of 256 each: a scan of every network per lookup
	// would visit 65 million; this visits 256,000.
	t.Logf("1000 Inside lookups among 65,537 networks: %v", time.Since(start))
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		r     bans.Record
		label string
		node  string
		local bool
	}{
		{bans.Record{Origin: bans.ByRule, Rule: "burst"}, "burst", "", true},
		{bans.Record{Origin: bans.ByRule, Rule: engine.CompromiseRuleName}, "compromise", "", true},
		{bans.Record{Origin: bans.ByHand}, "manual", "", true},
		{bans.Record{Origin: bans.FromFeed("drop")}, "feed:drop", "", false},
		{bans.Record{Origin: bans.ByKernel}, "adopted", "", false},
		{bans.Record{Origin: bans.FromPeer("pbx-a"), Rule: "slow"}, "slow", "pbx-a", false},
	} {
		if got := tc.r.Label(); got != tc.label || tc.r.Node() != tc.node || tc.r.Origin.Local() != tc.local {
			t.Errorf("%+v: label %q, node %q, local %v; want %q, %q, %v", tc.r.Origin, got, tc.r.Node(), tc.r.Origin.Local(), tc.label, tc.node, tc.local)
		}
	}
	for _, name := range []string{"manual", "adopted", "feed:x"} {
		if !bans.Reserved(name) {
			t.Errorf("%q is not reserved", name)
		}
	}
	if bans.Reserved("burst") || bans.Reserved("compromise") {
		t.Error("a rule name is reserved")
	}
}

func TestIndex(t *testing.T) {
	ix := bans.NewIndex(pfx("10.0.0.0/8"), pfx("203.0.113.0/24"), pfx("2001:db8::/32"), pfx("198.51.100.7/32"))
	for _, tc := range []struct {
		p                  string
		overlaps, contains bool
	}{
		{"10.1.0.0/16", true, true},
		{"10.0.0.0/8", true, false},
		{"8.0.0.0/6", true, false}, // holds 10.0.0.0/8
		{"203.0.112.0/24", false, false},
		{"2001:db8:5::/48", true, true},
		{"2001:db9::/32", false, false},
		{"198.51.100.0/24", true, false},
		{"198.51.100.7/32", true, false},
	} {
		if got := ix.Overlaps(pfx(tc.p)); got != tc.overlaps {
			t.Errorf("Overlaps(%s) = %v", tc.p, got)
		}
		if got := ix.Contains(pfx(tc.p)); got != tc.contains {
			t.Errorf("Contains(%s) = %v", tc.p, got)
		}
	}
	ix.Add(pfx("203.0.112.0/23"))
	if !ix.Overlaps(pfx("203.0.112.0/24")) {
		t.Error("Overlaps after Add")
	}
}

// TestIndexInterleaved: an import adds each entry after asking whether
// one before contains it; 10 times the entries take about 10 times as
// long (each question sorted every entry: 5 s for 50,000, growing as
// n² log n, over 100 times for 10 times the entries). The bound is 80,
// not 50: the index's map of 100,000 entries outgrows the caches and
// takes fresh pages (10 us each in a VM) where that of 10,000 stays warm;
// a CI run measured 57 times (0.95 ms, 54 ms), others 13-27.
func TestIndexInterleaved(t *testing.T) {
	testutil.Linear(t, "entries added and asked about in turn", 10000, 80, func(n int) time.Duration {
		start := time.Now()
		ix := bans.NewIndex()
		for i := range n {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 10), byte(i >> 2), byte(i << 6)}), 26)
			if ix.Contains(p) {
				t.Fatalf("%v inside an entry before it", p)
			}
			ix.Add(p)
		}
		return time.Since(start)
	})
}

func TestFileRoundTrip(t *testing.T) {
	s := bans.Snapshot{
		Bans: []*bans.Record{
			{Target: pfx("198.51.100.7/32"), Addr: netip.MustParseAddr("198.51.100.7"), Origin: bans.ByRule, Rule: "burst", Since: now,
				Expires: now.Add(time.Hour), Count: 5, Offences: 2, Source: "pbx", Reason: "5 events in 40s, the last auth_failed"},
			{Target: pfx("2001:db8::/64"), Origin: bans.ByHand, Since: now, Expires: now.Add(time.Minute),
				Reason: "tab\\there \"quoted\"\nnewline ünïcode"},
			{Target: pfx("203.0.113.0/24"), Origin: bans.FromFeed("drop"), Since: now, Expires: now.Add(time.Hour), Reason: "blocklist feed drop"},
			{Target: pfx("192.0.2.9/32"), Origin: bans.ByKernel, Since: now, Expires: now.Add(time.Hour)},
			{Target: pfx("198.51.100.8/32"), Origin: bans.FromPeer("pbx-a"), Rule: "slow", Since: now, Expires: now.Add(time.Hour), Count: 30},
			// A rule's own ports; the same target in the default profile.
			{Target: pfx("198.51.100.7/32"), Origin: bans.ByRule, Rule: "gui", Since: now, Expires: now.Add(time.Hour), Ports: "80/tcp,443/tcp"},
			{Target: pfx("198.51.100.9/32"), Origin: bans.FromPeer("pbx-a"), Rule: "gui", Since: now, Expires: now.Add(time.Hour), Ports: "80/tcp,443/tcp"},
		},
		Lifts: map[netip.Prefix]bans.Lift{pfx("203.0.113.0/24"): {At: now, Until: now.Add(time.Hour)},
			// Beyond 2262, where nanoseconds since 1970 overflow.
			pfx("198.51.100.0/24"): {At: time.UnixMilli(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()),
				Until: time.UnixMilli(time.Date(9999, 2, 1, 0, 0, 0, 0, time.UTC).UnixMilli()), Origin: "pbx \"b\"\t"}},
		Offences: []engine.Offence{{Prefix: pfx("198.51.100.7/32"), Count: 2, Last: now, Until: now.Add(time.Hour)}},
	}
	got, skipped, err := bans.Decode(bans.Encode(s))
	if err != nil || skipped.Lines != 0 {
		t.Fatal(err, skipped)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, s)
	}
	// What a daemon without [cluster] writes reads with older versions:
	// no node, no lifted record.
	old := bans.Encode(bans.Snapshot{Bans: s.Bans[:2]})
	if strings.Count(string(old), "\t") != 2*9 || strings.Contains(string(old), "lifted") {
		t.Errorf("a file without peers' bans has new fields:\n%s", old)
	}
	// A file of a version before ports: its bans are of the default ports.
	pre := "# sipguard bans v1\nban\t198.51.100.7/32\t\"burst\"\t1\t2\t3\t4\t\"s\"\t\"\"\t\"r\"\n"
	if got, _, err := bans.Decode([]byte(pre)); err != nil || len(got.Bans) != 1 || got.Bans[0].Ports != "" || got.Bans[0].Rule != "burst" {
		t.Errorf("a file without ports: %+v, %v", got.Bans, err)
	}
	for _, bad := range []string{"", "# other\n", "ban\t1.2.3.4/32\n"} {
		if _, _, err := bans.Decode([]byte(bad)); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
	// A bad line is skipped and counted, naming its line.
	for _, bad := range []string{
		"ban\tx",
		"ban\t1.2.3.4/32\t\"r\"\t1\t2\t3\t4\t\"s\"\t\"a\"\tunquoted",
		"ban\t1.2.3.4/32\t\"r\"\t1\t2\t3\t4\t\"s\"\t\"not an address\"\t\"\"",
		"offence\t1.2.3.4/32\t1\tx\t2",
		"lifted\t1.2.3.4/33\t1\t2",
		"what",
		"",
	} {
		got, skipped, err := bans.Decode([]byte("# sipguard bans v1\n" + bad + "\n"))
		if err != nil || skipped.Lines != 1 || skipped.First == nil || !strings.HasPrefix(skipped.First.Error(), "line 2: ") {
			t.Errorf("decode %q: %v, skipped %+v; want line 2 skipped", bad, err, skipped)
		}
		if len(got.Bans)+len(got.Offences)+len(got.Lifts) != 0 {
			t.Errorf("decode %q: %+v; want nothing", bad, got)
		}
	}
}

// TestFileDeterministic: the same state encodes to the same bytes, the
// unbans and offences (kept in maps) sorted by prefix, whatever order
// they come in: two saves of an unchanged ledger are the same file.
func TestFileDeterministic(t *testing.T) {
	var offences []engine.Offence
	lifts := map[netip.Prefix]bans.Lift{}
	for i := range 200 {
		p := pfx(fmt.Sprintf("198.51.%d.%d/32", i/100, i%100+1))
		if i%3 == 0 {
			p = pfx(fmt.Sprintf("2001:db8:%x::/64", i))
		}
		offences = append(offences, engine.Offence{Prefix: p, Count: i%5 + 1, Last: now, Until: now.Add(time.Hour)})
		lifts[p] = bans.Lift{At: now, Until: now.Add(time.Hour), Origin: "pbx-a"}
	}
	want := bans.Encode(bans.Snapshot{Lifts: lifts, Offences: offences})
	for range 5 {
		shuffled := slices.Clone(offences)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		copied := maps.Clone(lifts) // a new map: another iteration order
		if got := bans.Encode(bans.Snapshot{Lifts: copied, Offences: shuffled}); !bytes.Equal(got, want) {
			t.Fatalf("the same state encodes differently:\n%s\nthen\n%s", want, got)
		}
	}
	var last netip.Prefix
	for _, line := range strings.Split(string(want), "\n") {
		if f := strings.Split(line, "\t"); f[0] == "offence" {
			p := pfx(f[1])
			if last.IsValid() && p.Addr().Less(last.Addr()) {
				t.Fatalf("offence %v after %v: not sorted", p, last)
			}
			last = p
		}
	}
}

// TestDecodeDamaged: a bans file with bad lines among good ones, and a
// reason of a megabyte (more than the old line limit, which made the
// whole file unreadable), keeps every good record.
func TestDecodeDamaged(t *testing.T) {
	s := bans.Snapshot{
		Bans: []*bans.Record{
			{Target: pfx("198.51.100.7/32"), Origin: bans.ByRule, Rule: "burst", Since: now, Expires: now.Add(time.Hour), Reason: "r"},
			{Target: pfx("198.51.100.8/32"), Origin: bans.ByHand, Since: now, Expires: now.Add(time.Hour), Reason: strings.Repeat("x", 1<<20)},
			{Target: pfx("198.51.100.9/32"), Origin: bans.ByHand, Since: now, Expires: now.Add(time.Hour), Reason: "r"},
		},
		Lifts:    map[netip.Prefix]bans.Lift{},
		Offences: []engine.Offence{{Prefix: pfx("198.51.100.7/32"), Count: 2, Last: now, Until: now.Add(time.Hour)}},
	}
	lines := strings.SplitAfter(string(bans.Encode(s)), "\n")
	// Damage: a torn line after the first ban, garbage after the second.
	damaged := strings.Join(lines[:2], "") + "ban\t198.51.100.10/32\t\"bu\n" + lines[2] + "\x00\xff garbage " + strings.Repeat("y", 100_000) + "\n" + strings.Join(lines[3:], "")
	got, skipped, err := bans.Decode([]byte(damaged))
	if err != nil {
		t.Fatal(err)
	}
	if skipped.Lines != 2 || skipped.First == nil || !strings.HasPrefix(skipped.First.Error(), "line 3: ") || len(skipped.First.Error()) > 300 {
		t.Errorf("skipped %d, first %v; want 2, line 3, short", skipped.Lines, skipped.First)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("good records lost: got %d bans, %d offences; want %d, %d", len(got.Bans), len(got.Offences), len(s.Bans), len(s.Offences))
	}
}

// TestCleanReason: what a ban keeps of a reason: printable UTF-8 of at
// most MaxReason bytes.
func TestCleanReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abuse report", "abuse report"},
		{"ünïcode ok", "ünïcode ok"},
		{"line\nforged\r\x1b[31m\tx", "line forged  [31m x"},
		{"rtl\u202eevil", "rtl evil"},
		{"bad\xffbyte", "bad\ufffdbyte"},
		{strings.Repeat("a", bans.MaxReason), strings.Repeat("a", bans.MaxReason)},
		{strings.Repeat("a", bans.MaxReason+1), strings.Repeat("a", bans.MaxReason-3) + "…"},
		{strings.Repeat("é", 1<<20), strings.Repeat("é", (bans.MaxReason-3)/2) + "…"},
		{strings.Repeat("\xff", 1<<20), strings.Repeat("\ufffd", (bans.MaxReason-3)/3) + "…"},
	} {
		got := bans.CleanReason(tc.in)
		if got != tc.want {
			t.Errorf("CleanReason(%.40q) = %.60q; want %.60q", tc.in, got, tc.want)
		}
		if len(got) > bans.MaxReason || !utf8.ValidString(got) {
			t.Errorf("CleanReason(%.40q): %d bytes, valid UTF-8 %v", tc.in, len(got), utf8.ValidString(got))
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	var s bans.Snapshot
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)})
		s.Bans = append(s.Bans, &bans.Record{Target: netip.PrefixFrom(a, 32), Addr: a, Origin: bans.ByRule, Rule: "burst", Since: now,
			Expires: now.Add(time.Hour), Count: 5, Source: "pbx", Reason: "5 events in 40s, the last auth_failed"})
	}
	var data []byte
	for b.Loop() {
		data = bans.Encode(s)
	}
	b.ReportMetric(float64(len(data))/(1<<20), "MiB")
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := bans.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestUsage(t *testing.T) {
	l := bans.NewLedger()
	peer := bans.FromPeer("pbx-a")
	l.Put(rec("198.51.100.7/32", peer, time.Hour))
	l.Put(rec("203.0.113.0/24", peer, time.Hour))
	l.Put(rec("2001:db8::/48", peer, time.Hour))
	l.Put(rec("2001:db8:1::5/128", peer, time.Hour))
	l.Put(rec("203.0.113.0/24", peer, 2*time.Hour)) // renewed: counted once
	l.Put(rec("198.51.100.7/32", bans.ByRule, time.Hour))
	want := bans.Usage{Records: 4, Networks: 2, Space4: 257, Space6: 65537}
	if got := l.Usage(peer); got != want {
		t.Errorf("Usage = %+v; want %+v", got, want)
	}
	l.RemoveOrigin(pfx("198.51.100.7/32"), peer)
	l.Remove(pfx("2001:db8::/48"))
	l.RemoveIf(pfx("203.0.113.0/24"), func(*bans.Record) bool { return true })
	if got := l.Usage(peer); got != (bans.Usage{Records: 1, Space6: 1}) {
		t.Errorf("Usage after removals = %+v", got)
	}
	if got := l.Usage(bans.ByRule); got.Records != 1 {
		t.Errorf("the rule's usage = %+v", got)
	}
	if v4, v6 := bans.Space(pfx("0.0.0.0/0")); v4 != 1<<32 || v6 != 0 {
		t.Errorf("Space(/0) = %d, %d", v4, v6)
	}
	if _, v6 := bans.Space(pfx("::/0")); v6 != 1<<63 {
		t.Errorf("Space(::/0) = %d; want capped at 2^63", v6)
	}
}

// BenchmarkEncodeLongReasons: the bans file of a cluster node holding 100,000 other
// nodes' bans with the longest reasons (tens of megabytes). Encoding
// grows linearly with it (AppendQuote once made it quadratic).
func BenchmarkEncodeLongReasons(b *testing.B) {
	s := bans.Snapshot{}
	reason := strings.Repeat("r", bans.MaxReason)
	for i := range 100_000 {
		s.Bans = append(s.Bans, &bans.Record{Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), 32),
			Origin: bans.FromPeer("pbx-a"), Rule: "burst", Since: now, Expires: now.Add(time.Hour), Reason: reason})
	}
	var n int
	for b.Loop() {
		n = len(bans.Encode(s))
	}
	b.SetBytes(int64(n))
}
