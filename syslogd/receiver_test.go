package syslogd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/syslogd"
)

// received collects what a Receiver emits.
type received struct {
	mu   sync.Mutex
	msgs []syslogd.Message
	more chan struct{}
}

func (c *received) emit(ms []syslogd.Message) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, ms...) // Lines are not reused
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the first n messages, failing after a few seconds.
func (c *received) wait(t *testing.T, n int) []syslogd.Message {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			ms := append([]syslogd.Message(nil), c.msgs[:n]...)
			c.mu.Unlock()
			return ms
		}
		got := len(c.msgs)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("received %d messages; want %d", got, n)
		}
	}
}

func (c *received) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ls []string
	for _, m := range c.msgs {
		ls = append(ls, string(m.Line))
	}
	return ls
}

var fixedNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// start runs a Receiver with opts (defaults: listen on UDP and TCP on
// 127.0.0.1, accept 127.0.0.1) and returns it, its UDP and TCP addresses
// and what it receives. It is stopped at the end of the test.
func start(t *testing.T, opts syslogd.Options) (*syslogd.Receiver, *received) {
	t.Helper()
	if opts.Listen == nil {
		opts.Listen = []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"}
	}
	if opts.Senders == nil {
		opts.Senders = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	r, err := syslogd.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &received{more: make(chan struct{}, 1)}
	runWith(t, r, c.emit)
	return r, c
}

// runWith runs r with emit until the end of the test, and checks that Run
// then returns context.Canceled.
func runWith(t *testing.T, r *syslogd.Receiver, emit func([]syslogd.Message) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, emit) }()
	t.Cleanup(func() {
		cancel()
		waitCanceled(t, done)
	})
}

// waitCanceled waits for what Run returned on done after its context was
// canceled, and checks that it is context.Canceled. It reports false when
// Run did not return.
func waitCanceled(t *testing.T, done <-chan error) bool {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v; want context.Canceled", err)
		}
		return true
	case <-time.After(5 * time.Second):
		t.Errorf("Run did not return after cancel")
		return false
	}
}

// addr returns r's first address of network "udp" or "tcp".
func addr(t *testing.T, r *syslogd.Receiver, network string) string {
	t.Helper()
	for _, a := range r.Addrs() {
		if a.Network() == network {
			return a.String()
		}
	}
	t.Fatalf("no %s listener", network)
	return ""
}

// dial connects to address from the local IP from ("" for any).
func dial(t *testing.T, network, address, from string) net.Conn {
	t.Helper()
	var d net.Dialer
	if from != "" {
		ip := net.ParseIP(from)
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: ip}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	c, err := d.Dial(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitStats waits until cond holds for r's stats.
func waitStats(t *testing.T, r *syslogd.Receiver, what string, cond func(syslogd.Stats) bool) syslogd.Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := r.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkBalance asserts that every message received is accounted for.
func checkBalance(t *testing.T, s syslogd.Stats) {
	t.Helper()
	sum := s.Delivered + s.DroppedUnlisted + s.DroppedOversize + s.DroppedMalformed + s.DroppedOverflow + s.Queued
	if s.Received != sum {
		t.Errorf("received %d; delivered and dropped and queued %d: %+v", s.Received, sum, s)
	}
}

// refused asserts that the receiver closes a connection to address from
// the local IP from at once. The reset may come before the dial returns.
func refused(t *testing.T, address, from string) {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", address)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v; want success or a reset", err)
		}
		return
	}
	defer c.Close()
	c.Write([]byte("<13>Nov 26 10:00:00 pbx asterisk: x\n"))
	closedByPeer(t, c)
}

// closedByPeer asserts that the server closes c within a few seconds.
func closedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v; want the connection closed by the receiver", err)
	}
}

