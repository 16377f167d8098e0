//go:build linux

package firewall_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sipguard/sipguard/firewall"
)

// TestNoAnswer: when nftables does not answer (no nf_tables in the
// kernel: a transaction is never acknowledged and google/nftables waits
// for good), every request fails after RequestTimeout with ErrNoAnswer
// and a hint, and the next request, on a fresh socket, works.
//
// How it is made: a module cannot be unloaded for a network namespace, and
// nftables.WithTestDial's fake socket has no deadlines, so the test
// attaches a socket filter that drops every message the kernel sends:
// real sockets, real requests (the kernel acts on them), no answer.
func TestNoAnswer(t *testing.T) {
	const timeout = 300 * time.Millisecond
	slow := func(t *testing.T, began time.Time) {
		t.Helper()
		if took := time.Since(began); took > timeout+2*time.Second {
			t.Errorf("took %v; want about %v", took, timeout)
		}
	}
	noAnswer := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, firewall.ErrNoAnswer) || !strings.Contains(err.Error(), "modprobe nf_tables") {
			t.Errorf("%s: %v; want ErrNoAnswer with a hint", what, err)
		}
	}

	t.Run("NewNFT", func(t *testing.T) {
		ns := newNS(t)
		opts := firewall.NFTOptions{NetNS: "/run/netns/" + ns, Logger: testLogger(t), RequestTimeout: timeout}
		began := time.Now()
		n, err := firewall.NewNFT(firewall.DropAnswers(opts, "requests"))
		if err == nil {
			n.Close()
			t.Fatal("NewNFT works without answers")
		}
		slow(t, began)
		noAnswer(t, "NewNFT", err)
	})

	ns := newNS(t)
	n := newNFT(t, ns, firewall.NFTOptions{RequestTimeout: timeout})
	ctx := context.Background()
	ban := func(addr string) error {
		return n.Ban(ctx, firewall.Ban{Prefix: netip.MustParsePrefix(addr), Timeout: time.Hour})
	}
	t.Run("Ban", func(t *testing.T) {
		if err := firewall.StopAnswers(n); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		noAnswer(t, "Ban", ban("198.51.100.7/32"))
		slow(t, began)
		if err := ban("198.51.100.8/32"); err != nil {
			t.Fatalf("Ban on a fresh socket: %v", err)
		}
		if out := nft(t, ns, "list", "set", "inet", "sipguard", "ban4"); !strings.Contains(out, "198.51.100.8") {
			t.Errorf("ban4 after the second ban:\n%s", out)
		}
	})
	t.Run("Kernel", func(t *testing.T) {
		if err := firewall.StopAnswers(n); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		_, err := n.Kernel(ctx)
		noAnswer(t, "Kernel", err)
		slow(t, began)
		es, err := n.Kernel(ctx)
		if err != nil {
			t.Fatalf("Kernel on a fresh socket: %v", err)
		}
		if !slicesHas(es, "198.51.100.8/32") {
			t.Errorf("Kernel = %v; want 198.51.100.8", es)
		}
		// The state's counters are read with a deadline too.
		if err := firewall.StopAnswers(n); err != nil {
			t.Fatal(err)
		}
		began = time.Now()
		if st := n.State(ctx); !strings.Contains(st.LastError, "nftables did not answer") {
			t.Errorf("State.LastError = %q; want no answer", st.LastError)
		}
		slow(t, began)
	})
}

func slicesHas(es []firewall.Entry, prefix string) bool {
	for _, e := range es {
		if e.Prefix.String() == prefix {
			return true
		}
	}
	return false
}

// TestMissingHint: the errors the kernel answers for a netlink subsystem
// it does not have (nfnetlink without nf_tables: EINVAL) get the hint;
// others are left as they are.
func TestMissingHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		hint bool
	}{
		{fmt.Errorf("get table inet sipguard: %w", &netlink.OpError{Op: "receive", Err: unix.EINVAL}), true},
		{fmt.Errorf("get table inet sipguard: %w", unix.EOPNOTSUPP), true},
		{fmt.Errorf("get table inet sipguard: %w", unix.EPERM), false},
	} {
		got := firewall.MissingHint(tc.err)
		if hint := strings.Contains(got.Error(), "modprobe nf_tables"); hint != tc.hint || !errors.Is(got, tc.err) {
			t.Errorf("MissingHint(%v) = %v; want hint %v, wrapping it", tc.err, got, tc.hint)
		}
	}
}
