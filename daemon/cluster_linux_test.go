//go:build linux

package daemon_test

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/internal/testutil"
)

// TestPeerFloodLocalLatencyKernel is TestPeerFloodLocalLatency's
// measurement with the kernel's firewall (nftables, in a throw-away
// network namespace), Reconcile's monitor included, as in production.
// Local bans do not wait behind the flood (peerFloodLatency); their p99
// is not compared with the quiet one: during the flood it is the
// kernel's, several milliseconds, not the core's (see docs/cluster.md).
func TestPeerFloodLocalLatencyKernel(t *testing.T) {
	testutil.NeedRoot(t, "nftables in a throw-away network namespace")
	testutil.NeedCommands(t, "apt-get install iproute2 nftables", "ip", "nft")
	ns := testutil.NewNetNS(t, "sgdf")
	port, _ := firewall.ParsePort("5060/udp")
	fw, err := firewall.NewNFT(firewall.NFTOptions{NetNS: "/run/netns/" + ns, Logger: zerolog.Nop(), Ports: []firewall.Port{port}})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	peerFloodLatency(t, fw)
}
