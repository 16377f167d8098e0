package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/parsers"
)

// TestBanLastGuard: ban, the way every ban reaches the firewall, refuses
// the whole call, counted, when any ban covers an allowlisted address or
// special-purpose addresses, whatever decided it and however it is
// written.
func TestBanLastGuard(t *testing.T) {
	fw := fwtest.New(nil)
	d, err := New(Config{Engine: engine.Options{
		Rules: []engine.Rule{{Name: "r", Kinds: parsers.AllKinds, MaxRetry: 1, FindTime: time.Minute, BanTime: time.Hour, Factor: 1}},
		Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:bad::1/128")},
	}}, fw, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok := firewall.Ban{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Timeout: time.Hour}
	allow, special := &d.allowRefused, &d.specialRefused
	for _, tc := range []struct {
		p, why  string
		counter *int64
	}{
		{"2001:db8:bad::/64", "covers allowlisted", allow},    // a rule's /64 holding the trunk
		{"2001:db8:bad::1/128", "covers allowlisted", allow},  // the trunk itself
		{"192.0.2.0/24", "covers allowlisted", allow},         // a network around it
		{"::ffff:192.0.2.0/120", "covers allowlisted", allow}, // the same, IPv4-mapped: the firewall would ban 192.0.2.0/24
		{"0.0.0.0/0", "covers allowlisted", allow},
		{"fe80::/64", "is link-local", special},
		{"::/64", "is a network holding loopback", special},
		{"0.0.0.0/32", "is \"this network\"", special},
		{"127.0.0.1/32", "is loopback", special},
		{"224.0.0.0/8", "is multicast", special},
		{"255.255.255.255/32", "is the broadcast address", special},
		{"::ffff:127.0.0.1/128", "is loopback", special},
	} {
		before := *tc.counter
		b := firewall.Ban{Prefix: netip.MustParsePrefix(tc.p), Timeout: time.Hour}
		var ge *guardError
		if err := d.ban(ctx, ok, b); !errors.As(err, &ge) || ge.Prefix != b.Prefix || !strings.Contains(ge.Why, tc.why) {
			t.Errorf("ban %s: got %v; want a guardError: %s", tc.p, err, tc.why)
		}
		if got := fw.Entries(); len(got) != 0 {
			t.Fatalf("ban %s: the firewall holds %v; want nothing (the whole call refused)", tc.p, got)
		}
		if *tc.counter != before+1 {
			t.Errorf("ban %s: %d refused; want %d", tc.p, *tc.counter, before+1)
		}
	}
	if err := d.ban(ctx, ok, firewall.Ban{Prefix: netip.MustParsePrefix("2001:db8:bad::2/128"), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := fw.Entries(); len(got) != 2 {
		t.Errorf("firewall %v; want the two bans", got)
	}
}
