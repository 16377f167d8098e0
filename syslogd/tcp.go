package syslogd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// maxLenDigits is the most digits an RFC 6587 MSG-LEN may have here: more
// than a billion bytes is not a syslog message but a stream out of step.
const maxLenDigits = 9

// maxLFWarned bounds the senders remembered as warned of newline framing:
// past it, such senders are counted, not logged.
const maxLFWarned = 1024

// tcpConn is an accepted connection from an allowed sender.
type tcpConn struct {
	conn   net.Conn
	from   netip.AddrPort
	lfSeen bool // a message framed by a newline came (read by its reader only)
}

// serveTCP accepts connections until the listener is closed.
func (r *Receiver) serveTCP(ctx context.Context, l listener, wg *sync.WaitGroup) error {
	var retry retrier
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			if !retry.wait(r, l.bind.url, err) {
				return fmt.Errorf("accept %s: %w", l.bind.url, err)
			}
			continue
		}
		retry.ok()
		ta, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok {
			c.Close()
			continue
		}
		from := sender(ta.AddrPort())
		if !r.allowed(from.Addr()) {
			// Nothing is read: closed with a reset, which also spares
			// this side the TIME_WAIT.
			r.received.Add(1)
			r.droppedUnlisted(from.Addr())
			abort(c)
			continue
		}
		tc := &tcpConn{conn: c, from: from}
		if !r.register(tc) {
			abort(c)
			continue
		}
		wg.Go(func() {
			defer r.unregister(tc)
			r.readConn(tc)
		})
	}
}

// abort closes c at once with a reset.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// register counts c against the limits, or reports false (counted) when it
// is over one or the receiver is shutting down.
func (r *Receiver) register(c *tcpConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	a := c.from.Addr()
	if len(r.conns) >= r.opts.MaxConns || r.perSender[a] >= r.opts.MaxConnsPerSender {
		r.dropped(&r.refused)
		return false
	}
	r.conns[c] = struct{}{}
	r.perSender[a]++
	r.accepted.Add(1)
	r.log.Debug().Str("sender", c.from.String()).Int("conns", len(r.conns)).Msg("syslog connection accepted")
	return true
}

func (r *Receiver) unregister(c *tcpConn) {
	c.conn.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	a := c.from.Addr()
	if r.perSender[a]--; r.perSender[a] <= 0 {
		delete(r.perSender, a)
	}
}

// readConn reads the frames of a connection until it ends, fails or stays
// idle too long.
func (r *Receiver) readConn(c *tcpConn) {
	idle := r.opts.IdleTimeout
	// The deadline moves only when a frame completes, so a peer that
	// trickles bytes without ever finishing a message is cut off too. It
	// is set again only when it moved by a sixteenth of the timeout.
	deadline := time.Now().Add(idle)
	c.conn.SetReadDeadline(deadline)
	f := newFramer(c.conn, r.opts.MaxMessage)
	for {
		frame, kind, err := f.next()
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				r.idle.Add(1)
				r.log.Debug().Str("sender", c.from.String()).Msg("idle syslog connection closed")
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				r.log.Debug().Err(err).Str("sender", c.from.String()).Msg("syslog connection ended")
			}
			return
		}
		if now := time.Now(); now.Add(idle).Sub(deadline) > idle/16 {
			deadline = now.Add(idle)
			c.conn.SetReadDeadline(deadline)
		}
		r.received.Add(1)
		switch kind {
		case frameOK:
			if f.lf {
				r.framedByLF(c)
			}
			r.handle(trimEnd(frame), c.from, f.lf, r.now())
		case frameOversize:
			r.dropped(&r.oversize)
		default:
			r.dropped(&r.malformed)
			if e := r.log.Debug(); e.Enabled() {
				e.Str("sender", c.from.String()).Str("frame", kind.String()).Msg("malformed syslog frame dropped")
			}
		}
	}
}

// framedByLF counts a message framed by a newline and warns, once per
// sender, that a newline inside a message would forge another: every
// parser reads a message by the tag at the start of its line, and the
// message after such a newline brings its own.
func (r *Receiver) framedByLF(c *tcpConn) {
	r.framedLF.Add(1)
	if c.lfSeen {
		return
	}
	c.lfSeen = true
	a := c.from.Addr()
	r.mu.Lock()
	_, warned := r.lfWarned[a]
	warn := !warned && len(r.lfWarned) < maxLFWarned
	if warn {
		r.lfWarned[a] = struct{}{}
	}
	r.mu.Unlock()
	if warn {
		r.log.Warn().Stringer("sender", a).
			Msg("syslog sender frames messages over TCP by newlines: a newline inside a message would end it and forge another, with any tag; " +
				"make it count octets (rsyslog omfwd: TCP_Framing=\"octet-counted\")")
	}
}