func TestReceiver_UDP(t *testing.T) {
	r, c := start(t, syslogd.Options{})
	u := dial(t, "udp", addr(t, r, "udp"), "127.0.0.1")
	send(t, u,
		"<13>Nov 26 10:00:00 pbx asterisk[812]: rfc3164\n",
		"<165>1 2026-11-26T10:00:00.123+01:00 pbx asterisk 812 - [a@1 x=\"\\]\"] \xef\xbb\xbfrfc5424\x00",
		"<29>Mar  2 09:50:01 s50 asterisk[812]: "+asteriskBody,
		"<29>1 2026-03-02T09:50:01.250+01:00 s50 asterisk 812 - - "+asteriskBody+"\r\n",
	)
	ms := c.wait(t, 4)
	want := []string{
		"Nov 26 10:00:00 pbx asterisk[812]: rfc3164",
		"2026-11-26T10:00:00.123+01:00 pbx asterisk[812]: rfc5424",
		"Mar  2 09:50:01 s50 asterisk[812]: " + asteriskBody,
		"2026-03-02T09:50:01.250+01:00 s50 asterisk[812]: " + asteriskBody,
	}
	from := netip.MustParseAddrPort(u.LocalAddr().String())
	for i, m := range ms {
		if string(m.Line) != want[i] {
			t.Errorf("line %d: got %q; want %q", i, m.Line, want[i])
		}
		if m.Sender != from {
			t.Errorf("sender: got %v; want %v", m.Sender, from)
		}
		if !m.Received.Equal(fixedNow) {
			t.Errorf("received: got %v; want %v", m.Received, fixedNow)
		}
	}
	if ms[0].Priority != 13 || ms[1].Priority != 165 {
		t.Errorf("priorities: got %d, %d; want 13, 165", ms[0].Priority, ms[1].Priority)
	}
	checkAsterisk(t, ms[2].Line)
	checkAsterisk(t, ms[3].Line)
	s := r.Stats()
	if s.Received != 4 || s.Delivered != 4 {
		t.Errorf("stats: %+v; want 4 received and delivered", s)
	}
	checkBalance(t, s)
}

func TestReceiver_TCP(t *testing.T) {
	r, c := start(t, syslogd.Options{})
	m1 := "<13>Nov 26 10:00:00 pbx asterisk[812]: one"
	m2 := "<165>1 2026-11-26T10:00:00Z pbx asterisk 812 - - two"
	m3 := "<29>1 2026-03-02T09:50:01.250+01:00 s50 asterisk 812 - - " + asteriskBody
	m4 := "2026-11-26T10:00:00Z pbx asterisk: four" // LF-framed, starts with digits
	octet := func(m string) string { return itoa(len(m)) + " " + m }

	t.Run("octet counting", func(t *testing.T) {
		conn := dial(t, "tcp", addr(t, r, "tcp"), "")
		// Several frames in one segment.
		send(t, conn, octet(m1)+octet(m2)+octet(m3))
		// One frame split across segments, and its MSG-LEN too.
		f := octet(m1)
		send(t, conn, f[:1])
		time.Sleep(20 * time.Millisecond)
		send(t, conn, f[1:10])
		time.Sleep(20 * time.Millisecond)
		send(t, conn, f[10:])
		ms := c.wait(t, 4)
		checkLines(t, ms, "Nov 26 10:00:00 pbx asterisk[812]: one", "2026-11-26T10:00:00Z pbx asterisk[812]: two",
			"2026-03-02T09:50:01.250+01:00 s50 asterisk[812]: "+asteriskBody, "Nov 26 10:00:00 pbx asterisk[812]: one")
		checkAsterisk(t, ms[2].Line)
	})
	c.reset()
	t.Run("LF", func(t *testing.T) {
		conn := dial(t, "tcp", addr(t, r, "tcp"), "")
		send(t, conn, m1+"\n"+m2+"\r\n\n"+m4+"\n"+m3[:20])
		time.Sleep(20 * time.Millisecond)
		send(t, conn, m3[20:]+"\n")
		ms := c.wait(t, 4)
		checkLines(t, ms, "Nov 26 10:00:00 pbx asterisk[812]: one", "2026-11-26T10:00:00Z pbx asterisk[812]: two",
			"2026-11-26T10:00:00Z pbx asterisk: four", "2026-03-02T09:50:01.250+01:00 s50 asterisk[812]: "+asteriskBody)
	})
	c.reset()
	t.Run("mixed", func(t *testing.T) {
		conn := dial(t, "tcp", addr(t, r, "tcp"), "")
		send(t, conn, octet(m1)+m2+"\n"+octet(m4))
		checkLines(t, c.wait(t, 3), "Nov 26 10:00:00 pbx asterisk[812]: one", "2026-11-26T10:00:00Z pbx asterisk[812]: two",
			"2026-11-26T10:00:00Z pbx asterisk: four")
	})
	c.reset()
	for _, tail := range []string{octet(m1)[:30], m1[:30], "40"} {
		t.Run("partial frame at close", func(t *testing.T) {
			before := r.Stats()
			conn := dial(t, "tcp", addr(t, r, "tcp"), "")
			send(t, conn, octet(m2)+tail)
			conn.Close()
			c.wait(t, 1)
			s := waitStats(t, r, "partial frame", func(s syslogd.Stats) bool {
				return s.DroppedMalformed == before.DroppedMalformed+1 && s.Conns == 0
			})
			if s.Delivered != before.Delivered+1 {
				t.Errorf("delivered %d; want %d", s.Delivered, before.Delivered+1)
			}
			c.reset()
		})
	}
	checkBalance(t, r.Stats())
}

