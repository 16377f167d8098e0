package startheap

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/internal/testutil"
)

// vmFlags returns the VmFlags of the mapping holding addr, from
// /proc/self/smaps.
func vmFlags(t *testing.T, addr uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.Fields(rest)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no mapping holds %#x", addr)
	return nil
}

func hugeAdvised(t *testing.T, addr uintptr) bool {
	for _, f := range vmFlags(t, addr) {
		if f == "hg" {
			return true
		}
	}
	return false
}

func TestReadyAdvisesTheHeapChunk(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		testutil.Missing(t, "the kernel has no transparent huge pages")
	}
	lo, hi := Ready()
	if lo%hugePage != 0 || hi <= lo || hi-lo > heapChunk {
		t.Fatalf("advised %#x-%#x: not whole huge pages of one heap chunk", lo, hi)
	}
	// Both ends of the range: the chunk p lies in, and what follows it.
	if !hugeAdvised(t, lo) {
		t.Errorf("the heap at %#x is not advised for huge pages (VmFlags %v)", lo, vmFlags(t, lo))
	}
	if !hugeAdvised(t, hi-1) {
		t.Errorf("the heap at %#x is not advised for huge pages (VmFlags %v)", hi-1, vmFlags(t, hi-1))
	}
}
