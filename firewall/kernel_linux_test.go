//go:build linux

package firewall_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

// TestNFT_Kernel: what Kernel reads back is what was banned, with the time
// left, for every kind of set; a new NFT (a restarted daemon) reads the
// bans the previous one left before it loads anything.
func TestNFT_Kernel(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	n := newNFT(t, ns, firewall.NFTOptions{})
	ctx := context.Background()
	want := []firewall.Ban{
		{Prefix: pfx("198.51.100.7/32"), Timeout: time.Hour},
		{Prefix: pfx("2001:db8::1/128"), Timeout: 2 * time.Hour},
		{Prefix: pfx("203.0.113.0/24"), Timeout: 3 * time.Hour},
		{Prefix: pfx("2001:db8:9::/64"), Timeout: 4 * time.Hour},
		{Prefix: pfx("224.0.0.0/3"), Timeout: 5 * time.Hour}, // reaches the top: no end element
		{Prefix: pfx("198.51.100.128/25"), Timeout: 6 * time.Hour},
	}
	if err := n.Ban(ctx, want...); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n2 := newNFT(t, ns, firewall.NFTOptions{})
	got, err := n2.Kernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Expires.Before(got[j].Expires) })
	if len(got) != len(want) {
		t.Fatalf("read %v; want %d bans", got, len(want))
	}
	for i, b := range want {
		left := time.Until(got[i].Expires)
		if got[i].Prefix != b.Prefix || left > b.Timeout || left < b.Timeout-5*time.Second {
			t.Errorf("ban %d: %v with %v left; want %v with %v", i, got[i].Prefix, left, b.Prefix, b.Timeout)
		}
	}
}
