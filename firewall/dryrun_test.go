package firewall

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestDryRun_Timeouts: the dry run holds a ban as long as NFT does, its
// timeout rounded up to the millisecond (the kernel's unit) and capped at
// MaxTimeout, so that `run --dry-run` lists the expiries nftables would.
func TestDryRun_Timeouts(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	d := NewDryRun(zerolog.Nop(), func() time.Time { return now })
	for _, c := range []struct{ timeout, want time.Duration }{
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{300 * time.Microsecond, time.Millisecond},
		{time.Hour + time.Nanosecond, time.Hour + time.Millisecond},
		{time.Hour, time.Hour},
		{MaxTimeout + time.Millisecond/2, MaxTimeout},
	} {
		p := netip.MustParsePrefix("192.0.2.7/32")
		if err := d.Ban(context.Background(), Ban{Prefix: p, Timeout: c.timeout}); err != nil {
			t.Fatal(err)
		}
		es, err := d.List(context.Background())
		if err != nil || len(es) != 1 {
			t.Fatalf("list: %v, %v", es, err)
		}
		if got := es[0].Expires.Sub(now); got != c.want {
			t.Errorf("ban for %v: held %v; want %v, as nftables holds it", c.timeout, got, c.want)
		}
	}
}
