package main

import "golang.org/x/sys/unix"

// adviseHuge advises transparent huge pages for b's pages; an error (an
// old kernel, THP compiled out) leaves them as they were.
func adviseHuge(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
