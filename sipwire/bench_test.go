package sipwire_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/sipwire"
)

// BenchmarkSensor_FailedRegisters: a flood of refused REGISTERs, svcrack
// style (a challenge, then one 401 per guess on the Call-ID), from 1,000
// addresses: the responses/s one core reads and judges.
func BenchmarkSensor_FailedRegisters(b *testing.B) {
	const addrs = 1000
	var packets []sipwire.Packet
	for i := range addrs {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		c := client{a, 5060, fmt.Sprintf("%d-crack@x", i), "100"}
		packets = append(packets, c.packet(resp{status: 401, cseq: "1 REGISTER", branch: "b0"}))
		for g := 1; g <= 9; g++ {
			packets = append(packets, c.packet(resp{status: 401, cseq: "2 REGISTER", branch: fmt.Sprint("b", g)}))
		}
	}
	s := sipwire.NewSensor(sipwire.Options{})
	var events int
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range packets {
			events += len(s.Handle(p))
		}
	}
	if events == 0 {
		b.Fatal("no events")
	}
	b.ReportMetric(float64(len(packets))*float64(b.N)/b.Elapsed().Seconds(), "responses/s")
}

// BenchmarkSensor_MemoryPerDialog measures the heap a tracked Call-ID
// takes: 100,000 challenged dialogs (the default bound), as svwar or a
// flood of first REGISTERs leaves them, with a 3-byte To user and with
// the longest kept (128 bytes).
func BenchmarkSensor_MemoryPerDialog(b *testing.B) {
	for _, user := range []string{"100", strings.Repeat("u", 128)} {
		b.Run(fmt.Sprintf("user=%d", len(user)), func(b *testing.B) {
			const n = sipwire.DefaultMaxDialogs
			var perDialog float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := sipwire.NewSensor(sipwire.Options{})
				for i := range n {
					a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
					c := client{a, 5060, fmt.Sprintf("%08d-call@x", i), user}
					s.Handle(c.packet(resp{status: 401, cseq: "1 REGISTER", branch: "b", at: time.Duration(i)}))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if s.Stats().Tracked != n {
					b.Fatalf("tracked %d", s.Stats().Tracked)
				}
				perDialog = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perDialog, "B/dialog")
		})
	}
}
