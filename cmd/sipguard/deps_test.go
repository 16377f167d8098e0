package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies_NoPacketDecoder: the binary does not link gopacket,
// whose layers package registers its protocols at init, 24 ms at every
// start of every command (a sixth of a whole scan); sipwire/pcapfile
// reads captures with the standard library. Tests may still use it to
// write captures.
func TestDependencies_NoPacketDecoder(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), "github.com/sipguard/sipguard/sipwire/pcapfile\n") {
		t.Fatalf("go list -deps does not list sipwire/pcapfile:\n%s", out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/google/gopacket") {
			t.Errorf("sipguard depends on %s", p)
		}
	}
}
