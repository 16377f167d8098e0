package syslogd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for zero Options fields.
const (
	DefaultMaxMessage  = 8192
	DefaultQueueLines  = 4096
	DefaultMaxConns    = 64
	DefaultIdleTimeout = 10 * time.Minute

	// MinMaxMessage is the smallest MaxMessage accepted: RFC 3164 allows
	// messages of 1024 bytes, RFC 5424 asks receivers for 2048.
	MinMaxMessage = 1024
	// MaxMaxMessage is the largest MaxMessage accepted: a UDP datagram
	// cannot be longer.
	MaxMaxMessage = 65535
)

// warnEvery is how often, at most, dropped messages are logged.
var warnEvery = time.Minute

// ErrNoSenders is returned by New for Options without Senders: a syslog
// port open to every address would let anyone inject log lines.
var ErrNoSenders = errors.New("no senders allowed")

// Options configure a Receiver.
type Options struct {
	// Listen lists the addresses to listen on, each "udp://HOST:PORT" or
	// "tcp://HOST:PORT" (also udp4, udp6, tcp4, tcp6). HOST is an IP
	// address, or empty for every address; "[::]" also receives IPv4 on
	// dual-stack hosts. Port 0 picks a free port (see Addrs).
	Listen []string
	// Senders are the only source addresses accepted. Anything else is
	// dropped and counted before a byte of it is parsed, and a TCP
	// connection from it is closed at once. Empty is an error
	// (ErrNoSenders); "0.0.0.0/0" and "::/0" allow everyone.
	Senders []netip.Prefix
	// MaxMessage is the longest message kept, in bytes, framing and
	// trailing newline excluded (0: DefaultMaxMessage). Longer ones are
	// dropped whole and counted, never truncated.
	MaxMessage int
	// QueueLines bounds the messages waiting for emit (0:
	// DefaultQueueLines). When it is full, new messages are dropped and
	// counted: reading the sockets never waits for emit.
	QueueLines int
	// MaxConns bounds the open TCP connections (0: DefaultMaxConns);
	// MaxConnsPerSender those from one address (0: MaxConns/4, at least
	// 1). A connection beyond either is closed at once and counted.
	MaxConns          int
	MaxConnsPerSender int
	// IdleTimeout closes a TCP connection that completed no message for
	// that long (0: DefaultIdleTimeout): a silent or trickling peer does
	// not keep its slot forever. TCP keepalive also finds dead peers.
	IdleTimeout time.Duration
	Logger      zerolog.Logger
	// Now stamps Message.Received and the Lines of messages without a
	// timestamp (nil: time.Now).
	Now func() time.Time
}

// Message is one syslog message received from an allowed sender.
type Message struct {
	// Sender is the datagram's or connection's source address (IPv4-mapped
	// addresses unmapped), never anything the message says.
	Sender   netip.AddrPort
	Received time.Time
	// Line is the message as a syslog daemon writes it to a file,
	// "TIMESTAMP HOST TAG[PID]: MSG" (see the package documentation), so
	// the parsers that read log files read it unchanged. It holds no
	// newline and is at most MaxMessage+MaxHeader bytes. It is not reused:
	// emit may keep it.
	Line []byte
	// Priority is the message's PRI (facility*8 + severity), or -1 when it
	// had none.
	Priority int
	// Forgeable: someone other than Sender may have written the message.
	// It came in a UDP datagram, whose source address anyone can forge,
	// or over TCP framed by a newline, which a newline inside an earlier
	// message (attacker text logged raw) forges. A TCP message framed by
	// octet counting comes from a sender that completed a handshake.
	Forgeable bool
}

