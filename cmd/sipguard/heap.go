package main

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// How the heap is set up for a replay (scan, report): a short run that
// fills a few tens of MiB with state it keeps to the end (the engine's
// trackers, the parsers' events), so the collector's cycles are most of
// what the runtime costs it.
//
// The heap stays on the kernel's 4 KiB pages. Asking for transparent huge
// pages under it (MADV_HUGEPAGE, as sipguard did until 2026-12-04) made
// the 1M-line scan of bench/compare.sh slower, 12-15 ms of ~115 in paired
// runs: in a virtual machine that reports free memory back to its host
// (free page reporting, of blocks from 2 MiB up on the VM measured), a
// free huge page is nearly always one the host took back, and faulting it
// in cost ~3 ms per MiB against ~0.5 ms per MiB of 4 KiB pages, which the
// kernel takes from the smaller free blocks it never reports.

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
