package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/internal/testutil"
)

// scrapers is a helper process: run as the test binary with
// SIPGUARD_SCRAPERS=URL,N inside a namespace, it scrapes URL from N
// goroutines as fast as the answers come, and prints the number of
// scrapes done on stdout every 100 ms.
func scrapers(spec string) {
	url, n, _ := strings.Cut(spec, ",")
	workers, _ := strconv.Atoi(n)
	var done atomic.Int64
	for range workers {
		go func() {
			for {
				resp, err := http.Get(url)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done.Add(1)
			}
		}()
	}
	for range time.Tick(100 * time.Millisecond) {
		fmt.Println(done.Load())
	}
}

// banClock reads the daemon's output as it comes: it notes when each
// "ban" log line arrives (the line is written once the ban is in the
// kernel), by address.
type banClock struct {
	mu      sync.Mutex
	partial []byte
	seen    map[string]time.Time
}

func (c *banClock) Write(p []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		var l struct{ Message, IP string }
		if json.Unmarshal(c.partial[:i], &l) == nil && l.Message == "ban" && l.IP != "" {
			c.seen[l.IP] = now
		}
		c.partial = c.partial[i+1:]
	}
	return len(p), nil
}

func (c *banClock) at(ip string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[ip]
	return t, ok
}

// TestScrapesDoNotDelayBans holds 100,000 bans and measures ban latency,
// from the log line written to the daemon's "ban" line (written once the
// ban is in the kernel), without and with 16 processes' worth of
// concurrent /metrics scrapers: scrapes must not delay banning.
func TestScrapesDoNotDelayBans(t *testing.T) {
	needRoot(t)
	testutil.SkipShort(t, "holds 100,000 bans in the kernel")
	ns := netns(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	const held = 100_000
	now := time.Now()
	recs := make([]*bans.Record, held)
	for i := range recs {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		recs[i] = &bans.Record{Target: bans.Host(a), Origin: bans.ByHand, Reason: "held", Since: now, Expires: now.Add(time.Hour)}
	}
	if err := os.WriteFile(filepath.Join(state, "bans.state"), bans.Encode(bans.Snapshot{Bans: recs}), 0o600); err != nil {
		t.Fatal(err)
	}
	appendLines(t, logPath, "[2026-01-01 00:00:00] VERBOSE[1] pbx.c: started")
	const metricsAddr = "127.0.0.1:9477"
	config := daemonConfig(t, dir, logPath, `
[[rule]]
name = "burst"
max_retry = 5
find_time = "1m"
ban_time = "1h"

[metrics]
listen = "`+metricsAddr+`"
`)

	clock := &banClock{seen: map[string]time.Time{}}
	d := startDaemon(t, ns, config, clock)
	// Up, and done reading the restored bans back from the kernel.
	if !waitFor(60*time.Second, func() bool { return strings.Contains(d.stderr.String(), "bans read back from the kernel") }) {
		t.Fatalf("daemon did not come up:\n%s", d.stderr)
	}

	// One attacker at a time: its five lines, then its ban.
	next := 0
	sample := func(n int) []time.Duration {
		var lat []time.Duration
		for range n {
			next++
			ip := netip.AddrFrom4([4]byte{100, 64, byte(next >> 8), byte(next)}).String()
			start := time.Now()
			appendLines(t, logPath, failures(ip, 5)...)
			if !waitFor(30*time.Second, func() bool { _, ok := clock.at(ip); return ok }) {
				t.Fatalf("%s not banned:\n%s", ip, d.stderr)
			}
			at, _ := clock.at(ip)
			lat = append(lat, at.Sub(start))
			time.Sleep(20 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}
	q := func(lat []time.Duration, p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	const samples = 100
	quiet := sample(samples)

	// The scrapers run niced: any local process can take CPU from the
	// daemon, scraping or not; what is measured is whether scrapes hold
	// up the daemon's banning.
	sc := exec.Command("ip", "netns", "exec", ns, "nice", "-n", "19", os.Args[0])
	sc.Env = append(os.Environ(), "SIPGUARD_SCRAPERS=http://"+metricsAddr+"/metrics,16")
	out, err := sc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Process.Kill(); sc.Wait() })
	var scrapes atomic.Int64
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			n, _ := strconv.ParseInt(s.Text(), 10, 64)
			scrapes.Store(n)
		}
	}()
	if !waitFor(30*time.Second, func() bool { return scrapes.Load() >= 16 }) {
		t.Fatalf("the scrapers never got an answer:\n%s", d.stderr)
	}
	before, t0 := scrapes.Load(), time.Now()
	loaded := sample(samples)
	rate := float64(scrapes.Load()-before) / time.Since(t0).Seconds()
	sc.Process.Kill()

	t.Logf("ban latency with %d bans held, log line written -> ban line (%d samples each):", held, samples)
	t.Logf("  quiet:              p50 %v  p90 %v  p99 %v", q(quiet, .5), q(quiet, .9), q(quiet, .99))
	t.Logf("  16 scrapers (%.0f/s): p50 %v  p90 %v  p99 %v", rate, q(loaded, .5), q(loaded, .9), q(loaded, .99))
	if rate < 16 {
		t.Errorf("the scrapers scraped %.1f times a second: no load", rate)
	}
	// When each scrape took the core goroutine ~15 ms to count 100,000
	// bans (66 scrapes/s), p50 went from 1.0 to 14.7 ms and p90 from 2.7
	// to 45.6 ms under this load (14x, 17x). Now both stay with the quiet
	// run (p50 and p90 0.6-1.0x on a loaded 2-core machine, the scrapes
	// paced to about 90/s). p99 is shown, not compared: it is the
	// firewall's periodic read-back of 100,000 elements, scrapes or not.
	if q(loaded, .5) > 2*q(quiet, .5) || q(loaded, .9) > 3*q(quiet, .9) {
		t.Errorf("scrapes delay bans: p50 %v -> %v, p90 %v -> %v", q(quiet, .5), q(loaded, .5), q(quiet, .9), q(loaded, .9))
	}
}
