package startheap

// Only syscall (and bytes, initialized before it): a package is
// initialized once its imports are, and with os or x/sys/unix this one
// came 4 ms later, half the start's heap already touched.
import (
	"bytes"
	"syscall"
	"unsafe"
)

// The sizes the runtime maps the heap in on linux/amd64 and arm64: heap
// arenas of 64 MiB, grown into 4 MiB at a time from a 4 MiB boundary
// (the runtime's pallocChunkBytes), under 2 MiB huge pages.
const (
	hugePage  = 2 << 20
	heapChunk = 4 << 20
	heapArena = 64 << 20

	madvCollapse = 25 // MADV_COLLAPSE, Linux 6.1: not in package syscall
)

func init() {
	// Only the replays: the daemon's heap stays in small pages (its RSS
	// is what operators watch), and so do the short commands'.
	if cmd := command(); cmd == "scan" || cmd == "report" {
		Ready()
	}
}

// command returns the process's first argument, read from
// /proc/self/cmdline: os.Args is set by package os's init.
func command() string {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer syscall.Close(fd)
	var buf [256]byte // a longer path of the program: no replay then
	n, _ := syscall.Read(fd, buf[:])
	args := bytes.Split(buf[:max(n, 0)], []byte{0})
	if len(args) < 3 { // the path, the command, and the empty string after the last NUL
		return ""
	}
	return string(args[1])
}

// sink makes the allocation in Ready a heap one.
var sink *[64]byte

// Ready advises huge pages for the heap chunk the runtime is allocating
// from, and collapses its pages touched so far into one huge page. It
// returns the range it advised; an error (an old kernel without
// MADV_COLLAPSE, THP compiled out) leaves the pages as they were.
func Ready() (lo, hi uintptr) {
	sink = new([64]byte)
	p := uintptr(unsafe.Pointer(sink))
	sink = nil
	// p lies in the chunk the start is filling; where in it depends on
	// the span it came from, so the range may start past some of the
	// chunk's pages or reach into the next chunk, not mapped yet (advice
	// there is lost when the runtime maps it): then fewer pages are huge,
	// the bimodal result the package's doc gives. The arena's end bounds
	// the range: what lies past it is not this heap's.
	lo = p &^ (hugePage - 1)
	hi = min(lo+heapChunk, (p+heapArena)&^(heapArena-1))
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE)
	// Advice works only on pages not yet touched: the touched ones of p's
	// huge page are copied into one, in one system call (Linux 6.1).
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, lo, hugePage, madvCollapse)
	return lo, hi
}
