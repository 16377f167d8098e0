//go:build linux

package daemon_test

import (
	"testing"

	"github.com/rs/zerolog"

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
