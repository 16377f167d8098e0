//go:build linux

package firewall

import (
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// KernelTimeout exposes kernelTimeout to the tests.
var KernelTimeout = kernelTimeout

// SetVerifyInterval changes how often Reconcile reads the ban sets back,
// until the returned function is called.
func SetVerifyInterval(d time.Duration) (restore func()) {
	old := verifyInterval
	verifyInterval = d
	return func() { verifyInterval = old }
}

// SyncTimes returns how long the last Sync took to load the bans and to
// verify them.
func SyncTimes(n *NFT) (load, verify time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastLoad, n.lastVerify
}

// MuteMonitor unsubscribes Reconcile's monitor, as if it missed every
// notification, so that only the periodic checks see changes. It reports
// whether a monitor was running.
func MuteMonitor(n *NFT) bool {
	n.monMu.Lock()
	defer n.monMu.Unlock()
	if n.mon == nil {
		return false
	}
	return n.mon.join(false) == nil
}

// DropAnswers returns opts whose netlink sockets of role ("requests" or
// "dumps") drop every message the kernel sends them, as if nftables never
// answered (as without nf_tables in the kernel).
func DropAnswers(opts NFTOptions, role string) NFTOptions {
	opts.sockHook = func(fd int, r string) error {
		if r != role {
			return nil
		}
		return dropAll(fd)
	}
	return opts
}

// StopAnswers makes n's sockets as they are now drop every message the
// kernel sends them, as if nftables stopped answering; the sockets opened
// after that answer again.
func StopAnswers(n *NFT) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dump.mu.Lock()
	defer n.dump.mu.Unlock()
	for _, c := range []*netlink.Conn{n.sock, n.dump.c.Load()} {
		if err := sockControl(c, dropAll); err != nil {
			return err
		}
	}
	return nil
}

// dropAll attaches a socket filter that drops every message: the kernel
// acts on the requests, the answers never arrive.
func dropAll(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &prog[0]})
}

// MissingHint exposes missingHint to the tests.
var MissingHint = missingHint

// ProfileSuffix exposes profileSuffix to the tests.
var ProfileSuffix = profileSuffix

// Check runs Reconcile's periodic check now, with the read-back of the
// ban sets, and returns how long reading them took.
func Check(n *NFT) time.Duration { return n.check(true, "test") }
