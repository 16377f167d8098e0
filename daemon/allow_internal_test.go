package daemon

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
	"github.com/sipguard/sipguard/parsers"
)

// TestBanLastGuard: ban, the way every ban reaches the firewall, refuses
// the whole call when any ban covers an allowlisted address, whatever
// decided it and however it is written.
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
	for i, p := range []string{
		"2001:db8:bad::/64",    // a rule's /64 holding the trunk
		"2001:db8:bad::1/128",  // the trunk itself
		"192.0.2.0/24",         // a network around it
		"::ffff:192.0.2.0/120", // the same, IPv4-mapped: the firewall would ban 192.0.2.0/24
		"0.0.0.0/0",
	} {
		b := firewall.Ban{Prefix: netip.MustParsePrefix(p), Timeout: time.Hour}
		var ae *allowError
		if err := d.ban(ctx, ok, b); !errors.As(err, &ae) || ae.Prefix != b.Prefix {
			t.Errorf("ban %s: got %v; want an allowError", p, err)
		}
		if got := fw.Entries(); len(got) != 0 {
			t.Fatalf("ban %s: the firewall holds %v; want nothing (the whole call refused)", p, got)
		}
		if d.allowRefused != int64(i+1) {
			t.Errorf("ban %s: %d refused; want %d", p, d.allowRefused, i+1)
		}
	}
	if err := d.ban(ctx, ok, firewall.Ban{Prefix: netip.MustParsePrefix("2001:db8:bad::2/128"), Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := fw.Entries(); len(got) != 2 {
		t.Errorf("firewall %v; want the two bans", got)
	}
}
