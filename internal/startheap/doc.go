// Package startheap asks the kernel for transparent huge pages under the
// heap that the start of a replay fills (sipguard scan and report):
// imported for its init, which runs before most packages' inits do.
//
// The Go runtime never advises huge pages, and in a virtual machine a
// 4 KiB page fault costs ~11 us: the start of `sipguard scan` (the
// runtime's and the packages' inits, rules.toml's decoding) touched ~450
// fresh heap pages. With this, the 1M-line scan of bench/compare.sh took
// ~650 page faults instead of ~950 in most runs, and 2.5-3.5 ms less of
// its ~100 (medians of 50-60 interleaved pairs). In the other runs the
// start had filled most of the chunk by then, and the heap grew into the
// next one, a new mapping the advice does not reach: those pages stay
// small, as before. Larger heaps are readied by the command itself
// (cmd/sipguard's hugeHeap). Where THP is off, or on other systems,
// nothing changes.
package startheap