// frameKind says what framer.next found.
type frameKind uint8

const (
	frameOK       frameKind = iota
	frameOversize           // longer than the maximum: skipped
	frameZero               // octet counting with MSG-LEN 0
	framePartial            // cut short by the end of the connection
)

func (k frameKind) String() string {
	switch k {
	case frameOK:
		return "ok"
	case frameOversize:
		return "oversize"
	case frameZero:
		return "zero length"
	case framePartial:
		return "cut short"
	}
	return "?"
}

// framer splits a TCP stream into syslog messages (RFC 6587). Each message
// is framed by octet counting ("MSG-LEN SP MSG") when it starts with a
// digit followed by at most 8 more and a space, else by its trailing LF
// (non-transparent framing). So a non-transparent message starting with a
// digit, such as an RFC 3339 timestamp, is still read whole.
type framer struct {
	rd     io.Reader
	buf    []byte
	r, w   int
	max    int
	skip   int  // bytes still to discard of an oversize counted frame
	skipLF bool // discarding an oversize frame up to its LF
	lf     bool // the last frame was framed by its LF, not counted
	err    error
}

func newFramer(rd io.Reader, max int) *framer {
	// The largest frame with its MSG-LEN, SP and a CR before its LF.
	return &framer{rd: rd, max: max, buf: make([]byte, max+maxLenDigits+2)}
}

// next returns the next frame (valid until the following call) and its
// kind. A frame cut short by the end of the stream is reported as
// framePartial, once, before the error.
func (f *framer) next() ([]byte, frameKind, error) {
	for {
		if f.skip > 0 {
			n := min(f.skip, f.w-f.r)
			f.r += n
			f.skip -= n
		}
		if f.skipLF {
			if i := bytes.IndexByte(f.buf[f.r:f.w], '\n'); i >= 0 {
				f.r += i + 1
				f.skipLF = false
			} else {
				f.r = f.w
			}
		}
		if f.skip == 0 && !f.skipLF && f.r < f.w {
			if frame, kind, ok := f.frame(); ok {
				return frame, kind, nil
			}
		}
		if f.err != nil {
			if f.r < f.w && f.skip == 0 && !f.skipLF && len(trimEnd(f.buf[f.r:f.w])) > 0 {
				f.r = f.w
				return nil, framePartial, nil
			}
			f.r = f.w
			return nil, 0, f.err
		}
		f.fill()
	}
}

// frame takes one frame from the buffer, or reports false when it needs
// more data.
func (f *framer) frame() ([]byte, frameKind, bool) {
	for f.r < f.w {
		b := f.buf[f.r:f.w]
		if isDigit(b[0]) {
			n, i := 0, 0
			for i < len(b) && i <= maxLenDigits && isDigit(b[i]) {
				n = n*10 + int(b[i]-'0')
				i++
			}
			switch {
			case i == len(b) && i <= maxLenDigits:
				return nil, 0, false // the rest of MSG-LEN is yet to come
			case i <= maxLenDigits && b[i] == ' ':
				switch {
				case n == 0:
					f.r += i + 1
					return nil, frameZero, true
				case n > f.max:
					f.r += i + 1
					f.skip = n
					return nil, frameOversize, true
				case len(b) < i+1+n:
					return nil, 0, false
				}
				f.r += i + 1 + n
				f.lf = false
				return b[i+1 : i+1+n], frameOK, true
			}
			// Not a MSG-LEN: a non-transparent frame.
		}
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			if len(b) > f.max+1 {
				f.r = f.w
				f.skipLF = true
				return nil, frameOversize, true
			}
			return nil, 0, false
		}
		f.r += j + 1
		switch n := len(trimEnd(b[:j])); {
		case n == 0:
			continue // an empty line between frames is not a message
		case n > f.max:
			return nil, frameOversize, true
		}
		f.lf = true
		return b[:j], frameOK, true
	}
	return nil, 0, false
}

// fill reads more data, first moving what is left to the buffer's start.
func (f *framer) fill() {
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	if f.w == len(f.buf) { // cannot happen: frame always makes room
		f.err = errors.New("frame buffer full")
		return
	}
	n, err := f.rd.Read(f.buf[f.w:])
	f.w += n
	if err != nil {
		f.err = err
	}
}
