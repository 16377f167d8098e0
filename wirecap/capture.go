// Package wirecap reads the SIP responses that sipguard's nftables rules
// copy to an NFLOG group (package firewall, NFTOptions.Wire) and hands
// each one on as a Packet: addresses, ports and the UDP or TCP payload,
// parsed from the IPv4 or IPv6 packet here. It only captures; reading the
// responses (package sipwire) is the caller's.
//
// Delivery is per packet (the group's queue threshold is 1: the kernel's
// default batches about a second, which delays every ban). The copies
// travel over a netlink socket: when the reader falls behind and the
// socket's buffer fills, the kernel drops copies and the next read fails
// with ENOBUFS (Stats.Overruns); the group's sequence numbers tell how
// many copies were lost (Stats.Lost). Traffic itself is never held up:
// NFLOG copies, it does not queue.
//
// Only one socket can bind a group: a group already bound by another
// program (ulogd2, another sipguard) is an error at Start naming it
// (ErrGroupBusy).
package wirecap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// DefaultSnaplen is the bytes of each packet asked of the kernel when
// Options.Snaplen is 0; firewall.DefaultWireSnaplen is the same.
const DefaultSnaplen = 4096

// DefaultReadBuffer is Options.ReadBuffer's default (the kernel doubles
// it): room for about 13,000 copies of 500-byte responses before the
// kernel drops any (TestCapture_Overrun's 64 KiB held 104), over a second
// of 10,000 failures/s.
const DefaultReadBuffer = 8 << 20

// ErrGroupBusy is why Start fails when another socket has bound the group.
var ErrGroupBusy = errors.New("NFLOG group already bound by another program")

// Options configures Start.
type Options struct {
	// Group is the NFLOG group the firewall rules log to.
	Group uint16
	// Snaplen is the most bytes of each packet the kernel copies (the
	// rules have their own, the smaller applies); 0 is DefaultSnaplen.
	Snaplen uint32
	// ReadBuffer is the socket's receive buffer in bytes (forced past
	// net.core.rmem_max with CAP_NET_ADMIN); 0 is DefaultReadBuffer.
	ReadBuffer int
	// NetNS is the path of a network namespace to read in (such as
	// /run/netns/x); "" is the current one.
	NetNS  string
	Logger zerolog.Logger
	// Now stamps packets the kernel sent without a time; nil is time.Now.
	Now func() time.Time
}

// Stats counts what a Capture read. Every field only grows.
type Stats struct {
	// Packets were handed on; Bytes is the sum of their payloads.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Truncated were handed on shorter than sent (cut at the snaplen).
	Truncated uint64 `json:"truncated"`
	// Dropped counts the copies not handed on, by reason (DropMalformed,
	// DropFragment, DropProtocol).
	Dropped map[string]uint64 `json:"dropped"`
	// Overruns counts the reads that failed with ENOBUFS: the socket's
	// buffer was full and the kernel dropped copies.
	Overruns uint64 `json:"overruns"`
	// Lost counts the copies the kernel sent that never arrived, from the
	// gaps in the group's sequence numbers.
	Lost uint64 `json:"lost"`
	// Errors counts other read errors (each logged).
	Errors uint64 `json:"errors"`
}

// Capture reads an NFLOG group. Make it with Start.
type Capture struct {
	log    zerolog.Logger
	now    func() time.Time
	group  uint16
	nf     *nflog.Nflog
	cancel context.CancelFunc
	done   chan struct{} // closed when reading stops (Close or a fatal error)
	stop   sync.Once
	err    atomic.Pointer[error]

	// mu is held while a packet is handled, so that Close returns only
	// once no handler runs.
	mu      sync.Mutex
	closed  bool
	handle  func(Packet)
	lastSeq uint32
	seqSeen bool

	packets, bytes, truncated, overruns, lost, errs atomic.Uint64
	dropped                                         [3]atomic.Uint64 // by dropReasons
}

var dropReasons = [3]string{DropMalformed, DropFragment, DropProtocol}

