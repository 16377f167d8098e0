package trunks_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sipguard/sipguard/internal/dnstest"
	"github.com/sipguard/sipguard/trunks"
)

func resolver(s *dnstest.Server) *trunks.Resolver {
	return &trunks.Resolver{Servers: []string{s.Addr}, Timeout: 2 * time.Second}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestResolve_AAndAAAA(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t,
		"sip.example.test. 300 IN A 192.0.2.20",
		"sip.example.test. 300 IN A 192.0.2.10",
		"sip.example.test. 120 IN AAAA 2001:db8::5",
		"sip.example.test. 300 IN AAAA ::ffff:192.0.2.10", // the same address, IPv4-mapped
	)
	ans, err := resolver(s).Resolve(context.Background(), "SIP.example.test", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("192.0.2.10", "192.0.2.20", "2001:db8::5"); !slices.Equal(ans.Addrs, want) {
		t.Errorf("addresses %v; want %v", ans.Addrs, want)
	}
	if ans.TTL != 120*time.Second {
		t.Errorf("TTL %s; want the smallest, 2m0s", ans.TTL)
	}
}

func TestResolve_SRV(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t,
		"example.test. 60 IN TXT \"no address of its own\"",
		"_sip._udp.example.test. 90 IN SRV 10 50 5060 edge1.example.test.",
		"_sip._tcp.example.test. 90 IN SRV 10 50 5060 edge1.example.test.",
		"_sips._tcp.example.test. 30 IN SRV 10 50 5061 edge2.example.test.",
		"edge1.example.test. 600 IN A 198.51.100.1",
		"edge2.example.test. 600 IN A 198.51.100.2",
		"edge2.example.test. 600 IN AAAA 2001:db8:2::2",
	)
	r := resolver(s)
	ans, err := r.Resolve(context.Background(), "example.test", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("198.51.100.1", "198.51.100.2", "2001:db8:2::2"); !slices.Equal(ans.Addrs, want) {
		t.Errorf("addresses %v; want %v", ans.Addrs, want)
	}
	if ans.TTL != 30*time.Second {
		t.Errorf("TTL %s; want the SRV's 30s", ans.TTL)
	}
	// Without srv, the name has no address: an error, not an empty set.
	if _, err := r.Resolve(context.Background(), "example.test", false); !errors.Is(err, trunks.ErrNotFound) {
		t.Errorf("without srv: %v; want ErrNotFound", err)
	}
}

func TestResolve_NXDOMAIN(t *testing.T) {
	s := dnstest.Start(t)
	_, err := resolver(s).Resolve(context.Background(), "gone.example.test", true)
	if !errors.Is(err, trunks.ErrNotFound) || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Fatalf("err %v; want ErrNotFound, NXDOMAIN", err)
	}
}

func TestResolve_CNAME(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t,
		"sip.example.test. 300 IN CNAME edge.cdn.test.",
		"edge.cdn.test. 40 IN A 192.0.2.7",
	)
	ans, err := resolver(s).Resolve(context.Background(), "sip.example.test", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("192.0.2.7"); !slices.Equal(ans.Addrs, want) || ans.TTL != 40*time.Second {
		t.Errorf("%v TTL %s; want %v 40s", ans.Addrs, ans.TTL, want)
	}
}

