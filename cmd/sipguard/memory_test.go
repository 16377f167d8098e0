package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/sipguard/sipguard/internal/testutil"
)

// TestMemoryPerTrackedAddress feeds `sipguard scan` (the real binary, from
// standard input, so nothing is held on disk) failures from 2,000,000
// distinct IPv4 addresses and 1,000,000 random IPv6 addresses in distinct
// /64s, with max_tracked = 1,000,000: the engine never tracks more, and the
// peak RSS per tracked address stays under maxBytesPerTracked.
func TestMemoryPerTrackedAddress(t *testing.T) {
	// Measured 273-292 bytes (peak RSS varies with when the collector
	// runs): the bound leaves a third more, and fails when a tracked
	// address grows by a pointer-rich field or two.
	const maxBytesPerTracked = 400
	testutil.SkipShort(t, "3,000,000 attackers")
	bin := buildSipguard(t)
	cfg := filepath.Join(t.TempDir(), "rules.toml")
	os.WriteFile(cfg, []byte("[engine]\nmax_tracked = 1000000\n[allow]\nself = false\n"), 0o644)
	cmd := exec.Command(bin, "scan", "-c", cfg, "--parser", "asterisk", "-")
	in, _ := cmd.StdinPipe()
	var stderr, stdout bufWriter
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(in, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3_000_000 {
		var addr string
		if i%3 != 2 {
			n := i/3*2 + i%3
			addr = fmt.Sprintf("%d.%d.%d.%d", 11+n>>24, n>>16&255, n>>8&255, n&255)
		} else {
			addr = fmt.Sprintf("[2001:db8:%x:%x::%x]", r.IntN(65536), r.IntN(65536), r.IntN(65535)+1)
		}
		fmt.Fprintf(w, "[2026-11-26 10:%02d:%02d] NOTICE[1] chan_sip.c: Registration from '<sip:1@203.0.113.10>' failed for '%s:5060' - Wrong password\n", i/60000%60, i/1000%60, addr)
	}
	w.Flush()
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scan: %v\n%s", err, stderr.String())
	}
	summary := stderr.String()
	rss := regexp.MustCompile(`peak RSS ([0-9.]+) MiB`).FindStringSubmatch(summary)
	tracked := regexp.MustCompile(`addresses tracked at the end: (\d+)`).FindStringSubmatch(summary)
	if rss == nil || tracked == nil {
		t.Fatalf("no summary:\n%s", summary)
	}
	mib, _ := strconv.ParseFloat(rss[1], 64)
	n, _ := strconv.Atoi(tracked[1])
	if n != 1_000_000 {
		t.Errorf("tracked %d addresses; want max_tracked = 1000000", n)
	}
	perTracked := mib * (1 << 20) / float64(n)
	t.Logf("3,000,000 distinct attackers (2M IPv4, 1M IPv6 /64s), max_tracked 1,000,000: peak RSS %.1f MiB, %.0f bytes per tracked address\n%s",
		mib, perTracked, summary)
	if perTracked > maxBytesPerTracked {
		t.Errorf("%.0f bytes of peak RSS per tracked address; want at most %d", perTracked, maxBytesPerTracked)
	}
}

type bufWriter struct{ b []byte }

func (w *bufWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bufWriter) String() string              { return string(w.b) }
