package syslogd

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// maxDatagram is the largest UDP payload: a buffer this big is never
// truncated, so a long datagram is seen as long, not cut.
const maxDatagram = 65536

// serveUDP reads datagrams until the socket is closed: one message each.
func (r *Receiver) serveUDP(l listener) error {
	pc := l.pc.(*net.UDPConn)
	buf := make([]byte, maxDatagram)
	var retry retrier
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !retry.wait(r, l.bind.url, err) {
				return fmt.Errorf("read %s: %w", l.bind.url, err)
			}
			continue
		}
		retry.ok()
		r.received.Add(1)
		from = sender(from)
		if !r.allowed(from.Addr()) {
			r.droppedUnlisted(from.Addr())
			continue
		}
		r.handle(trimEnd(buf[:n]), from, true, r.now())
	}
}

// retrier paces retries of a failing read or accept (out of descriptors,
// out of buffers): it logs each new error once and waits longer each time.
type retrier struct {
	delay time.Duration
	last  string
	fails int
}

// maxFails is how many errors in a row end a listener.
const maxFails = 100

// wait logs err if new, sleeps, and reports whether to try again.
func (t *retrier) wait(r *Receiver, url string, err error) bool {
	t.fails++
	if t.fails > maxFails {
		return false
	}
	if msg := err.Error(); msg != t.last {
		r.log.Error().Err(err).Str("listen", url).Msg("syslog listener error; retrying")
		t.last = msg
	}
	t.delay = min(max(2*t.delay, 5*time.Millisecond), time.Second)
	time.Sleep(t.delay)
	return true
}

func (t *retrier) ok() {
	if t.fails > 0 {
		*t = retrier{}
	}
}

// trimEnd removes the trailing newlines, carriage returns and NULs senders
// end messages with.
func trimEnd(m []byte) []byte {
	for len(m) > 0 {
		switch m[len(m)-1] {
		case '\n', '\r', 0:
			m = m[:len(m)-1]
			continue
		}
		break
	}
	return m
}