// Stats are a Receiver's counters. Every message read is counted in
// Received and, once handled, in exactly one of Delivered and the Dropped
// counters; Queued are those still waiting for emit:
//
//	Received = Delivered + DroppedUnlisted + DroppedOversize +
//	           DroppedMalformed + DroppedOverflow + Queued
type Stats struct {
	// Received counts datagrams, TCP frames (complete or cut short by the
	// end of the connection) and connections from unlisted senders.
	Received  int64
	Delivered int64 // handed to emit (counted as emit is called)
	// DroppedUnlisted counts datagrams and TCP connections from addresses
	// outside Senders; nothing of them was read.
	DroppedUnlisted  int64
	DroppedOversize  int64 // longer than MaxMessage
	DroppedMalformed int64 // not syslog, no tag, or cut short
	DroppedOverflow  int64 // the queue was full
	Queued           int64 // waiting for emit now
	ConnsAccepted    int64 // TCP connections from allowed senders kept
	ConnsRefused     int64 // TCP connections over MaxConns or MaxConnsPerSender
	ConnsIdle        int64 // TCP connections closed by IdleTimeout
	Conns            int   // TCP connections open now
	// FramedLF counts TCP messages framed by a newline (RFC 6587
	// non-transparent framing): a newline a sender leaves inside a
	// message ends it there, and what follows is read as a message of its
	// own, header and tag included. Octet counting is safe.
	FramedLF int64
	// LastUnlisted is the last unlisted sender seen: usually a device
	// whose address is missing from Senders.
	LastUnlisted netip.Addr
	// Listening lists the bound addresses, "udp://127.0.0.1:5140"; empty
	// when not listening.
	Listening []string
}

// Receiver receives syslog messages over UDP and TCP. Make one with New,
// then call Run.
type Receiver struct {
	opts    Options
	senders []netip.Prefix
	binds   []bind
	log     zerolog.Logger
	now     func() time.Time
	queue   queue
	every   time.Duration // warnEvery when made

	running atomic.Bool

	received, delivered                     atomic.Int64
	unlisted, oversize, malformed, overflow atomic.Int64
	accepted, refused, idle                 atomic.Int64
	framedLF                                atomic.Int64
	lastUnlisted                            atomic.Pointer[netip.Addr]
	warnArmed                               atomic.Bool
	warnSig                                 chan struct{}

	mu        sync.Mutex
	listeners []listener // bound by Listen, closed when Run returns
	conns     map[*tcpConn]struct{}
	perSender map[netip.Addr]int
	lfWarned  map[netip.Addr]struct{} // senders warned of newline framing, for the receiver's life
	closing   bool
}

// bind is a validated Listen entry.
type bind struct {
	url     string
	network string // udp, udp4, udp6, tcp, tcp4, tcp6
	addr    string // host:port for net.Listen
}

type listener struct {
	bind bind
	pc   net.PacketConn // UDP
	ln   net.Listener   // TCP
}

func (l listener) addr() net.Addr {
	if l.pc != nil {
		return l.pc.LocalAddr()
	}
	return l.ln.Addr()
}

func (l listener) close() error {
	if l.pc != nil {
		return l.pc.Close()
	}
	return l.ln.Close()
}

// New validates opts and returns a Receiver. It does not listen yet.
func New(opts Options) (*Receiver, error) {
	var errs []error
	if len(opts.Listen) == 0 {
		errs = append(errs, errors.New("listen: no address"))
	}
	var binds []bind
	seen := map[string]bool{}
	for i, s := range opts.Listen {
		b, err := parseListen(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("listen[%d]: %w", i, err))
			continue
		}
		if seen[b.network+" "+b.addr] && !strings.HasSuffix(b.addr, ":0") {
			errs = append(errs, fmt.Errorf("listen[%d]: %q listed twice", i, s))
			continue
		}
		seen[b.network+" "+b.addr] = true
		binds = append(binds, b)
	}
	if len(opts.Senders) == 0 {
		errs = append(errs, fmt.Errorf("senders: %w (list the devices' addresses; \"0.0.0.0/0\" and \"::/0\" allow everyone)", ErrNoSenders))
	}
	senders := make([]netip.Prefix, 0, len(opts.Senders))
	for i, p := range opts.Senders {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("senders[%d]: invalid prefix", i))
			continue
		}
		senders = append(senders, normPrefix(p))
	}
	switch m := opts.MaxMessage; {
	case m == 0:
		opts.MaxMessage = DefaultMaxMessage
	case m < MinMaxMessage || m > MaxMaxMessage:
		errs = append(errs, fmt.Errorf("max message: %d out of range [%d, %d]", m, MinMaxMessage, MaxMaxMessage))
	}
	errs = nonNegative(errs, "queue lines", &opts.QueueLines, DefaultQueueLines)
	errs = nonNegative(errs, "max conns", &opts.MaxConns, DefaultMaxConns)
	errs = nonNegative(errs, "max conns per sender", &opts.MaxConnsPerSender, max(1, opts.MaxConns/4))
	errs = nonNegative(errs, "idle timeout", &opts.IdleTimeout, DefaultIdleTimeout)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Receiver{
		opts:     opts,
		senders:  senders,
		binds:    binds,
		log:      opts.Logger,
		now:      opts.Now,
		warnSig:  make(chan struct{}, 1),
		every:    warnEvery,
		lfWarned: map[netip.Addr]struct{}{},
	}
	r.queue.init(opts.QueueLines)
	r.warnArmed.Store(true)
	return r, nil
}

