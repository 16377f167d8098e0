package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"sync"
)

// How the heap is set up for a replay (scan, report): a short run that
// fills a few tens of MiB with state it keeps to the end (the engine's
// trackers, the parsers' events), so the collector's cycles and the
// kernel's page faults are most of what the runtime costs it.

// replayHeapSize is the part of the heap hugeHeap readies: more than the
// 1M-line mix of bench/compare.sh fills (about 20 MiB).
const replayHeapSize = 32 << 20

// hugeHeapMin is the size of logs from which a replay readies its heap
// with hugeHeap: below it, the collection hugeHeap runs costs more than
// the page faults it saves (+10 ms on an empty log, -15 ms on a 15 MiB
// one).
const hugeHeapMin = 4 << 20

// logBytes returns the size of the files among files (not "-", nor what
// cannot be read: opening them reports that).
func logBytes(files []string) int64 {
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); f != "-" && err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// hugeHeap asks the kernel to back the next n bytes of the heap with
// transparent huge pages (madvise MADV_HUGEPAGE; Linux only, a no-op
// where THP is off): it allocates them as one object, advises its pages,
// and frees it with a collection, so that the allocations after it reuse
// those pages. The Go runtime never advises huge pages itself, and in a
// virtual machine a 4 KiB page fault costs ~11 us: the 1M-line scan took
// 4,100 of them, a sixth of its CPU time; with this, 1,400 (startup's
// and the binary's, mostly). Call it before the replay allocates, and
// before lateFirstGC, whose first cycle it would be.
func hugeHeap(n int) {
	// Allocated with the collector off: at start the heap's first target
	// is 4 MiB, and the allocation would start a cycle of its own, in
	// which b is still live, before the one that frees it (two cycles,
	// ~1.5 ms more).
	gc := debug.SetGCPercent(-1)
	b := make([]byte, n) // fresh pages: the runtime does not touch them
	adviseHuge(b)
	b = nil
	runtime.GC()
	debug.SetGCPercent(gc)
}

// lateFirstGC holds off the collector's first cycle until the heap reaches
// 32 MiB instead of 4 (its first target grows with GOGC), and restores
// GOGC once that cycle has run or when restore is called: the cycles at 4,
// 8 and 16 MiB cost a replay a tenth of its time, and most replays never
// reach 32 MiB. Those that do run as before, having held at most 32 MiB
// more for a while.
func lateFirstGC() (restore func()) {
	old := debug.SetGCPercent(800)
	if old < 0 { // GOGC=off: leave it so
		debug.SetGCPercent(old)
		return func() {}
	}
	var once sync.Once
	restore = func() { once.Do(func() { debug.SetGCPercent(old) }) }
	// Collected (and its finalizer run) by the first cycle; 32 bytes, not
	// a tiny allocation, whose finalizer might never run.
	runtime.SetFinalizer(new([32]byte), func(*[32]byte) { restore() })
	return restore
}