// Start binds the NFLOG group and calls handle for each packet copied to
// it, one at a time, on the capture's goroutine, until ctx is done or
// Close.
func Start(ctx context.Context, opts Options, handle func(Packet)) (*Capture, error) {
	snap := opts.Snaplen
	if snap == 0 {
		snap = DefaultSnaplen
	}
	cfg := &nflog.Config{
		Group:    opts.Group,
		Copymode: nflog.CopyPacket,
		Bufsize:  snap,
		QThresh:  1,
		Flags:    nflog.FlagSeq,
	}
	if opts.NetNS != "" {
		f, err := os.Open(opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("open network namespace: %w", err)
		}
		defer f.Close() // the socket, once made, stays in the namespace
		cfg.NetNS = int(f.Fd())
	}
	nf, err := nflog.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open NFLOG group %d: %w", opts.Group, err)
	}
	c := &Capture{
		log: opts.Logger, now: opts.Now, group: opts.Group, nf: nf,
		done: make(chan struct{}), handle: handle,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.setReadBuffer(cmpOr(opts.ReadBuffer, DefaultReadBuffer)); err != nil {
		c.log.Warn().Err(err).Msg("NFLOG receive buffer not raised: copies are lost sooner under a flood")
	}
	ctx, c.cancel = context.WithCancel(ctx)
	if err := nf.RegisterWithErrorFunc(ctx, c.hook, c.onError); err != nil {
		c.cancel()
		nf.Close()
		// go-nflog v2.3.0 formats the kernel's error with %v: its text
		// is all there is. The kernel answers EPERM when another socket
		// holds the group (the binds before it need the same privilege
		// and succeeded).
		if strings.Contains(err.Error(), "could not bind to requested group") {
			return nil, fmt.Errorf("%w: group %d (ulogd2 or another sipguard? stop it or choose another [wire] group): %v", ErrGroupBusy, opts.Group, err)
		}
		return nil, fmt.Errorf("bind NFLOG group %d: %w", opts.Group, err)
	}
	go func() {
		<-ctx.Done()
		c.finish(nil)
	}()
	return c, nil
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// setReadBuffer forces the socket's receive buffer to n bytes.
func (c *Capture) setReadBuffer(n int) error {
	raw, err := c.nf.Con.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	}); err != nil {
		return err
	}
	return serr
}

// hook receives one copy: it parses it and hands it on. The payload is
// copied out of the library's buffer, which the next read reuses.
func (c *Capture) hook(a nflog.Attribute) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 1
	}
	if a.Seq != nil {
		if c.seqSeen && *a.Seq != c.lastSeq+1 {
			c.lost.Add(uint64(*a.Seq - c.lastSeq - 1))
		}
		c.lastSeq, c.seqSeen = *a.Seq, true
	}
	if a.Payload == nil {
		c.dropped[0].Add(1)
		return 0
	}
	var p Packet
	why, short := parse(*a.Payload, &p)
	if why != "" {
		for i, r := range dropReasons {
			if r == why {
				c.dropped[i].Add(1)
			}
		}
		return 0
	}
	if short {
		c.truncated.Add(1)
	}
	// One copy, out of the library's buffer; the handler does not keep it.
	p.Payload = append([]byte(nil), p.Payload...)
	if a.Timestamp != nil && !a.Timestamp.IsZero() {
		p.Time = *a.Timestamp
	} else {
		p.Time = c.now()
	}
	c.packets.Add(1)
	c.bytes.Add(uint64(len(p.Payload)))
	c.handle(p)
	return 0
}

// onError decides whether reading goes on after err.
func (c *Capture) onError(err error) int {
	select {
	case <-c.done:
		return 1
	default:
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 1 // Close interrupted the read
	}
	if errors.Is(err, unix.ENOBUFS) {
		c.overruns.Add(1)
		return 0
	}
	var to interface{ Timeout() bool }
	if errors.As(err, &to) && to.Timeout() {
		return 0 // the deadline set to stop a read; ctx is done
	}
	c.errs.Add(1)
	c.log.Error().Err(err).Uint16("group", c.group).Msg("reading the NFLOG group failed: the wire sensor stops")
	c.finish(fmt.Errorf("read NFLOG group %d: %w", c.group, err))
	return 1
}

// finish records why reading stopped and closes done, once.
func (c *Capture) finish(err error) {
	c.stop.Do(func() {
		if err != nil {
			c.err.Store(&err)
		}
		close(c.done)
	})
}

// Done is closed when the capture stops: Close, the end of Start's ctx,
// or a read error (Err).
func (c *Capture) Done() <-chan struct{} { return c.done }

// Err is why the capture stopped by itself; nil while it reads, or after
// Close or the end of its ctx.
func (c *Capture) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops reading and releases the group; no handler runs once it
// returns. The firewall rules stay: the kernel drops the copies nobody
// reads, and traffic flows on.
func (c *Capture) Close() error {
	c.cancel()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.finish(nil)
	// Closing the socket releases the group in the kernel.
	return c.nf.Close()
}

// Stats returns the counters.
func (c *Capture) Stats() Stats {
	s := Stats{
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), Truncated: c.truncated.Load(),
		Overruns: c.overruns.Load(), Lost: c.lost.Load(), Errors: c.errs.Load(),
		Dropped: map[string]uint64{},
	}
	for i, r := range dropReasons {
		s.Dropped[r] = c.dropped[i].Load()
	}
	return s
}
