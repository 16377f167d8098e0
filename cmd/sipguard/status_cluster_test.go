package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
)

// TestPrintClusterProblems: status says plainly when the stream is not
// used, what was retried, and whose clock is off.
func TestPrintClusterProblems(t *testing.T) {
	var b strings.Builder
	printCluster(&b, &control.ClusterStatus{
		Node: "pbx-a", Stream: "SIPGUARD_BANS", Share: true, Accept: true, Connected: true, Server: "nats://10.0.0.1:4222",
		StreamError:    "the cluster's stream differs from what sipguard expects: allow_rollup_hdrs: true, want false",
		PublishRetries: 2, Queued: 2, ClockSkew: 361.2, ClockChecked: time.Now(), PeerSkews: map[string]float64{"pbx-z": -45},
	})
	out := b.String()
	for _, want := range []string{
		"STREAM NOT USED (nothing shared or received): the cluster's stream differs",
		"2 queued, 2 retried",
		"clock: +361.2s from the server's (FIX THIS NODE'S TIME); nodes off by more than 30s: pbx-z -45s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "catching up") {
		t.Errorf("a stream not used is not being caught up with:\n%s", out)
	}
}
