//go:build linux

package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/internal/testutil"
)

// TestClusterShortenedRenewalKernel is TestClusterShortenedRenewal with
// nftables, in a throw-away network namespace: the kernel takes the
// shorter timeout of an element banned again, and refuses the covered
// networks beside a wider one it still holds.
func TestClusterShortenedRenewalKernel(t *testing.T) {
	clusterShortenedRenewal(t, kernelFW(t, "sgds"))
}

// TestClusterLiftCoveredKernel is TestClusterLiftCovered with nftables:
// the kernel refuses a covered network's shortened timeout as
// overlapping the wider one.
func TestClusterLiftCoveredKernel(t *testing.T) {
	clusterLiftCovered(t, kernelFW(t, "sgdl"))
}

// TestClusterCoveredRestartKernel is TestClusterCoveredRestart with
// nftables: the kernel keeps its bans across the daemon's restart.
func TestClusterCoveredRestartKernel(t *testing.T) {
	clusterCoveredRestart(t, kernelFW(t, "sgdr"))
}

// TestClusterCoveredAttacksKernel is TestClusterCoveredAttacks with
// nftables, which refuses overlapping networks.
func TestClusterCoveredAttacksKernel(t *testing.T) {
	clusterCoveredAttacks(t, kernelFW(t, "sgda"))
}

// kernelFW returns new nftables firewalls in a throw-away network
// namespace named ns.
func kernelFW(t *testing.T, ns string) func() firewall.Backend {
	testutil.NeedRoot(t, "nftables in a throw-away network namespace")
	testutil.NeedCommands(t, "apt-get install iproute2 nftables", "ip", "nft")
	ns = testutil.NewNetNS(t, ns)
	return func() firewall.Backend {
		fw, err := firewall.NewNFT(firewall.NFTOptions{NetNS: "/run/netns/" + ns, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fw.Close() })
		return fw
	}
}

// TestLiftPutsBackAtOnceKernel is TestLiftPutsBackAtOnce with nftables,
// in a throw-away network namespace: the kernel takes the lift of the
// wider network and the narrower ones inside it in one transaction.
func TestLiftPutsBackAtOnceKernel(t *testing.T) {
	liftPutsBackAtOnce(t, kernelFW(t, "sgdp"))
}

// TestCoverEndsAfterRestartKernel (issue 20, item 1): after a restart
// with many bans, the kernel counts each element's timeout from when the
// restore's transaction reached it, up to its length after the record's
// end. At coverSlack after a /16's end the backend, believing it gone,
// met the kernel's refusal and slept two seconds, holding the core: the
// /24s inside came 1-1.6 s late, every other ban waited.
func TestCoverEndsAfterRestartKernel(t *testing.T) {
	newFW := kernelFW(t, "sgdt")
	e := newEnv(t)
	r := startWith(t, e.config(), newFW(), joined)
	ctx := context.Background()
	now := time.Now()
	// Under -short (test.sh's -race pass, every step 5 to 10 times as
	// slow) a tenth: the same path for the race detector, a restore lag
	// that the 800 ms bound is meant for (20,000 there: 0.44-0.84 s late).
	n := 20000
	if testing.Short() {
		n = 2000
	}
	var many []cluster.Update
	for i := range n {
		a := netip.AddrFrom4([4]byte{45, 0, byte(i >> 8), byte(i)})
		many = append(many, remote(netip.PrefixFrom(a, 32).String(), "pbx-x", now, 3*time.Hour))
	}
	r.d.Apply(ctx, many)
	end := time.Now().Add(5 * time.Second)
	ends := []time.Duration{0, 300 * time.Millisecond, 600 * time.Millisecond}
	var wide, narrow []cluster.Update
	for i, d := range ends {
		wide = append(wide, remote(fmt.Sprintf("100.%d.0.0/16", 61+i), "pbx-m", now, end.Add(d).Sub(now)))
		narrow = append(narrow, remote(fmt.Sprintf("100.%d.1.0/24", 61+i), "pbx-n", now, 3*time.Hour))
	}
	r.d.Apply(ctx, wide)
	if res, _ := r.d.Apply(ctx, narrow); res["known"] != len(ends) {
		t.Fatalf("the /24s inside the /16s: %v; want all known (covered)", res)
	}
	r.stop(t)
	r = startWith(t, e.config(), newFW(), joined)
	if time.Until(end) < time.Second {
		t.Fatalf("the restart took too long: %v left", time.Until(end))
	}
	for i, d := range ends {
		inForceWithin(t, r, fmt.Sprintf("100.%d.1.0/24", 61+i), end.Add(d), 800*time.Millisecond)
	}
	inStep(t, r)
}

// TestCoverEndsFollowsOriginKernel is TestCoverEndsFollowsOrigin with
// nftables, which refuses a network beside one it still holds.
func TestCoverEndsFollowsOriginKernel(t *testing.T) {
	coverEndsFollowsOrigin(t, kernelFW(t, "sgdo")())
}
