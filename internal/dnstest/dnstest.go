// Package dnstest is an authoritative DNS server for tests, in process on
// 127.0.0.1 (UDP and TCP, one random port), whose records, TTLs and
// failures a test changes while resolvers ask it. It truncates UDP
// answers as real servers do, so large answers go over TCP.
package dnstest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server answers from its zone.
type Server struct {
	Addr string // 127.0.0.1:PORT

	mu      sync.Mutex
	zone    map[string][]dns.RR // by canonical name
	rcode   int                 // answered to everything when not success
	hook    func(req *dns.Msg) *dns.Msg
	queries atomic.Int64
}

// Start starts a server, stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, l := Listen(t)
	return Serve(t, pc, l)
}

// Listen opens a UDP and a TCP socket on one random port of 127.0.0.1
// (in the caller's network namespace: a test may call it in another one,
// then Serve from anywhere).
func Listen(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
		if try == 20 {
			t.Fatalf("dnstest: no port free for UDP and TCP: %v", err)
		}
	}
}

// Serve answers on pc and l (Listen) until t ends.
func Serve(t testing.TB, pc net.PacketConn, l net.Listener) *Server {
	s := &Server{zone: map[string][]dns.RR{}, Addr: pc.LocalAddr().String()}
	started := make(chan struct{}, 2)
	up := func() { started <- struct{}{} }
	udp := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: up}
	tcp := &dns.Server{Listener: l, Handler: s, NotifyStartedFunc: up}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	// Shutdown of a server not started yet would leave it running.
	<-started
	<-started
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return s
}

// Set replaces the records of the names they are for with rrs, in zone
// file syntax ("sip.example.test. 60 IN A 192.0.2.1"). A name none of
// whose records are left does not exist (NXDOMAIN).
func (s *Server) Set(t testing.TB, rrs ...string) {
	t.Helper()
	var parsed []dns.RR
	for _, r := range rrs {
		rr, err := dns.NewRR(r)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: record %q: %v", r, err)
		}
		parsed = append(parsed, rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done := map[string]bool{}
	for _, rr := range parsed {
		n := dns.CanonicalName(rr.Header().Name)
		if !done[n] {
			s.zone[n] = nil
			done[n] = true
		}
		s.zone[n] = append(s.zone[n], rr)
	}
}

// Delete removes names from the zone: NXDOMAIN.
func (s *Server) Delete(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		delete(s.zone, dns.CanonicalName(n))
	}
}

// Fail makes the server answer every question with rcode (SERVFAIL,
// REFUSED); dns.RcodeSuccess answers from the zone again.
func (s *Server) Fail(rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode = rcode
}

// Hook makes the server answer with what h returns (nil: from the zone):
// hostile answers.
func (s *Server) Hook(h func(req *dns.Msg) *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// Queries returns how many questions the server was asked.
func (s *Server) Queries() int64 { return s.queries.Load() }

// ServeDNS answers a question from the zone: the records of the name of
// the type asked, or its CNAME.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := s.answer(req)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func (s *Server) answer(req *dns.Msg) *dns.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hook != nil {
		if m := s.hook(req); m != nil {
			return m
		}
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if s.rcode != dns.RcodeSuccess {
		m.Rcode = s.rcode
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	rrs, ok := s.zone[dns.CanonicalName(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
		return m
	}
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t == q.Qtype || t == dns.TypeCNAME {
			c := dns.Copy(rr)
			c.Header().Name = q.Name // as asked, case included
			m.Answer = append(m.Answer, c)
		}
	}
	return m
}

// Records returns n A records for name in zone file syntax: 198.18.x.y
// (benchmarking space: never routed), TTL ttl.
func Records(name string, n int, ttl int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s %d IN A 198.18.%d.%d", name, ttl, i>>8&255, i&255))
	}
	return out
}
