package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
)

// TestPrintBansCovered: list says which wider ban holds a covered one,
// on that ban's line only.
func TestPrintBansCovered(t *testing.T) {
	now := time.Now()
	var out bytes.Buffer
	err := printBans(&out, []control.Ban{
		{Target: "100.70.0.0/16", Rule: "burst", Origin: "pbx-m", Since: now, Expires: now.Add(time.Hour), Reason: "5 events"},
		{Target: "100.70.1.0/24", Rule: "burst", Origin: "pbx-n", Since: now, Expires: now.Add(3 * time.Hour), Reason: "9 events", CoveredBy: "100.70.0.0/16"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || strings.Contains(lines[1], "inside") ||
		!strings.Contains(lines[2], "(inside 100.70.0.0/16, which the kernel holds) 9 events") {
		t.Errorf("list:\n%s", out.String())
	}
}
