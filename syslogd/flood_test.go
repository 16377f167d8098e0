package syslogd_test

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/syslogd"
)

// TestReceiver_Flood sends datagrams as fast as two senders can, one
// listed and one not, to a receiver whose emit is slow: the queue stays
// bounded, reading goes on, and every datagram read is accounted for.
//
// It runs under -short too (test.sh's -race pass): a second of sending,
// and the bounded queue between the readers and emit is what the race
// detector should see under load.
func TestReceiver_Flood(t *testing.T) {
	const queue = 500
	var maxBatch atomic.Int64
	var delivered atomic.Int64
	r, err := syslogd.New(syslogd.Options{
		Listen:     []string{"udp://127.0.0.1:0"},
		Senders:    []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		QueueLines: queue,
	})
	if err != nil {
		t.Fatal(err)
	}
	runWith(t, r, func(ms []syslogd.Message) error {
		if n := int64(len(ms)); n > maxBatch.Load() {
			maxBatch.Store(n)
		}
		delivered.Add(int64(len(ms)))
		time.Sleep(100 * time.Millisecond) // a slow consumer
		return nil
	})
	a := addr(t, r, "udp")

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stopSample := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})

	msg := []byte("<29>Mar  2 09:50:01 s50 asterisk[812]: " + asteriskBody)
	const dur = time.Second
	var sent atomic.Int64
	var senders sync.WaitGroup
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		senders.Go(func() {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a)))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			n := int64(0)
			for end := time.Now().Add(dur); time.Now().Before(end); {
				for range 100 {
					if _, err := c.Write(msg); err == nil {
						n++
					}
				}
			}
			sent.Add(n)
		})
	}
	senders.Wait()
	// Wait for the readers to finish what the kernel buffered and the
	// queue to drain.
	var s syslogd.Stats
	for last := int64(-1); ; last = s.Received {
		time.Sleep(100 * time.Millisecond)
		s = r.Stats()
		if s.Received == last && s.Queued == 0 {
			break
		}
	}
	close(stopSample)
	sampler.Wait()

	checkBalance(t, s)
	if s.DroppedOverflow == 0 || s.DroppedUnlisted == 0 {
		t.Errorf("stats %+v; want overflow and unlisted drops", s)
	}
	if s.Delivered != delivered.Load() {
		t.Errorf("delivered %d; emit saw %d", s.Delivered, delivered.Load())
	}
	if n := maxBatch.Load(); n > queue {
		t.Errorf("a batch of %d; want at most %d", n, queue)
	}
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	// The queue holds at most 500 lines of about 200 bytes; the rest is
	// read buffers and the runtime.
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB; want it bounded", growth>>20)
	}
	t.Logf("sent %d datagrams in %v (%.0f/s); received %d (%.0f/s): delivered %d, unlisted %d, overflow %d; kernel dropped %d; heap in use +%.1f MiB (peak %.1f MiB); %s",
		sent.Load(), dur, float64(sent.Load())/dur.Seconds(), s.Received, float64(s.Received)/dur.Seconds(),
		s.Delivered, s.DroppedUnlisted, s.DroppedOverflow, sent.Load()-s.Received,
		float64(growth)/(1<<20), float64(peak.Load())/(1<<20), vmHWM())
}

// vmHWM returns the process's peak resident memory, as the kernel reports it.
func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return "peak RSS " + strings.Join(strings.Fields(l[6:]), " ")
		}
	}
	return ""
}
