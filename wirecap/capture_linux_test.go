//go:build linux

package wirecap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/wirecap"
)

func requireRoot(t testing.TB) {
	t.Helper()
	testutil.NeedRoot(t, "capture tests work in throw-away network namespaces")
	testutil.NeedCommands(t, "apt-get install iproute2 nftables", "ip", "nft")
}

// newNS creates a network namespace with lo up, removed at cleanup.
func newNS(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	return testutil.NewNetNS(t, "sgwc")
}

// link joins namespaces a and b with a veth pair, giving each side its
// addresses (with their prefix length).
func link(t testing.TB, a, b, ifa, ifb string, addrsA, addrsB []string) {
	t.Helper()
	testutil.Run(t, "ip", "-n", a, "link", "add", ifa, "type", "veth", "peer", "name", ifb, "netns", b)
	for _, x := range addrsA {
		testutil.Run(t, "ip", "-n", a, "addr", "add", x, "dev", ifa, "nodad")
	}
	for _, x := range addrsB {
		testutil.Run(t, "ip", "-n", b, "addr", "add", x, "dev", ifb, "nodad")
	}
	testutil.Run(t, "ip", "-n", a, "link", "set", ifa, "up")
	testutil.Run(t, "ip", "-n", b, "link", "set", ifb, "up")
}