func (c *received) reset() {
	c.mu.Lock()
	c.msgs = nil
	c.mu.Unlock()
}

func checkLines(t *testing.T, ms []syslogd.Message, want ...string) {
	t.Helper()
	for i, m := range ms {
		if i >= len(want) || string(m.Line) != want[i] {
			var w string
			if i < len(want) {
				w = want[i]
			}
			t.Errorf("line %d: got %q; want %q", i, m.Line, w)
		}
	}
	if len(ms) != len(want) {
		t.Errorf("got %d lines; want %d", len(ms), len(want))
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

func TestReceiver_Oversize(t *testing.T) {
	const max = 1024
	r, c := start(t, syslogd.Options{MaxMessage: max})
	hdr := "<13>Nov 26 10:00:00 pbx asterisk: "
	fits := hdr + strings.Repeat("a", max-len(hdr))
	long := hdr + strings.Repeat("b", max+1-len(hdr))
	short := hdr + "short"

	t.Run("UDP", func(t *testing.T) {
		u := dial(t, "udp", addr(t, r, "udp"), "")
		send(t, u, long, fits+"\n", long+strings.Repeat("c", 60000), short)
		checkLines(t, c.wait(t, 2), "Nov 26 10:00:00 pbx asterisk: "+fits[len(hdr):], "Nov 26 10:00:00 pbx asterisk: short")
		waitStats(t, r, "oversize", func(s syslogd.Stats) bool { return s.DroppedOversize == 2 })
	})
	c.reset()
	t.Run("octet counting", func(t *testing.T) {
		conn := dial(t, "tcp", addr(t, r, "tcp"), "")
		huge := strings.Repeat("x", 100_000)
		send(t, conn, itoa(len(long))+" "+long+itoa(len(short))+" "+short, itoa(len(huge))+" "+huge, itoa(len(fits))+" "+fits)
		checkLines(t, c.wait(t, 2), "Nov 26 10:00:00 pbx asterisk: short", "Nov 26 10:00:00 pbx asterisk: "+fits[len(hdr):])
		waitStats(t, r, "oversize", func(s syslogd.Stats) bool { return s.DroppedOversize == 4 })
	})
	c.reset()
	t.Run("LF", func(t *testing.T) {
		conn := dial(t, "tcp", addr(t, r, "tcp"), "")
		send(t, conn, long+"\n"+short+"\n", strings.Repeat("y", 100_000)+"\n", fits+"\r\n")
		checkLines(t, c.wait(t, 2), "Nov 26 10:00:00 pbx asterisk: short", "Nov 26 10:00:00 pbx asterisk: "+fits[len(hdr):])
		// The connection is kept: the one of the subtest before closes.
		waitStats(t, r, "oversize", func(s syslogd.Stats) bool { return s.DroppedOversize == 6 && s.Conns == 1 })
	})
	checkBalance(t, r.Stats())
}

func TestReceiver_Malformed(t *testing.T) {
	r, c := start(t, syslogd.Options{})
	u := dial(t, "udp", addr(t, r, "udp"), "")
	send(t, u, "hello", "", "<13>Nov 26 10:00:00 pbx no tag here", "<165>1 - pbx - - - - no app", "<13>Nov 26 10:00:00 pbx asterisk: ok")
	checkLines(t, c.wait(t, 1), "Nov 26 10:00:00 pbx asterisk: ok")
	s := waitStats(t, r, "malformed", func(s syslogd.Stats) bool { return s.DroppedMalformed == 4 })
	checkBalance(t, s)
}

// TestReceiver_ControlChars checks that newlines and NULs inside a message
// never produce a second line.
func TestReceiver_ControlChars(t *testing.T) {
	r, c := start(t, syslogd.Options{})
	forged := "Nov 26 10:00:00 pbx asterisk[1]: NOTICE[1]: chan_sip.c:1 in f: Registration from '' failed for '192.0.2.99:5060' - Wrong password"
	m := "<13>Nov 26 10:00:00 pbx asterisk[812]: a\n" + forged + "\x00\r\nb"
	u := dial(t, "udp", addr(t, r, "udp"), "")
	send(t, u, m)
	conn := dial(t, "tcp", addr(t, r, "tcp"), "")
	send(t, conn, itoa(len(m))+" "+m)
	ms := c.wait(t, 2)
	want := "Nov 26 10:00:00 pbx asterisk[812]: a " + forged + "   b"
	for _, m := range ms {
		if string(m.Line) != want {
			t.Errorf("got %q; want %q", m.Line, want)
		}
		if bytes.ContainsAny(m.Line, "\n\r\x00") {
			t.Errorf("line %q holds a control character", m.Line)
		}
	}
	s := waitStats(t, r, "two messages", func(s syslogd.Stats) bool { return s.Delivered == 2 })
	if s.Received != 2 {
		t.Errorf("received %d; want 2", s.Received)
	}
}

func TestReceiver_Unlisted(t *testing.T) {
	r, c := start(t, syslogd.Options{Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	msg := "<13>Nov 26 10:00:00 pbx asterisk: x"

	// From 127.0.0.1: dropped before parsing; the connection reset.
	u := dial(t, "udp", addr(t, r, "udp"), "127.0.0.1")
	send(t, u, msg, msg, "garbage")
	refused(t, addr(t, r, "tcp"), "127.0.0.1")
	s := waitStats(t, r, "unlisted", func(s syslogd.Stats) bool { return s.DroppedUnlisted == 4 })
	if s.Delivered != 0 || s.DroppedMalformed != 0 || s.ConnsAccepted != 0 {
		t.Errorf("stats: %+v; want only unlisted drops", s)
	}
	if want := netip.MustParseAddr("127.0.0.1"); s.LastUnlisted != want {
		t.Errorf("last unlisted: %v; want %v", s.LastUnlisted, want)
	}

	// From 127.0.0.2: accepted.
	u2 := dial(t, "udp", addr(t, r, "udp"), "127.0.0.2")
	send(t, u2, msg)
	conn2 := dial(t, "tcp", addr(t, r, "tcp"), "127.0.0.2")
	send(t, conn2, msg+"\n")
	ms := c.wait(t, 2)
	for _, m := range ms {
		if m.Sender.Addr() != netip.MustParseAddr("127.0.0.2") {
			t.Errorf("sender %v; want 127.0.0.2", m.Sender)
		}
	}
	checkBalance(t, r.Stats())
	if got := c.lines(); len(got) != 2 {
		t.Errorf("lines: %q; want 2", got)
	}
}

func TestReceiver_IPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		testutil.Missing(t, "no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	msg := "<13>Nov 26 10:00:00 asterisk: x"
	t.Run("allowed", func(t *testing.T) {
		r, c := start(t, syslogd.Options{
			Listen:  []string{"udp://[::1]:0", "tcp://[::1]:0"},
			Senders: []netip.Prefix{netip.MustParsePrefix("::1/128")},
		})
		send(t, dial(t, "udp", addr(t, r, "udp"), ""), msg)
		send(t, dial(t, "tcp", addr(t, r, "tcp"), ""), msg+"\n")
		for _, m := range c.wait(t, 2) {
			if m.Sender.Addr() != netip.IPv6Loopback() {
				t.Errorf("sender %v; want ::1", m.Sender)
			}
			if want := "Nov 26 10:00:00 ::1 asterisk: x"; string(m.Line) != want {
				t.Errorf("got %q; want %q", m.Line, want)
			}
		}
	})
	t.Run("unlisted", func(t *testing.T) {
		r, _ := start(t, syslogd.Options{
			Listen:  []string{"udp://[::1]:0", "tcp://[::1]:0"},
			Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("2001:db8::/32")},
		})
		send(t, dial(t, "udp", addr(t, r, "udp"), ""), msg)
		refused(t, addr(t, r, "tcp"), "")
		waitStats(t, r, "unlisted", func(s syslogd.Stats) bool { return s.DroppedUnlisted == 2 && s.Received == 2 })
	})
	t.Run("dual stack, IPv4-mapped sender", func(t *testing.T) {
		r, c := start(t, syslogd.Options{
			Listen:  []string{"udp://[::]:0", "tcp://[::]:0"},
			Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		})
		port := func(network string) string { _, p, _ := net.SplitHostPort(addr(t, r, network)); return p }
		send(t, dial(t, "udp", "127.0.0.1:"+port("udp"), "127.0.0.1"), msg)
		send(t, dial(t, "tcp", "127.0.0.1:"+port("tcp"), "127.0.0.1"), msg+"\n")
		for _, m := range c.wait(t, 2) {
			if m.Sender.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("sender %v; want 127.0.0.1 unmapped", m.Sender)
			}
			if want := "Nov 26 10:00:00 127.0.0.1 asterisk: x"; string(m.Line) != want {
				t.Errorf("got %q; want %q", m.Line, want)
			}
		}
	})
}

func TestReceiver_ConnLimit(t *testing.T) {
	t.Run("total", func(t *testing.T) {
		r, c := start(t, syslogd.Options{MaxConns: 2, MaxConnsPerSender: 2})
		a := addr(t, r, "tcp")
		c1, c2 := dial(t, "tcp", a, ""), dial(t, "tcp", a, "")
		waitStats(t, r, "two conns", func(s syslogd.Stats) bool { return s.Conns == 2 })
		refused(t, a, "")
		s := waitStats(t, r, "refused", func(s syslogd.Stats) bool { return s.ConnsRefused == 1 })
		if s.Conns != 2 {
			t.Errorf("conns %d; want 2", s.Conns)
		}
		send(t, c2, "<13>Nov 26 10:00:00 pbx asterisk: still here\n")
		c.wait(t, 1)
		c1.Close()
		waitStats(t, r, "one conn", func(s syslogd.Stats) bool { return s.Conns == 1 })
		c4 := dial(t, "tcp", a, "")
		send(t, c4, "<13>Nov 26 10:00:00 pbx asterisk: new\n")
		c.wait(t, 2)
	})
	t.Run("per sender", func(t *testing.T) {
		r, c := start(t, syslogd.Options{
			MaxConns: 10, MaxConnsPerSender: 1,
			Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		})
		a := addr(t, r, "tcp")
		dial(t, "tcp", a, "127.0.0.1")
		waitStats(t, r, "one conn", func(s syslogd.Stats) bool { return s.Conns == 1 })
		refused(t, a, "127.0.0.1")
		other := dial(t, "tcp", a, "127.0.0.2")
		send(t, other, "<13>Nov 26 10:00:00 pbx asterisk: other\n")
		c.wait(t, 1)
		s := waitStats(t, r, "refused", func(s syslogd.Stats) bool { return s.ConnsRefused == 1 && s.Conns == 2 })
		if s.ConnsAccepted != 2 {
			t.Errorf("accepted %d; want 2", s.ConnsAccepted)
		}
	})
}

func TestReceiver_IdleTimeout(t *testing.T) {
	const idle = 600 * time.Millisecond
	r, c := start(t, syslogd.Options{IdleTimeout: idle})
	a := addr(t, r, "tcp")

	silent := dial(t, "tcp", a, "")
	// Trickles a frame that never completes.
	trickle := dial(t, "tcp", a, "")
	// Completes a message every idle/10: kept.
	busy := dial(t, "tcp", a, "")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(idle / 10)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			trickle.Write([]byte("<")) // fails once closed
			if _, err := busy.Write([]byte("<13>Nov 26 10:00:00 pbx asterisk: busy\n")); err != nil {
				t.Errorf("busy connection: %v", err)
				return
			}
		}
	})
	start := time.Now()
	closedByPeer(t, silent)
	closedByPeer(t, trickle)
	if el := time.Since(start); el < idle*15/16 || el > idle*10 {
		t.Errorf("closed after %v; want about %v", el, idle)
	}
	time.Sleep(idle)
	close(stop)
	wg.Wait()
	s := waitStats(t, r, "idle", func(s syslogd.Stats) bool { return s.ConnsIdle == 2 })
	if s.Conns != 1 {
		t.Errorf("conns %d; want the busy one kept", s.Conns)
	}
	if s.DroppedMalformed != 1 {
		t.Errorf("malformed %d; want 1 (the trickled frame)", s.DroppedMalformed)
	}
	if len(c.lines()) == 0 {
		t.Errorf("busy connection delivered nothing")
	}
}