// nonNegative sets *v to def when it is 0 (unset) and adds an error to
// errs when it is negative.
func nonNegative[T int | time.Duration](errs []error, name string, v *T, def T) []error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		errs = append(errs, fmt.Errorf("%s: %v is negative", name, *v))
	}
	return errs
}

// parseListen reads "udp://HOST:PORT" or "tcp://HOST:PORT".
func parseListen(s string) (bind, error) {
	scheme, hostport, ok := strings.Cut(s, "://")
	if !ok {
		return bind{}, fmt.Errorf("%q: want udp://HOST:PORT or tcp://HOST:PORT", s)
	}
	switch scheme {
	case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6":
	default:
		return bind{}, fmt.Errorf("%q: unknown protocol %q (want udp or tcp)", s, scheme)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return bind{}, fmt.Errorf("%q: %w", s, err)
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return bind{}, fmt.Errorf("%q: host %q is not an IP address", s, host)
		}
		if scheme[len(scheme)-1] == '4' && !a.Unmap().Is4() || scheme[len(scheme)-1] == '6' && !a.Is6() {
			return bind{}, fmt.Errorf("%q: address %s does not match %s", s, a, scheme)
		}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(p, 10) != port {
		return bind{}, fmt.Errorf("%q: bad port %q", s, port)
	}
	return bind{url: s, network: scheme, addr: hostport}, nil
}