// TestResolve_Hostile: what a hostile or broken server answers never
// becomes trusted addresses it was not asked for, nor unbounded work.
func TestResolve_Hostile(t *testing.T) {
	ctx := context.Background()
	t.Run("OtherNames", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Set(t, "sip.example.test. 60 IN A 192.0.2.1")
		s.Hook(func(req *dns.Msg) *dns.Msg {
			m := new(dns.Msg)
			m.SetReply(req)
			if req.Question[0].Qtype == dns.TypeA {
				for _, r := range []string{"evil.test. 60 IN A 203.0.113.66", "sip.example.test. 60 IN A 192.0.2.1", "test. 60 IN A 203.0.113.67"} {
					rr, _ := dns.NewRR(r)
					m.Answer = append(m.Answer, rr)
				}
			}
			return m
		})
		ans, err := resolver(s).Resolve(ctx, "sip.example.test", false)
		if err != nil {
			t.Fatal(err)
		}
		if want := addrs("192.0.2.1"); !slices.Equal(ans.Addrs, want) {
			t.Errorf("addresses %v; want only %v", ans.Addrs, want)
		}
	})
	t.Run("Huge", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Set(t, dnstest.Records("sip.example.test.", 2000, 60)...)
		_, err := resolver(s).Resolve(ctx, "sip.example.test", false)
		if err == nil || !strings.Contains(err.Error(), "more than 64") {
			t.Fatalf("err %v; want the answer refused as too large", err)
		}
	})
	t.Run("ManyAddresses", func(t *testing.T) {
		// 40 + 40 records, each answer within bounds: too many in all.
		s := dnstest.Start(t)
		recs := dnstest.Records("sip.example.test.", 40, 60)
		for i := range 40 {
			recs = append(recs, fmt.Sprintf("sip.example.test. 60 IN AAAA 2001:db8::%x", i+1))
		}
		s.Set(t, recs...)
		_, err := resolver(s).Resolve(ctx, "sip.example.test", false)
		if err == nil || !strings.Contains(err.Error(), "more than 64 addresses") {
			t.Fatalf("err %v; want too many addresses", err)
		}
	})
	t.Run("CNAMELoop", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Set(t, "a.example.test. 60 IN CNAME b.example.test.", "b.example.test. 60 IN CNAME a.example.test.")
		_, err := resolver(s).Resolve(ctx, "a.example.test", false)
		if err == nil || !strings.Contains(err.Error(), "CNAME loop") {
			t.Fatalf("err %v; want a CNAME loop", err)
		}
		if q := s.Queries(); q > 10 {
			t.Errorf("%d queries for a loop", q)
		}
	})
	t.Run("CNAMEChain", func(t *testing.T) {
		s := dnstest.Start(t)
		var recs []string
		for i := range 20 {
			recs = append(recs, fmt.Sprintf("c%d.example.test. 60 IN CNAME c%d.example.test.", i, i+1))
		}
		s.Set(t, recs...)
		_, err := resolver(s).Resolve(ctx, "c0.example.test", false)
		if err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("err %v; want the chain refused", err)
		}
	})
	t.Run("WrongQuestion", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Hook(func(req *dns.Msg) *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("evil.test.", dns.TypeA)
			m.Id, m.Response = req.Id, true
			rr, _ := dns.NewRR("evil.test. 60 IN A 203.0.113.66")
			m.Answer = append(m.Answer, rr)
			return m
		})
		_, err := resolver(s).Resolve(ctx, "sip.example.test", false)
		if err == nil || !strings.Contains(err.Error(), "not to the question") {
			t.Fatalf("err %v; want the answer refused", err)
		}
	})
	t.Run("SERVFAIL", func(t *testing.T) {
		s := dnstest.Start(t)
		s.Set(t, "sip.example.test. 60 IN A 192.0.2.1")
		s.Fail(dns.RcodeServerFailure)
		_, err := resolver(s).Resolve(ctx, "sip.example.test", false)
		if err == nil || !strings.Contains(err.Error(), "SERVFAIL") || errors.Is(err, trunks.ErrNotFound) {
			t.Fatalf("err %v; want SERVFAIL", err)
		}
	})
	t.Run("BadName", func(t *testing.T) {
		s := dnstest.Start(t)
		if _, err := resolver(s).Resolve(ctx, "a..b", false); err == nil {
			t.Fatal("a..b resolved")
		}
	})
}

func TestResolve_Timeout(t *testing.T) {
	s := dnstest.Start(t)
	s.Set(t, "sip.example.test. 60 IN A 192.0.2.1")
	// A dead server first: the next one answers.
	r := &trunks.Resolver{Servers: []string{"127.0.0.1:1", s.Addr}, Timeout: 300 * time.Millisecond}
	ans, err := r.Resolve(context.Background(), "sip.example.test", false)
	if err != nil || !slices.Equal(ans.Addrs, addrs("192.0.2.1")) {
		t.Fatalf("%v %v; want the second server's answer", ans.Addrs, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Resolve(ctx, "sip.example.test", false); err == nil {
		t.Fatal("resolved after the context was cancelled")
	}

	// A silent server: cancelling ends the wait at once, not at the
	// query's timeout.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	silent := &trunks.Resolver{Servers: []string{pc.LocalAddr().String()}, Timeout: time.Minute}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if _, err := silent.Resolve(ctx, "sip.example.test", false); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v; want context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("cancelling took %s", took)
	}
}

func TestFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("# comment\nnameserver 127.0.0.53\nnameserver ::1\noptions timeout:2\n"), 0o644)
	r, err := trunks.FromResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.53:53", "[::1]:53"}; !slices.Equal(r.Servers, want) || r.Timeout != 2*time.Second {
		t.Errorf("servers %v timeout %s; want %v 2s", r.Servers, r.Timeout, want)
	}
	if _, err := trunks.FromResolvConf(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing resolv.conf read")
	}
}