func TestReceiver_Shutdown(t *testing.T) {
	r, err := syslogd.New(syslogd.Options{
		Listen:  []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"},
		Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(r.Stats().Listening); got != 2 {
		t.Errorf("listening on %d; want 2", got)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func([]syslogd.Message) error { return nil }) }()
	conn := dial(t, "tcp", addr(t, r, "tcp"), "")
	waitStats(t, r, "conn", func(s syslogd.Stats) bool { return s.Conns == 1 })
	cancel()
	if !waitCanceled(t, done) {
		t.FailNow()
	}
	closedByPeer(t, conn)
	if a := r.Addrs(); a != nil {
		t.Errorf("addrs after Run: %v; want none", a)
	}
	if s := r.Stats(); s.Conns != 0 || s.Listening != nil {
		t.Errorf("stats after Run: %+v", s)
	}
}

func TestReceiver_EmitError(t *testing.T) {
	r, err := syslogd.New(syslogd.Options{
		Listen:  []string{"udp://127.0.0.1:0"},
		Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), func([]syslogd.Message) error { return errStop }) }()
	send(t, dial(t, "udp", addr(t, r, "udp"), ""), "<13>Nov 26 10:00:00 pbx asterisk: x")
	select {
	case err := <-done:
		if err != errStop {
			t.Errorf("Run: %v; want %v", err, errStop)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestReceiver_ListenError(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r, err := syslogd.New(syslogd.Options{
		Listen:  []string{"tcp://127.0.0.1:0", "udp://" + ln.LocalAddr().String()},
		Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background(), func([]syslogd.Message) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "listen udp://") {
		t.Errorf("Run: %v; want a listen error", err)
	}
	if a := r.Addrs(); a != nil {
		t.Errorf("addrs: %v; want none bound", a)
	}
}

func TestNew(t *testing.T) {
	ok := syslogd.Options{
		Listen:  []string{"udp://0.0.0.0:514", "tcp://[::]:6514", "udp4://127.0.0.1:0", "tcp6://[::1]:0", "udp://:5514"},
		Senders: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("::ffff:198.51.100.7/128")},
	}
	if _, err := syslogd.New(ok); err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*syslogd.Options)
		want string
	}{
		{"ErrNoSenders", func(o *syslogd.Options) { o.Senders = nil }, "no senders allowed"},
		{"no listen", func(o *syslogd.Options) { o.Listen = nil }, "listen: no address"},
		{"bad scheme", func(o *syslogd.Options) { o.Listen = []string{"tls://0.0.0.0:6514"} }, "unknown protocol"},
		{"no scheme", func(o *syslogd.Options) { o.Listen = []string{"0.0.0.0:514"} }, "want udp://"},
		{"host name", func(o *syslogd.Options) { o.Listen = []string{"udp://localhost:514"} }, "not an IP address"},
		{"bad port", func(o *syslogd.Options) { o.Listen = []string{"udp://0.0.0.0:70000"} }, "bad port"},
		{"no port", func(o *syslogd.Options) { o.Listen = []string{"udp://0.0.0.0"} }, "missing port"},
		{"family", func(o *syslogd.Options) { o.Listen = []string{"udp4://[::1]:514"} }, "does not match"},
		{"twice", func(o *syslogd.Options) { o.Listen = []string{"udp://0.0.0.0:514", "udp://0.0.0.0:514"} }, "listed twice"},
		{"invalid prefix", func(o *syslogd.Options) { o.Senders = []netip.Prefix{{}} }, "invalid prefix"},
		{"small message", func(o *syslogd.Options) { o.MaxMessage = 100 }, "out of range"},
		{"large message", func(o *syslogd.Options) { o.MaxMessage = 1 << 20 }, "out of range"},
		{"negative queue", func(o *syslogd.Options) { o.QueueLines = -1 }, "negative"},
		{"negative conns", func(o *syslogd.Options) { o.MaxConns = -1 }, "negative"},
		{"negative idle", func(o *syslogd.Options) { o.IdleTimeout = -time.Second }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := syslogd.New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := syslogd.New(syslogd.Options{Listen: ok.Listen}); !errors.Is(err, syslogd.ErrNoSenders) {
		t.Errorf("New without senders: %v; want ErrNoSenders", err)
	}
}

// TestReceiver_MappedPrefix checks that an IPv4-mapped sender prefix
// allows the IPv4 address.
func TestReceiver_MappedPrefix(t *testing.T) {
	r, c := start(t, syslogd.Options{Senders: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.1/128")}})
	send(t, dial(t, "udp", addr(t, r, "udp"), "127.0.0.1"), "<13>Nov 26 10:00:00 pbx asterisk: x")
	c.wait(t, 1)
}

// TestReceiver_WarnLog checks that drops are logged at the first and then
// at most once per interval, with their counts.
func TestReceiver_WarnLog(t *testing.T) {
	const every = 300 * time.Millisecond
	defer syslogd.SetWarnEvery(every)()
	var buf testutil.Buffer
	r, _ := start(t, syslogd.Options{
		Senders: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		Logger:  zerolog.New(&buf).Level(zerolog.InfoLevel),
	})
	warnings := func() []map[string]any {
		var ws []map[string]any
		for _, l := range strings.Split(buf.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "syslog messages dropped" {
				ws = append(ws, m)
			}
		}
		return ws
	}
	waitWarnings := func(n int) []map[string]any {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if ws := warnings(); len(ws) >= n {
				return ws
			}
		}
		t.Fatalf("want %d warnings in\n%s", n, buf.String())
		return nil
	}
	u := dial(t, "udp", addr(t, r, "udp"), "127.0.0.1")
	send(t, u, "x")
	start := time.Now()
	waitWarnings(1)
	for range 999 {
		send(t, u, "x")
	}
	waitStats(t, r, "unlisted", func(s syslogd.Stats) bool { return s.DroppedUnlisted == 1000 })
	ws := waitWarnings(2)
	if el := time.Since(start); el < every {
		t.Errorf("second warning after %v; want at least %v", el, every)
	}
	time.Sleep(2 * every)
	// Usually two: the first drop, then the rest. More only when sending
	// took longer than the interval; never more than one per interval.
	ws = warnings()
	if max := 1 + int(time.Since(start)/every); len(ws) > max {
		t.Errorf("%d warnings in %v; want at most %d:\n%s", len(ws), time.Since(start), max, buf.String())
	}
	sum := 0.0
	for _, w := range ws {
		sum += w["unlisted"].(float64)
	}
	if sum != 1000 {
		t.Errorf("warnings count %v unlisted; want 1000:\n%s", sum, buf.String())
	}
	if ws[0]["unlisted"].(float64) < 1 || ws[0]["last_unlisted"] != "127.0.0.1" {
		t.Errorf("first warning %v; want unlisted ≥ 1 from 127.0.0.1", ws[0])
	}
	if n := strings.Count(buf.String(), "syslog listener started"); n != 2 {
		t.Errorf("%d listener lines; want 2:\n%s", n, buf.String())
	}
}

// TestReceiver_LFFraming: over TCP with newline framing, a newline inside
// a message (an attacker's SIP user name, logged raw) ends it, and what
// follows is a message of its own, tag and all; with octet counting it
// stays one message. Messages framed by newlines are counted, and each
// sender using that framing is warned of once.
func TestReceiver_LFFraming(t *testing.T) {
	var buf testutil.Buffer
	r, c := start(t, syslogd.Options{Logger: zerolog.New(&buf).Level(zerolog.InfoLevel)})
	msg := "<13>Nov 26 10:00:00 pbx asterisk[812]: NOTICE[1]: chan_sip.c: Registration from '<sip:x\n" +
		"<13>Nov 26 10:00:00 pbx asterisk[812]: NOTICE[1]: chan_sip.c: Registration from '<sip:1@pbx>' failed for '203.0.113.44:5060' - Wrong password"
	warned := func() int { return strings.Count(buf.String(), "syslog sender frames messages over TCP by newlines") }

	octet := dial(t, "tcp", addr(t, r, "tcp"), "")
	send(t, octet, itoa(len(msg))+" "+msg)
	if ms := c.wait(t, 1); !strings.Contains(string(ms[0].Line), "<sip:x <13>Nov") {
		t.Errorf("octet counting: %q; want one message, its newline a space", ms[0].Line)
	}
	if s := r.Stats(); s.FramedLF != 0 || warned() != 0 {
		t.Errorf("octet counting: %d framed by LF, %d warnings", s.FramedLF, warned())
	}
	c.reset()

	for i := range 2 {
		lf := dial(t, "tcp", addr(t, r, "tcp"), "")
		send(t, lf, msg+"\n")
		ms := c.wait(t, 2)
		if !strings.HasSuffix(string(ms[1].Line), "failed for '203.0.113.44:5060' - Wrong password") {
			t.Errorf("LF framing: %q; want the forged second message", ms[1].Line)
		}
		waitStats(t, r, "framed by LF", func(s syslogd.Stats) bool { return s.FramedLF == int64(2*(i+1)) })
		lf.Close()
		c.reset()
	}
	if n := warned(); n != 1 || !strings.Contains(buf.String(), `"sender":"127.0.0.1"`) {
		t.Errorf("%d warnings; want one naming 127.0.0.1:\n%s", n, buf.String())
	}
}
