package firewall

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
)

// NFTOptions configures NewNFT.
type NFTOptions struct {
	// Table is the name of sipguard's inet table; default "sipguard".
	Table string
	// Hooks are the netfilter hooks to filter on: "input" and/or
	// "forward"; default ["input"].
	Hooks []string
	// Ports, when set, restrict the drop to these destination ports;
	// empty drops all traffic from banned sources.
	Ports []Port
	// Profiles are the other port lists that bans may drop traffic to
	// (a rule's own ports): each gets its own ban sets, port sets and
	// drops, and a ban names its list by PortsKey (Ban.Ports). A list
	// with the key of Ports is the default itself.
	Profiles [][]Port
	// Allow is the allowlist: addresses and networks whose packets no ban
	// drops (see SetAllow).
	Allow []netip.Prefix
	// Wire, when set, adds the wire sensor's log rules: copies of the
	// PBX's outgoing SIP responses to an NFLOG group (see Wire and NFT).
	Wire *Wire
	// Policy is the access policy of the SIP ports (SetPolicy); the zero
	// Policy is open: only bans drop. Its Early is fixed here.
	Policy Policy
	// NetNS is the path of a network namespace to work in (such as
	// /run/netns/x); "" is the current one.
	NetNS  string
	Logger zerolog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// RequestTimeout bounds each request to the kernel, and each pause in
	// the replies to a dump: past it the request fails with ErrNoAnswer.
	// 0 is DefaultRequestTimeout.
	RequestTimeout time.Duration

	// sockHook, set by tests, is applied to each netlink socket as it is
	// opened, with its role ("requests" or "dumps"): a fault to inject.
	sockHook func(fd int, role string) error
}

// DefaultRequestTimeout is NFTOptions.RequestTimeout's default: the
// longest legitimate request, one transaction of a million bans, takes a
// few seconds.
const DefaultRequestTimeout = 30 * time.Second

// ErrNoAnswer is why a request to the kernel failed when no answer came
// in time: without nf_tables in the kernel (the module missing or not
// loadable) a transaction gets no acknowledgement.
var ErrNoAnswer = errors.New("nftables did not answer")

// MaxTimeout is the longest ban the nftables backend sets; longer timeouts
// are capped to it. The kernel accepts element timeouts below 2^64/10^6 ms
// (about 584 years; ERANGE above), more than a time.Duration can hold, so
// the cap is the largest time.Duration in whole milliseconds (about 292
// years).
const MaxTimeout = time.Duration(math.MaxInt64) / time.Millisecond * time.Millisecond

// ErrClosed is returned by a backend used after Close.
var ErrClosed = errors.New("firewall backend closed")

// ErrInvalidBan is returned for a ban with an invalid prefix or a timeout
// that is not positive.
var ErrInvalidBan = errors.New("invalid ban")

// Normalize returns the canonical form of a ban prefix, as the nftables
// backend stores it: host bits cleared, and an IPv4-mapped IPv6 prefix
// (::ffff:a.b.c.d/n, n >= 96) turned into the IPv4 prefix it denotes.
func Normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("%w: prefix %q", ErrInvalidBan, p.String())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// kernelTimeout returns d rounded up to the millisecond (the kernel's
// unit: a sub-millisecond timeout would be sent as none, a permanent ban)
// and capped at MaxTimeout. The dry run holds bans as long as NFT does.
func kernelTimeout(d time.Duration) time.Duration {
	if d >= MaxTimeout-time.Millisecond {
		return MaxTimeout
	}
	if d < time.Millisecond {
		return time.Millisecond
	}
	return (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond
}

// normalizeBan returns b's prefix normalised (Normalize), or an
// ErrInvalidBan for an invalid prefix or a timeout that is not positive:
// what every backend refuses.
func normalizeBan(b Ban) (netip.Prefix, error) {
	p, err := Normalize(b.Prefix)
	if err != nil {
		return netip.Prefix{}, err
	}
	if b.Timeout <= 0 {
		return netip.Prefix{}, fmt.Errorf("%w: %s: timeout %v is not positive", ErrInvalidBan, p, b.Timeout)
	}
	return p, nil
}

// isHost reports whether p is a single address.
func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }
