package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/sipguard/sipguard/internal/testutil"
)

// TestHugeHeap: the allocations made after hugeHeap lie (mostly) in memory advised
// for transparent huge pages (the "hg" flag of /proc/self/smaps), where a
// page fault maps 2 MiB instead of 4 KiB. Whether the kernel then has a
// huge page to give is its business; the advice is ours.
func TestHugeHeap(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		testutil.Missing(t, "a kernel without transparent huge pages: %v", err)
	}
	// 24 MiB of allocations: past the pages a busy test binary may have
	// free below the advised ones, which the runtime fills first.
	hugeHeap(replayHeapSize)
	var objs [][]byte
	for range 48 {
		objs = append(objs, make([]byte, 512<<10))
	}
	advised := hugeRanges(t)
	in := 0
	for _, b := range objs {
		p := uintptr(unsafe.Pointer(&b[0]))
		for _, r := range advised {
			if p >= r[0] && p < r[1] {
				in++
				break
			}
		}
	}
	if in < len(objs)/2 {
		t.Errorf("%d of %d allocations after hugeHeap in memory advised for huge pages (%d such ranges)", in, len(objs), len(advised))
	}
}

// hugeRanges returns the address ranges of /proc/self/smaps whose VmFlags
// hold "hg" (MADV_HUGEPAGE).
func hugeRanges(t *testing.T) [][2]uintptr {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]uintptr
	var cur [2]uintptr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			if strings.Contains(" "+flags+" ", " hg ") {
				out = append(out, cur)
			}
			continue
		}
		span, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(span, "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			cur = [2]uintptr{uintptr(a), uintptr(b)}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
