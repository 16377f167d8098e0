package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/internal/logmix"
	"github.com/sipguard/sipguard/internal/testutil"
)

// TestScanSmallPages: scan leaves its heap on 4 KiB pages, advising no
// transparent huge pages (no "hg" flag in /proc/self/smaps), even for a log
// well past the 4 MiB from which it used to: in a VM whose free memory goes
// back to the host, each fresh huge page was faulted in from the host and
// the 1M-line scan ran 12-15 ms slower (heap.go).
func TestScanSmallPages(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		testutil.Missing(t, "/proc/self/smaps: %v", err)
	}
	path := filepath.Join(t.TempDir(), "mix.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := logmix.Generate(f, logmix.Options{Lines: 60_000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 8<<20 {
		t.Fatalf("the log should be 8 MiB or more: %v %v", fi, err)
	}
	if _, errOut, code := run(t, "", "scan", "--parser", "asterisk", path); code != 0 {
		t.Fatalf("scan: exit %d: %s", code, errOut)
	}
	if r := hugeRanges(t); len(r) > 0 {
		t.Errorf("%d ranges advised for huge pages after scan, want none: %x", len(r), r)
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