// normPrefix masks p and writes an IPv4-mapped IPv6 prefix as IPv4:
// senders are checked unmapped.
func normPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// allowed reports whether a (unmapped, without zone) may send.
func (r *Receiver) allowed(a netip.Addr) bool {
	for _, p := range r.senders {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sender normalizes a packet source for the sender check and Message.
func sender(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// Listen binds every listener. Run calls it when it was not called
// before; call it first to learn the addresses bound to port 0 (Addrs)
// before messages flow. On error, nothing stays bound. Listeners bound
// here are closed when Run returns, or by Close.
func (r *Receiver) Listen(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners != nil {
		return nil
	}
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: time.Minute, Interval: 15 * time.Second, Count: 4,
	}}
	var ls []listener
	for _, b := range r.binds {
		l := listener{bind: b}
		var err error
		if b.network[0] == 'u' {
			l.pc, err = lc.ListenPacket(ctx, b.network, b.addr)
			if err == nil {
				// Room for bursts while the reader is busy; the kernel
				// caps it at net.core.rmem_max.
				_ = l.pc.(*net.UDPConn).SetReadBuffer(4 << 20)
			}
		} else {
			l.ln, err = lc.Listen(ctx, b.network, b.addr)
		}
		if err != nil {
			for _, l := range ls {
				l.close()
			}
			return fmt.Errorf("listen %s: %w", b.url, err)
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		r.log.Info().Str("listen", l.bind.url).Str("addr", l.bind.network[:3]+"://"+l.addr().String()).Msg("syslog listener started")
	}
	r.listeners = ls
	r.closing = false
	return nil
}

// Addrs returns the bound addresses, in the order of Options.Listen, or
// nil when not listening.
func (r *Receiver) Addrs() []net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var as []net.Addr
	for _, l := range r.listeners {
		as = append(as, l.addr())
	}
	return as
}

// Close closes the listeners bound by Listen when Run is not running; Run
// closes them itself when it returns.
func (r *Receiver) Close() error {
	if r.running.Load() {
		return errors.New("syslog receiver: close while running")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, l := range r.listeners {
		errs = append(errs, l.close())
	}
	r.listeners = nil
	return errors.Join(errs...)
}

// Stats returns the counters. It is safe for concurrent use.
func (r *Receiver) Stats() Stats {
	s := Stats{
		Received:         r.received.Load(),
		Delivered:        r.delivered.Load(),
		DroppedUnlisted:  r.unlisted.Load(),
		DroppedOversize:  r.oversize.Load(),
		DroppedMalformed: r.malformed.Load(),
		DroppedOverflow:  r.overflow.Load(),
		Queued:           int64(r.queue.len()),
		ConnsAccepted:    r.accepted.Load(),
		ConnsRefused:     r.refused.Load(),
		ConnsIdle:        r.idle.Load(),
		FramedLF:         r.framedLF.Load(),
	}
	if a := r.lastUnlisted.Load(); a != nil {
		s.LastUnlisted = *a
	}
	r.mu.Lock()
	s.Conns = len(r.conns)
	for _, l := range r.listeners {
		s.Listening = append(s.Listening, l.bind.network[:3]+"://"+l.addr().String())
	}
	r.mu.Unlock()
	return s
}

// Run listens (see Listen) and hands the messages received to emit, in
// batches, in the order they arrived on each socket and connection. emit
// runs on one goroutine, never concurrently; the socket readers never wait
// for it: while it is busy, messages queue up to QueueLines, and further
// ones are dropped and counted. The batch slice is reused after emit
// returns; the Lines are not.
//
// Run returns when ctx is done (with ctx.Err()), when emit returns an
// error (with it), or when a listener fails for good (with that error). It
// closes the listeners and connections and waits for a running emit to
// return first. Messages still queued stay queued (Stats.Queued) for a
// later Run.
func (r *Receiver) Run(ctx context.Context, emit func([]Message) error) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("syslog receiver: already running")
	}
	defer r.running.Store(false)
	if err := r.Listen(ctx); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	r.mu.Lock()
	ls := r.listeners
	r.conns = map[*tcpConn]struct{}{}
	r.perSender = map[netip.Addr]int{}
	r.mu.Unlock()

	if r.queue.len() > 0 { // left by an earlier Run
		r.queue.signal()
	}
	shutDone := make(chan struct{})
	go func() { defer close(shutDone); <-ctx.Done(); r.shutdown() }()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			var err error
			if l.pc != nil {
				err = r.serveUDP(l)
			} else {
				err = r.serveTCP(ctx, l, &wg)
			}
			if err != nil {
				cancel(err)
			}
		})
	}
	warnDone := make(chan struct{})
	go func() { defer close(warnDone); r.warnLoop(ctx) }()

	err := r.deliver(ctx, emit)
	cancel(err)
	<-shutDone
	wg.Wait()
	<-warnDone

	r.mu.Lock()
	r.listeners, r.conns, r.perSender = nil, nil, nil
	r.mu.Unlock()
	if err == nil {
		if err = parent.Err(); err == nil {
			err = context.Cause(ctx) // a listener's error
		}
	}
	return err
}

// shutdown closes the listeners and connections: every reader returns.
func (r *Receiver) shutdown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return
	}
	r.closing = true
	for _, l := range r.listeners {
		l.close()
	}
	for c := range r.conns {
		c.conn.Close()
	}
}

// deliver hands queued messages to emit until ctx is done or emit fails.
func (r *Receiver) deliver(ctx context.Context, emit func([]Message) error) error {
	var spare []Message
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.queue.ready:
		}
		batch := r.queue.take(spare, &r.delivered)
		if len(batch) == 0 {
			continue
		}
		if err := emit(batch); err != nil {
			return err
		}
		clear(batch) // let the Lines go
		spare = batch[:0]
	}
}

