//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Every request to the kernel has a deadline, NFTOptions.RequestTimeout.
// Without nf_tables in the kernel (the module missing, or not loadable) a
// transaction's messages get no acknowledgement, and google/nftables
// v0.3.0 waits for them for good: the daemon would hang at its start, or
// at its next ban. The deadline is set on the socket before each request
// (talk); a dump sets it again before each read, so that it bounds a
// pause in the replies, not a long dump.

// missingHint adds the hint of noAnswer to an error of the first request
// that says "invalid argument" or "not supported": what the kernel answers
// a request for a netlink subsystem it does not have (nfnetlink without
// nf_tables), rather than no answer at all.
func missingHint(err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w: is nf_tables in the kernel (modprobe nf_tables)?", err)
	}
	return err
}

// noAnswer turns the deadline error of a request into ErrNoAnswer, saying
// what to check.
func noAnswer(timeout time.Duration) error {
	return fmt.Errorf("%w within %s: is nf_tables in the kernel (modprobe nf_tables)?", ErrNoAnswer, timeout)
}

// talk runs f, a request on conn, with n.mu held, within n.timeout. A conn
// that did not answer in time is replaced: its answer, should it come
// late, would be read as the answer to the next request.
func (n *NFT) talk(f func(*nftables.Conn) error) error {
	deadline := time.Now().Add(n.timeout)
	if err := n.sock.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set netlink deadline: %w", err)
	}
	err := f(n.conn)
	if !timedOut(err, deadline) {
		return err
	}
	old := n.conn
	if rerr := n.dial(); rerr != nil {
		n.log.Warn().Err(rerr).Msg("cannot replace the nftables connection that did not answer")
	} else {
		old.CloseLasting()
	}
	return noAnswer(n.timeout)
}

// hookSocket applies the tests' sockHook, if any, to c.
func hookSocket(hook func(fd int, role string) error, c *netlink.Conn, role string) error {
	if hook == nil {
		return nil
	}
	return sockControl(c, func(fd int) error { return hook(fd, role) })
}

// timedOut tells whether err is the end of a request whose deadline
// passed. v0.3.0 wraps the socket's error with %v in most of its reads
// (GetRules, GetSets, ...), so errors.Is does not always see it.
func timedOut(err error, deadline time.Time) bool {
	return err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline))
}