// FuzzResolve: whatever a server answers (any message that unpacks,
// given the right id and question), Resolve neither panics nor returns
// an address that no A or AAAA record of the answer holds, nor more than
// MaxAddrs.
func FuzzResolve(f *testing.F) {
	seed := func(rrs ...string) {
		m := new(dns.Msg)
		m.SetQuestion("sip.example.test.", dns.TypeA)
		m.Response = true
		for _, r := range rrs {
			rr, err := dns.NewRR(r)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed("sip.example.test. 60 IN A 192.0.2.1")
	seed("sip.example.test. 60 IN CNAME sip.example.test.")
	seed("sip.example.test. 60 IN CNAME a.test.", "a.test. 60 IN A 192.0.2.2", "evil.test. 60 IN A 203.0.113.9")
	seed("_sip._udp.sip.example.test. 60 IN SRV 1 1 5060 sip.example.test.", "sip.example.test. 60 IN AAAA 2001:db8::1")
	seed(dnstest.Records("sip.example.test.", 70, 1)...)
	s := dnstest.Start(f)
	var mu sync.Mutex
	var current *dns.Msg
	s.Hook(func(req *dns.Msg) *dns.Msg {
		mu.Lock()
		defer mu.Unlock()
		m := current.Copy()
		m.Id, m.Response, m.Question = req.Id, true, req.Question
		return m
	})
	r := &trunks.Resolver{Servers: []string{s.Addr}, Timeout: time.Second}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		held := map[netip.Addr]bool{}
		for _, rr := range m.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				a, _ := netip.AddrFromSlice(rr.A.To4())
				held[a.Unmap()] = true
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(rr.AAAA.To16())
				held[a.Unmap()] = true
			}
		}
		mu.Lock()
		current = m
		mu.Unlock()
		ans, err := r.Resolve(context.Background(), "sip.example.test", true)
		if err != nil {
			return
		}
		if len(ans.Addrs) > trunks.MaxAddrs {
			t.Errorf("%d addresses", len(ans.Addrs))
		}
		for _, a := range ans.Addrs {
			if !held[a] {
				t.Errorf("%s is in no record of the answer", a)
			}
		}
	})
}

// TestResolve_SRVBounds: SRV targets repeated across the services count
// once; more than MaxSRVTargets distinct ones are refused; a name that
// exists with no address nor SRV record is not called NXDOMAIN.
func TestResolve_SRVBounds(t *testing.T) {
	s := dnstest.Start(t)
	var recs []string
	for _, svc := range trunks.SRVServices {
		for i := range trunks.MaxSRVTargets {
			recs = append(recs, fmt.Sprintf("%s.example.test. 60 IN SRV 10 10 5060 edge%d.example.test.", svc, i))
		}
	}
	for i := range trunks.MaxSRVTargets {
		recs = append(recs, fmt.Sprintf("edge%d.example.test. 60 IN A 192.0.2.%d", i, i+1))
	}
	s.Set(t, recs...)
	r := resolver(s)
	ans, err := r.Resolve(context.Background(), "example.test", true)
	if err != nil || len(ans.Addrs) != trunks.MaxSRVTargets {
		t.Fatalf("%v %v; want %d addresses", ans.Addrs, err, trunks.MaxSRVTargets)
	}
	// _sips._tcp now names one more target: 9 distinct.
	s.Set(t, "_sips._tcp.example.test. 60 IN SRV 10 10 5061 extra.example.test.")
	if _, err := r.Resolve(context.Background(), "example.test", true); err == nil || !strings.Contains(err.Error(), "SRV targets") {
		t.Errorf("err %v; want too many SRV targets", err)
	}

	s2 := dnstest.Start(t)
	s2.Set(t, "bare.example.test. 60 IN TXT \"nothing\"")
	_, err = resolver(s2).Resolve(context.Background(), "bare.example.test", true)
	if !errors.Is(err, trunks.ErrNotFound) || !strings.Contains(err.Error(), "no A, AAAA or SIP SRV record") {
		t.Errorf("err %v; want no record, not NXDOMAIN", err)
	}
}

// TestResolve_Partial: a query that fails (here an SRV target answering
// more records than MaxRecords) is an error returned with what the other
// queries answered, never with an address of the failed one.
func TestResolve_Partial(t *testing.T) {
	s := dnstest.Start(t)
	recs := append(dnstest.Records("hostile.example.test.", trunks.MaxRecords+1, 60),
		"_sip._udp.example.test. 60 IN SRV 10 50 5060 hostile.example.test.",
		"_sip._tcp.example.test. 60 IN SRV 10 50 5060 edge.example.test.",
		"edge.example.test. 60 IN A 192.0.2.1",
	)
	s.Set(t, recs...)
	ans, err := resolver(s).Resolve(context.Background(), "example.test", true)
	if err == nil || !strings.Contains(err.Error(), "records in the answer") {
		t.Errorf("err %v; want the hostile target's answer refused", err)
	}
	if want := addrs("192.0.2.1"); !slices.Equal(ans.Addrs, want) {
		t.Errorf("addresses %v; want the healthy target's %v only", ans.Addrs, want)
	}
}
