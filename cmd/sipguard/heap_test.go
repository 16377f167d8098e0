package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// gogc reads GOGC without setting it.
func gogc() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestLateFirstGC: a replay raises GOGC until the collector's first cycle,
// then GOGC is what it was; restore restores it too, and GOGC=off stays
// off.
func TestLateFirstGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	restore := lateFirstGC()
	if p := gogc(); p != 800 {
		t.Fatalf("GOGC %d after lateFirstGC; want 800", p)
	}
	runtime.GC()
	for deadline := time.Now().Add(10 * time.Second); gogc() != 100; {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d after the first cycle; want 100 again", gogc())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	restore()
	if p := gogc(); p != 100 {
		t.Fatalf("GOGC %d after restore; want 100", p)
	}

	lateFirstGC()() // restored before any cycle
	if p := gogc(); p != 100 {
		t.Fatalf("GOGC %d after an early restore; want 100", p)
	}

	debug.SetGCPercent(-1)
	lateFirstGC()
	if p := debug.SetGCPercent(100); p != -1 {
		t.Fatalf("GOGC %d with GOGC=off; want off (-1)", p)
	}
}
