//go:build linux

package firewall

import "time"

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