func ports(t testing.TB, specs ...string) []firewall.Port {
	t.Helper()
	var out []firewall.Port
	for _, s := range specs {
		p, err := firewall.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// setUp makes sipguard's table with w in ns.
func setUp(t testing.TB, ns string, w firewall.Wire) *firewall.NFT {
	t.Helper()
	n, err := firewall.NewNFT(firewall.NFTOptions{NetNS: "/run/netns/" + ns, Wire: &w, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("NewNFT: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// sink collects the packets a capture hands on.
type sink struct {
	mu   sync.Mutex
	pkts []wirecap.Packet
}

func (s *sink) handle(p wirecap.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkts = append(s.pkts, p)
}

func (s *sink) get() []wirecap.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wirecap.Packet(nil), s.pkts...)
}

func start(t testing.TB, ns string, group uint16, s *sink) *wirecap.Capture {
	t.Helper()
	c, err := wirecap.Start(context.Background(), wirecap.Options{Group: group, NetNS: "/run/netns/" + ns, Logger: zerolog.Nop()}, s.handle)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// response returns a SIP response of at least size bytes: the padding
// sits in a header before Call-ID and CSeq, which must arrive intact.
func response(status string, size int) []byte {
	head := "SIP/2.0 " + status + "\r\nVia: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bK1;received=198.18.0.2;rport=5062\r\n"
	tail := "Call-ID: wirecap-test@198.18.0.2\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n"
	pad := max(0, size-len(head)-len(tail)-len("X-Pad: \r\n"))
	return []byte(head + "X-Pad: " + strings.Repeat("p", pad) + "\r\n" + tail)
}

// udpCase is one datagram sent from the PBX's socket to the client.
type udpCase struct {
	payload []byte
	copied  bool // the capture must see it
}

func udpCases() []udpCase {
	return []udpCase{
		{response("401 Unauthorized", 1300), true},
		{response("200 OK", 600), true},
		{response("404 Not Found", 450), true},
		{response("100 Trying", 300), false},                                 // not a 2xx or 4xx
		{response("503 Unavailable", 300), false},                            // not a 2xx or 4xx
		{[]byte("OPTIONS sip:x SIP/2.0\r\n\r\n"), false},                     // a request
		{[]byte("hello, not SIP at all, but long enough to look at"), false}, // not SIP
		{[]byte("SIP/2.0"), false},                                           // too short for the filter
	}
}

// exchange sends each case from pbx (a socket on the PBX's port) to
// client, checks that every datagram arrives (the rules never drop), and
// returns the client's address.
func exchange(t *testing.T, pbx, client *net.UDPConn, cases []udpCase) {
	t.Helper()
	for _, c := range cases {
		if _, err := pbx.WriteToUDP(c.payload, client.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatalf("send: %v", err)
		}
		buf := make([]byte, 4096)
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := client.ReadFromUDP(buf)
		if err != nil || !bytes.Equal(buf[:n], c.payload) {
			t.Fatalf("the client did not get %.20q: %v", c.payload, err)
		}
	}
}

// checkCopied checks that the capture got exactly the cases marked
// copied, in order, to dst, from src, payload intact.
func checkCopied(t *testing.T, s *sink, cases []udpCase, src, dst netip.AddrPort, tcp bool) {
	t.Helper()
	var want [][]byte
	for _, c := range cases {
		if c.copied {
			want = append(want, c.payload)
		}
	}
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%d copies", len(want)), func() bool { return len(s.get()) >= len(want) })
	time.Sleep(100 * time.Millisecond) // any copy too many would be in by now
	got := s.get()
	if len(got) != len(want) {
		for _, p := range got {
			t.Logf("got %.20q", p.Payload)
		}
		t.Fatalf("captured %d packets; want %d", len(got), len(want))
	}
	for i, p := range got {
		if !bytes.Equal(p.Payload, want[i]) {
			t.Errorf("packet %d: payload %d bytes %.20q; want %d bytes %.20q", i, len(p.Payload), p.Payload, len(want[i]), want[i])
		}
		if p.Src != src.Addr() || p.SrcPort != src.Port() || p.Dst != dst.Addr() || p.DstPort != dst.Port() || p.TCP != tcp {
			t.Errorf("packet %d: %v:%d -> %v:%d tcp=%v; want %v -> %v tcp=%v", i, p.Src, p.SrcPort, p.Dst, p.DstPort, p.TCP, src, dst, tcp)
		}
		if p.Time.IsZero() || time.Since(p.Time) > time.Minute {
			t.Errorf("packet %d: time %v", i, p.Time)
		}
	}
}

func listenUDP(t testing.TB, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	testutil.InNetNS(t, ns, func() {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func addrPort(c net.Conn) netip.AddrPort {
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// TestCapture_Output: a PBX on this host (the output hook). Over IPv4 and
// IPv6, the capture gets exactly the 2xx and 4xx responses leaving the
// PBX's port, with the client's address and port and the whole payload
// (1,300 bytes); not the 1xx, 5xx, requests, non-SIP, nor responses from
// another port. Every datagram reaches the client.
func TestCapture_Output(t *testing.T) {
	pbxNS, clientNS := newNS(t), newNS(t)
	link(t, pbxNS, clientNS, "sgwc-pbx", "sgwc-cli",
		[]string{"198.18.0.1/24", "fd00:5::1/64"}, []string{"198.18.0.2/24", "fd00:5::2/64"})
	setUp(t, pbxNS, firewall.Wire{Hooks: []string{"output"}, Ports: ports(t, "5060/udp", "5060/tcp"), Group: 5160})
	for _, fam := range []struct{ pbx, other, client string }{
		{"198.18.0.1:5060", "198.18.0.1:5070", "198.18.0.2:5062"},
		{"[fd00:5::1]:5060", "[fd00:5::1]:5070", "[fd00:5::2]:5062"},
	} {
		t.Run(fam.pbx, func(t *testing.T) {
			var s sink
			start(t, pbxNS, 5160, &s)
			pbx := listenUDP(t, pbxNS, fam.pbx)
			other := listenUDP(t, pbxNS, fam.other)
			client := listenUDP(t, clientNS, fam.client)
			cases := udpCases()
			exchange(t, pbx, client, cases)
			exchange(t, other, client, []udpCase{{response("401 Unauthorized", 500), false}})
			checkCopied(t, &s, cases, addrPort(pbx), addrPort(client), false)
		})
	}
}

// routed is a PBX behind a router: three namespaces, the PBX's with a
// second host's address (10.77.1.2, fd00:77:1::2), the router's
// forwarding, the client's.
type routed struct{ pbx, router, client string }

func newRouted(t *testing.T) routed {
	r := routed{newNS(t), newNS(t), newNS(t)}
	link(t, r.pbx, r.router, "sgwc-pbx", "sgwc-rin",
		[]string{"10.77.1.1/24", "10.77.1.2/24", "fd00:77:1::1/64", "fd00:77:1::2/64"}, []string{"10.77.1.254/24", "fd00:77:1::fe/64"})
	link(t, r.router, r.client, "sgwc-rout", "sgwc-cli",
		[]string{"10.77.2.254/24", "fd00:77:2::fe/64"}, []string{"10.77.2.1/24", "fd00:77:2::1/64"})
	testutil.Run(t, "ip", "netns", "exec", r.router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for ns, via := range map[string][2]string{r.pbx: {"10.77.1.254", "fd00:77:1::fe"}, r.client: {"10.77.2.254", "fd00:77:2::fe"}} {
		testutil.Run(t, "ip", "-n", ns, "route", "add", "default", "via", via[0])
		testutil.Run(t, "ip", "-n", ns, "-6", "route", "add", "default", "via", via[1])
	}
	return r
}

// TestCapture_Forward: a PBX behind this router (the forward hook, in a
// router namespace between the PBX's and the client's), over IPv4 and
// IPv6. Only the PBX's responses are copied, not those of another host
// behind the router on the same port, nor anything the router itself
// sends.
func TestCapture_Forward(t *testing.T) {
	r := newRouted(t)
	setUp(t, r.router, firewall.Wire{
		Hooks: []string{"forward"}, PBX: []netip.Prefix{netip.MustParsePrefix("10.77.1.1/32"), netip.MustParsePrefix("fd00:77:1::1/128")},
		Ports: ports(t, "5060/udp"), Group: 7,
	})
	for _, fam := range []struct{ pbx, other, router, client string }{
		{"10.77.1.1:5060", "10.77.1.2:5060", "10.77.2.254:5060", "10.77.2.1:5062"},
		{"[fd00:77:1::1]:5060", "[fd00:77:1::2]:5060", "[fd00:77:2::fe]:5060", "[fd00:77:2::1]:5062"},
	} {
		t.Run(fam.pbx, func(t *testing.T) {
			var s sink
			start(t, r.router, 7, &s)
			pbx := listenUDP(t, r.pbx, fam.pbx)
			notPBX := listenUDP(t, r.pbx, fam.other)
			router := listenUDP(t, r.router, fam.router)
			client := listenUDP(t, r.client, fam.client)
			cases := udpCases()
			exchange(t, pbx, client, cases)
			exchange(t, notPBX, client, []udpCase{{response("401 Unauthorized", 500), false}})
			exchange(t, router, client, []udpCase{{response("401 Unauthorized", 500), false}})
			checkCopied(t, &s, cases, addrPort(pbx), addrPort(client), false)
		})
	}
}

// TestCapture_TCP: over TCP, on the output hook and on the forward hook,
// segments that start with "SIP/2.0 " are copied whatever the status (two
// responses in one segment arrive together; the reader splits them), with
// the data offset of a header with options (Linux sends timestamps); the
// handshake and non-SIP data are not.
func TestCapture_TCP(t *testing.T) {
	t.Run("output", func(t *testing.T) {
		pbxNS, clientNS := newNS(t), newNS(t)
		link(t, pbxNS, clientNS, "sgwc-pbx", "sgwc-cli", []string{"198.18.0.1/24"}, []string{"198.18.0.2/24"})
		setUp(t, pbxNS, firewall.Wire{Hooks: []string{"output"}, Ports: ports(t, "5060/tcp"), Group: 5160})
		var s sink
		start(t, pbxNS, 5160, &s)
		tcpExchange(t, &s, pbxNS, clientNS, "198.18.0.1:5060")
	})
	t.Run("forward", func(t *testing.T) {
		r := newRouted(t)
		setUp(t, r.router, firewall.Wire{Hooks: []string{"forward"}, PBX: []netip.Prefix{netip.MustParsePrefix("10.77.1.1/32")}, Ports: ports(t, "5060/tcp"), Group: 5160})
		var s sink
		start(t, r.router, 5160, &s)
		tcpExchange(t, &s, r.pbx, r.client, "10.77.1.1:5060")
	})
}

// tcpExchange has the PBX at addr (in pbxNS) answer a client (in
// clientNS) over TCP, and checks what the capture got.
func tcpExchange(t *testing.T, s *sink, pbxNS, clientNS, addr string) {
	t.Helper()
	var ln net.Listener
	testutil.InNetNS(t, pbxNS, func() {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	var conn net.Conn
	testutil.InNetNS(t, clientNS, func() {
		var err error
		if conn, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	two := append(response("401 Unauthorized", 500), response("100 Trying", 300)...)
	cases := []udpCase{
		{response("401 Unauthorized", 1300), true},
		{[]byte("not SIP: a keep-alive or garbage"), false},
		{two, true},
		{response("180 Ringing", 300), true}, // TCP: any status
	}
	for _, c := range cases {
		if _, err := srv.Write(c.payload); err != nil {
			t.Fatal(err)
		}
		// Read it all before the next write, so that each write is a
		// segment of its own.
		buf := make([]byte, len(c.payload))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, buf); err != nil || !bytes.Equal(buf, c.payload) {
			t.Fatalf("client read: %v", err)
		}
	}
	checkCopied(t, s, cases, netip.MustParseAddrPort(addr), netip.MustParseAddrPort(conn.LocalAddr().String()), true)
}

// TestCapture_GroupBusy: a second reader of the same group fails at once
// with ErrGroupBusy naming the group; once the first is closed the group
// is free again.
func TestCapture_GroupBusy(t *testing.T) {
	ns := newNS(t)
	var s sink
	first := start(t, ns, 5160, &s)
	_, err := wirecap.Start(context.Background(), wirecap.Options{Group: 5160, NetNS: "/run/netns/" + ns}, s.handle)
	if !errors.Is(err, wirecap.ErrGroupBusy) || !strings.Contains(err.Error(), "5160") {
		t.Fatalf("second Start: %v; want ErrGroupBusy naming group 5160", err)
	}
	t.Log(err)
	// Another group is fine meanwhile.
	start(t, ns, 5161, &s)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	default:
		t.Error("Done not closed after Close")
	}
	start(t, ns, 5160, &s)
}

// TestCapture_FailOpen: with the capture stopped (sipguard stopped), the
// rules still match and copy, nobody reads, and every response still
// reaches the client.
func TestCapture_FailOpen(t *testing.T) {
	pbxNS, clientNS := newNS(t), newNS(t)
	link(t, pbxNS, clientNS, "sgwc-pbx", "sgwc-cli", []string{"198.18.0.1/24"}, []string{"198.18.0.2/24"})
	n := setUp(t, pbxNS, firewall.Wire{Hooks: []string{"output"}, Ports: ports(t, "5060/udp"), Group: 5160})
	var s sink
	c := start(t, pbxNS, 5160, &s)
	pbx := listenUDP(t, pbxNS, "198.18.0.1:5060")
	client := listenUDP(t, clientNS, "198.18.0.2:5062")
	exchange(t, pbx, client, []udpCase{{response("401 Unauthorized", 500), true}})
	testutil.WaitFor(t, 5*time.Second, "the first copy", func() bool { return len(s.get()) == 1 })
	c.Close()
	var many []udpCase
	for range 200 {
		many = append(many, udpCase{response("401 Unauthorized", 500), false})
	}
	exchange(t, pbx, client, many) // fails unless all 200 arrive
	if got := len(s.get()); got != 1 {
		t.Errorf("%d packets handled after Close; want none more", got-1)
	}
	if st := n.State(context.Background()); st.WireCopied != 201 {
		t.Errorf("the rules copied %d packets; want 201 (they match whether read or not)", st.WireCopied)
	}
}

// BenchmarkCapture: responses/s through the kernel filter, NFLOG (queue
// threshold 1) and the parser to the handler: a flood sent as fast as one
// socket can, and a steady 10,000/s (the target). The copies the
// kernel had to drop show as overruns (failed reads) and lost (gaps in
// the sequence numbers); every copy is accounted for: handled + lost =
// sent.
func BenchmarkCapture(b *testing.B) {
	b.Run("flood", func(b *testing.B) { benchCapture(b, 0) })
	b.Run("10000/s", func(b *testing.B) { benchCapture(b, 10000) })
}

func benchCapture(b *testing.B, rate int) {
	ns := newNS(b)
	setUp(b, ns, firewall.Wire{Hooks: []string{"output"}, Ports: ports(b, "5060/udp"), Group: 5160})
	var handled atomic.Int64
	var last atomic.Int64 // when the last packet was handled, in ns since begin
	begin := time.Now()
	msg := response("401 Unauthorized", 500)
	stamp := bytes.Index(msg, []byte("X-Pad: ")) + len("X-Pad: ") // where the send time goes
	var latMu sync.Mutex
	lat := make([]time.Duration, 0, b.N+1) // send to handler, per packet
	c, err := wirecap.Start(context.Background(), wirecap.Options{Group: 5160, NetNS: "/run/netns/" + ns, Logger: zerolog.Nop()},
		func(p wirecap.Packet) {
			handled.Add(1)
			now := time.Since(begin)
			last.Store(int64(now))
			if sent, err := strconv.ParseInt(string(p.Payload[stamp:stamp+19]), 10, 64); err == nil {
				latMu.Lock()
				lat = append(lat, now-time.Duration(sent))
				latMu.Unlock()
			}
		})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pbx := listenUDP(b, ns, "127.0.0.1:5060")
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:5062"))
	b.ResetTimer()
	start := time.Since(begin) // sending starts: the rates count from here
	for i := range b.N {
		if rate > 0 {
			if ahead := start + time.Duration(i)*time.Second/time.Duration(rate) - time.Since(begin); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
		}
		copy(msg[stamp:], fmt.Sprintf("%019d", time.Since(begin)))
		if _, err := pbx.WriteToUDP(msg, to); err != nil {
			b.Fatal(err)
		}
	}
	sent := time.Since(begin) - start
	testutil.EventuallyEvery(5*time.Second, 10*time.Millisecond, func() bool {
		n := handled.Load()
		time.Sleep(50 * time.Millisecond)
		return handled.Load() == n
	})
	b.StopTimer()
	took, flood := time.Duration(last.Load())-start, handled.Load()
	// One more after the flood has drained: copies lost at its very end
	// leave a gap only a later sequence number shows.
	if _, err := pbx.WriteToUDP(msg, to); err != nil {
		b.Fatal(err)
	}
	testutil.EventuallyEvery(5*time.Second, 10*time.Millisecond, func() bool {
		st := c.Stats()
		return int64(st.Packets+st.Lost) >= int64(b.N+1)
	})
	st := c.Stats()
	b.ReportMetric(float64(flood)/took.Seconds(), "handled/s")
	b.ReportMetric(float64(b.N)/sent.Seconds(), "sent/s")
	b.ReportMetric(float64(st.Overruns), "overruns")
	b.ReportMetric(float64(st.Lost), "lost")
	latMu.Lock()
	defer latMu.Unlock()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	if got := int64(st.Packets + st.Lost); got != int64(b.N+1) {
		b.Errorf("handled %d + lost %d = %d; sent %d (overruns %d)", st.Packets, st.Lost, got, b.N+1, st.Overruns)
	}
}

// TestCapture_Overrun: a reader that falls behind (its handler held, a
// small socket buffer) loses copies, never traffic: the lost copies are
// counted exactly from the sequence gaps (handled + lost = sent), the
// failed reads as overruns, and reading goes on afterwards.
func TestCapture_Overrun(t *testing.T) {
	ns := newNS(t)
	setUp(t, ns, firewall.Wire{Hooks: []string{"output"}, Ports: ports(t, "5060/udp"), Group: 5160})
	hold := make(chan struct{})
	var handled atomic.Int64
	c, err := wirecap.Start(context.Background(), wirecap.Options{Group: 5160, NetNS: "/run/netns/" + ns, ReadBuffer: 64 << 10, Logger: zerolog.Nop()},
		func(wirecap.Packet) {
			<-hold
			handled.Add(1)
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pbx := listenUDP(t, ns, "127.0.0.1:5060")
	client := listenUDP(t, ns, "127.0.0.1:5062")
	msg := response("401 Unauthorized", 500)
	const flood = 2000
	for range flood {
		if _, err := pbx.WriteToUDP(msg, client.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	close(hold)
	testutil.WaitFor(t, 5*time.Second, "the flood drained", func() bool {
		n := handled.Load()
		time.Sleep(50 * time.Millisecond)
		return n > 0 && handled.Load() == n
	})
	// A later copy shows the gap of those lost at the flood's end.
	if _, err := pbx.WriteToUDP(msg, client.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "every copy accounted for", func() bool {
		st := c.Stats()
		return st.Packets+st.Lost >= flood+1
	})
	st := c.Stats()
	if st.Lost == 0 || st.Overruns == 0 || st.Packets+st.Lost != flood+1 || uint64(handled.Load()) != st.Packets {
		t.Errorf("stats %+v, handled %d; want copies lost, overruns, handled + lost = %d", st, handled.Load(), flood+1)
	}
	t.Logf("handled %d, lost %d, overruns %d", st.Packets, st.Lost, st.Overruns)
	// Every datagram reached the client's socket (up to its own buffer):
	// count a few.
	buf := make([]byte, 2048)
	for range 10 {
		client.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := client.ReadFromUDP(buf); err != nil {
			t.Fatalf("the client got nothing: %v", err)
		}
	}
}