// handle parses a message read from an allowed sender and queues it
// (forgeable: see Message.Forgeable).
func (r *Receiver) handle(m []byte, from netip.AddrPort, forgeable bool, now time.Time) {
	if len(m) > r.opts.MaxMessage {
		r.dropped(&r.oversize)
		return
	}
	if r.queue.full() { // before the work of parsing
		r.dropped(&r.overflow)
		return
	}
	line, pri, err := parse(m, from.Addr(), now)
	if err != nil {
		r.dropped(&r.malformed)
		if e := r.log.Debug(); e.Enabled() {
			e.Err(err).Str("sender", from.String()).Int("bytes", len(m)).Msg("malformed syslog message dropped")
		}
		return
	}
	if !r.queue.push(Message{Sender: from, Received: now, Line: line, Priority: pri, Forgeable: forgeable}) {
		r.dropped(&r.overflow)
	}
}

// dropped counts a dropped message and wakes the warning logger when it
// may log.
func (r *Receiver) dropped(c *atomic.Int64) {
	c.Add(1)
	if r.warnArmed.Load() && r.warnArmed.CompareAndSwap(true, false) {
		select {
		case r.warnSig <- struct{}{}:
		default:
		}
	}
}

func (r *Receiver) droppedUnlisted(a netip.Addr) {
	if p := r.lastUnlisted.Load(); p == nil || *p != a {
		r.lastUnlisted.Store(&a)
	}
	r.dropped(&r.unlisted)
}

// warnLoop logs drops: at the first, then at most once per warnEvery, with
// the counts since the last warning. Never once per message.
func (r *Receiver) warnLoop(ctx context.Context) {
	var last Stats
	lastAt := time.Now()
	t := time.NewTimer(r.every)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.warnSig:
		}
		s := r.Stats()
		ev := r.log.Warn().
			Int64("unlisted", s.DroppedUnlisted-last.DroppedUnlisted).
			Int64("oversize", s.DroppedOversize-last.DroppedOversize).
			Int64("malformed", s.DroppedMalformed-last.DroppedMalformed).
			Int64("overflow", s.DroppedOverflow-last.DroppedOverflow).
			Int64("conns_refused", s.ConnsRefused-last.ConnsRefused)
		if s.DroppedUnlisted > last.DroppedUnlisted && s.LastUnlisted.IsValid() {
			ev = ev.Stringer("last_unlisted", s.LastUnlisted)
		}
		now := time.Now()
		ev.Float64("since_seconds", now.Sub(lastAt).Round(time.Millisecond).Seconds()).Msg("syslog messages dropped")
		last, lastAt = s, now
		t.Reset(r.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.warnArmed.Store(true)
		// Drops during the wait are logged now.
		if s := r.Stats(); s.DroppedUnlisted+s.DroppedOversize+s.DroppedMalformed+s.DroppedOverflow+s.ConnsRefused >
			last.DroppedUnlisted+last.DroppedOversize+last.DroppedMalformed+last.DroppedOverflow+last.ConnsRefused {
			if r.warnArmed.CompareAndSwap(true, false) {
				select {
				case r.warnSig <- struct{}{}:
				default:
				}
			}
		}
	}
}

// queue holds the messages waiting for emit, at most max.
type queue struct {
	mu    sync.Mutex
	msgs  []Message
	n     atomic.Int64 // len(msgs), readable without mu
	max   int
	ready chan struct{} // signalled when msgs becomes non-empty
}

// full reports whether push would fail now.
func (q *queue) full() bool { return q.n.Load() >= int64(q.max) }

func (q *queue) init(max int) {
	q.max = max
	q.ready = make(chan struct{}, 1)
}

// push queues m, or reports false when the queue is full.
func (q *queue) push(m Message) bool {
	q.mu.Lock()
	if len(q.msgs) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.msgs = append(q.msgs, m)
	q.n.Store(int64(len(q.msgs)))
	first := len(q.msgs) == 1
	q.mu.Unlock()
	if first {
		q.signal()
	}
	return true
}

// signal wakes the deliverer.
func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the queued messages, counted in delivered at once, and
// leaves spare (emptied) in their place.
func (q *queue) take(spare []Message, delivered *atomic.Int64) []Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.msgs
	q.msgs = spare[:0]
	q.n.Store(0)
	delivered.Add(int64(len(b)))
	return b
}

func (q *queue) len() int { return int(q.n.Load()) }
