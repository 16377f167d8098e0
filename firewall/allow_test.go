package firewall

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestAllowRanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  []string
		v4, v6 string
	}{
		{"empty", nil, "[]", "[]"},
		{"hosts and networks", []string{"192.0.2.1/32", "2001:db8::/64", "10.0.0.0/8"},
			"[10.0.0.0-10.255.255.255 192.0.2.1-192.0.2.1]", "[2001:db8::-2001:db8::ffff:ffff:ffff:ffff]"},
		{"inside another", []string{"2001:db8:bad::1/128", "2001:db8::/32", "10.1.2.3/32", "10.0.0.0/8"},
			"[10.0.0.0-10.255.255.255]", "[2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"},
		{"touching", []string{"192.0.2.0/25", "192.0.2.128/25", "192.0.3.0/32"},
			"[192.0.2.0-192.0.3.0]", "[]"},
		{"apart by one", []string{"192.0.2.0/32", "192.0.2.2/32"}, "[192.0.2.0-192.0.2.0 192.0.2.2-192.0.2.2]", "[]"},
		{"duplicates, host bits", []string{"127.0.0.1/8", "127.0.0.0/8", "::1/128", "::1/128"},
			"[127.0.0.0-127.255.255.255]", "[::1-::1]"},
		{"mapped", []string{"::ffff:192.0.2.1/128"}, "[192.0.2.1-192.0.2.1]", "[]"},
		{"top of the space", []string{"255.255.255.255/32", "224.0.0.0/3", "0.0.0.0/0"},
			"[0.0.0.0-255.255.255.255]", "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var allow []netip.Prefix
			for _, s := range tc.allow {
				allow = append(allow, netip.MustParsePrefix(s))
			}
			v4, v6, err := allowRanges(allow)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmtRanges(v4); got != tc.v4 {
				t.Errorf("IPv4: got %s; want %s", got, tc.v4)
			}
			if got := fmtRanges(v6); got != tc.v6 {
				t.Errorf("IPv6: got %s; want %s", got, tc.v6)
			}
		})
	}
	if _, _, err := allowRanges([]netip.Prefix{{}}); !errors.Is(err, ErrInvalidBan) {
		t.Errorf("invalid prefix: got %v; want ErrInvalidBan", err)
	}
}

func fmtRanges(rs []addrRange) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.lo.String()+"-"+r.hi.String())
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestDryRun_SetAllow(t *testing.T) {
	d := NewDryRun(zerolog.Nop(), nil)
	allow := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:bad::1/128")}
	if err := d.SetAllow(context.Background(), allow); err != nil {
		t.Fatal(err)
	}
	if got := d.Allowlist(); len(got) != 2 || got[0] != allow[0] || got[1] != allow[1] {
		t.Errorf("Allowlist: %v; want %v", got, allow)
	}
	if err := d.SetAllow(context.Background(), []netip.Prefix{{}}); !errors.Is(err, ErrInvalidBan) {
		t.Errorf("invalid entry: got %v; want ErrInvalidBan", err)
	}
	if got := d.Allowlist(); len(got) != 2 {
		t.Errorf("a refused SetAllow changed the allowlist: %v", got)
	}
}

// TestDryRun_Overlap: the dry run refuses what NFT refuses (the contract:
// TestBackendContract), a network overlapping another in force or in the
// same call, of the same ports profile, and then bans nothing of the call.
func TestDryRun_Overlap(t *testing.T) {
	ctx := context.Background()
	d := NewDryRun(zerolog.Nop(), nil)
	ban := func(ps ...string) error {
		var bs []Ban
		for _, p := range ps {
			bs = append(bs, Ban{Prefix: netip.MustParsePrefix(p), Timeout: time.Hour})
		}
		return d.Ban(ctx, bs...)
	}
	if err := ban("10.0.0.0/8", "192.0.2.7/32"); err != nil {
		t.Fatal(err)
	}
	for _, call := range [][]string{
		{"10.1.0.0/16"},                                       // inside one in force
		{"172.16.0.0/12", "172.16.1.0/24"},                    // in one call
		{"198.51.100.7/32", "172.16.1.0/24", "172.16.0.0/12"}, // in one call, the wider last
	} {
		if err := ban(call...); !errors.Is(err, ErrOverlap) {
			t.Errorf("ban %v: %v; want ErrOverlap", call, err)
		}
	}
	if es, _ := d.List(ctx); len(es) != 2 {
		t.Errorf("after the refused calls: %v; want the first two bans only", es)
	}
	// Other profiles, and the same network twice, are no overlap.
	if err := d.Ban(ctx, Ban{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Timeout: time.Hour, Ports: "80/tcp"},
		Ban{Prefix: netip.MustParsePrefix("172.16.0.0/12"), Timeout: time.Hour},
		Ban{Prefix: netip.MustParsePrefix("172.16.0.0/12"), Timeout: 2 * time.Hour}); err != nil {
		t.Errorf("no overlap: %v", err)
	}
	// Change: a network lifted in the call no longer overlaps, in its own
	// profile only; refused, nothing is lifted.
	wide := Ban{Prefix: netip.MustParsePrefix("10.0.0.0/7"), Timeout: time.Hour}
	if err := d.Change(ctx, []Lift{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Ports: "80/tcp"}}, wide); !errors.Is(err, ErrOverlap) {
		t.Errorf("change lifting in another profile: %v; want ErrOverlap", err)
	}
	if err := d.Change(ctx, []Lift{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}}, wide); err != nil {
		t.Errorf("change: %v", err)
	}
	held := map[string]bool{}
	es, _ := d.List(ctx)
	for _, e := range es {
		held[e.Prefix.String()+" "+e.Ports] = true
	}
	if !held["10.0.0.0/7 "] || held["10.0.0.0/8 "] || !held["10.1.0.0/16 80/tcp"] || len(es) != 4 {
		t.Errorf("after the change: %v; want 10.0.0.0/7 in place of 10.0.0.0/8, the rest as it was", es)
	}
}
