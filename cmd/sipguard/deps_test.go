package main

import (
	"os/exec"
	"strings"
	"testing"
)

// linked returns the packages the binary links, checking that want is
// among them (the list is the binary's, not an empty one).
func linked(t *testing.T, want string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), want+"\n") {
		t.Fatalf("go list -deps does not list %s:\n%s", want, out)
	}
	return strings.Fields(string(out))
}

// TestDependencies_NoPacketDecoder: the binary does not link gopacket,
// whose layers package registers its protocols at init, 24 ms at every
// start of every command (a sixth of a whole scan); sipwire/pcapfile
// reads captures with the standard library. Tests may still use it to
// write captures.
func TestDependencies_NoPacketDecoder(t *testing.T) {
	for _, p := range linked(t, "github.com/sipguard/sipguard/sipwire/pcapfile") {
		if strings.HasPrefix(p, "github.com/google/gopacket") {
			t.Errorf("sipguard depends on %s", p)
		}
	}
}

// TestDependencies_NoPrometheusClient: the binary does not link the
// Prometheus client (nor protobuf, procfs, runtime/metrics it brings),
// whose package init cost every command 3 to 5 ms at start; package
// metrics writes the text format itself. Its tests parse that text with
// github.com/prometheus/common/expfmt.
func TestDependencies_NoPrometheusClient(t *testing.T) {
	for _, p := range linked(t, "github.com/sipguard/sipguard/metrics") {
		if strings.HasPrefix(p, "github.com/prometheus/") || strings.HasPrefix(p, "google.golang.org/protobuf/") {
			t.Errorf("sipguard depends on %s", p)
		}
	}
}
