//go:build linux

package firewall_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sipguard/sipguard/firewall"
)

// allow100k returns 100,000 IPv4 allowlist entries, none adjacent to
// another (10.0.0.0, 10.0.0.2, ...), so that none merge: 100,000 ranges
// in allow4.
func allow100k() []netip.Prefix {
	out := make([]netip.Prefix, 0, 100000)
	for i := range 100000 {
		out = append(out, netip.PrefixFrom(v4(2*i), 32))
	}
	return out
}

// BenchmarkChainAllow100k measures packets per second through sipguard's
// chain (strict policy on 5060/udp, the sender learned: every lookup of
// the chain runs, the packet is accepted by learn4) with 100,000 entries
// in allow4 against an empty allowlist, and reports their ratio
// (allow100k-pkts/s over empty-pkts/s). The sender is in another
// namespace, over a veth pair; veth delivers the packet within the
// sender's system call, so the sender's rate is the receive path's. The
// two tables alternate over rounds so that a load on the machine hits
// both alike. Run it with -benchtime=1x (each run takes a few seconds):
//
//	go test -run '^$' -bench ChainAllow100k -benchtime=1x ./firewall/
func BenchmarkChainAllow100k(b *testing.B) {
	ns, peer := newNS(b), newNS(b)
	veth(b, ns, peer, "198.18.0.2")
	ctx := context.Background()
	n := newNFT(b, ns, firewall.NFTOptions{Policy: firewall.Policy{Mode: firewall.PolicyStrict, SIPPorts: parsePorts(b, "5060/udp")}})
	if err := n.Learn(ctx, firewall.Learned{Addr: netip.MustParseAddr("198.18.0.2"), Timeout: time.Hour}); err != nil {
		b.Fatal(err)
	}
	var sink *net.UDPConn
	var conn *net.UDPConn
	inNS(b, ns, func() {
		var err error
		// A listener that never reads: its queue fills and the kernel
		// drops at the socket, after the chain, with no ICMP error.
		if sink, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.0.1"), Port: 5060}); err != nil {
			b.Fatal(err)
		}
	})
	defer sink.Close()
	inNS(b, peer, func() {
		var err error
		if conn, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.0.2")}, &net.UDPAddr{IP: net.ParseIP("198.18.0.1"), Port: 5060}); err != nil {
			b.Fatal(err)
		}
	})
	defer conn.Close()
	msg := []byte("OPTIONS sip:pbx SIP/2.0\r\n\r\n")
	const packets = 100000
	rate := func() float64 {
		start := time.Now()
		for range packets {
			if _, err := conn.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		return packets / time.Since(start).Seconds()
	}
	rate() // warm up: neighbour discovery, caches
	big := allow100k()
	var empty, full float64
	const rounds = 3
	b.ResetTimer()
	for range b.N {
		for range rounds {
			if err := n.SetAllow(ctx, nil); err != nil {
				b.Fatal(err)
			}
			empty += rate()
			if err := n.SetAllow(ctx, big); err != nil {
				b.Fatal(err)
			}
			full += rate()
		}
	}
	b.StopTimer()
	if got := len(listSet(b, ns, "allow4")); got != len(big) {
		b.Fatalf("nft lists %d elements in allow4; want %d", got, len(big))
	}
	var learned uint64
	for _, r := range listChain(b, ns, "input") {
		if r.Comment == "sipguard learn4 udp" {
			learned = r.Packets
		}
	}
	if want := uint64(packets * (1 + 2*rounds*b.N)); learned != want {
		b.Fatalf("learn4 udp accepted %d packets; want %d (every packet through the whole chain)", learned, want)
	}
	runs := float64(rounds * b.N)
	b.ReportMetric(empty/runs, "empty-pkts/s")
	b.ReportMetric(full/runs, "allow100k-pkts/s")
	b.ReportMetric(full/empty, "ratio")
}
