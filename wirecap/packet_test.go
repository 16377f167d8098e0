package wirecap

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// ip4 builds an IPv4 packet: header with optBytes of options, then l4.
func ip4(proto byte, optBytes int, fragOff uint16, l4 []byte) []byte {
	ihl := 20 + optBytes
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+len(l4)))
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[9] = proto
	copy(b[12:], []byte{192, 0, 2, 10})
	copy(b[16:], []byte{203, 0, 113, 7})
	return append(b, l4...)
}

// ip6 builds an IPv6 packet with the extension headers ext (each a next
// header value and its bytes) before l4.
func ip6(proto byte, l4 []byte, ext ...[]byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	next := proto
	var body []byte
	for i := len(ext) - 1; i >= 0; i-- {
		h := append([]byte(nil), ext[i]...)
		h[0] = next
		next = ext[i][0]
		body = append(h, body...)
	}
	body = append(body, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(body)))
	b[6] = next
	a := netip.MustParseAddr("2001:db8::10").As16()
	copy(b[8:], a[:])
	a = netip.MustParseAddr("2001:db8::bad").As16()
	copy(b[24:], a[:])
	return append(b, body...)
}

func udp(payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], 5060)
	binary.BigEndian.PutUint16(b[2:], 5062)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func tcp(optBytes int, payload string) []byte {
	h := 20 + optBytes
	b := make([]byte, h, h+len(payload))
	binary.BigEndian.PutUint16(b[0:], 5060)
	binary.BigEndian.PutUint16(b[2:], 40000)
	b[12] = byte(h/4) << 4
	return append(b, payload...)
}

// TestParse: the addresses, ports and payload of IPv4 and IPv6 packets,
// with IP options, TCP options and IPv6 extension headers; a packet cut
// by the snaplen is handed on marked truncated; padding past the IP
// length is not payload; fragments, other protocols and broken headers
// are dropped with their reason.
func TestParse(t *testing.T) {
	const resp = "SIP/2.0 401 Unauthorized\r\n"
	hopByHop := []byte{protoHopByHop, 0, 0, 0, 0, 0, 0, 0}
	fragFirst := []byte{protoFragment, 0, 0, 1, 0, 0, 0, 1} // offset 0, more fragments
	fragLater := []byte{protoFragment, 0, 0x05, 0xa8, 0, 0, 0, 1}
	for _, c := range []struct {
		name      string
		b         []byte
		drop      string
		truncated bool
		payload   string
		tcp       bool
		v6        bool
	}{
		{name: "udp4", b: ip4(protoUDP, 0, 0, udp(resp)), payload: resp},
		{name: "udp4 ip options", b: ip4(protoUDP, 8, 0, udp(resp)), payload: resp},
		{name: "tcp4 options", b: ip4(protoTCP, 0, 0, tcp(12, resp)), payload: resp, tcp: true},
		{name: "udp4 padded", b: append(ip4(protoUDP, 0, 0, udp(resp)), 0, 0, 0, 0), payload: resp},
		{name: "udp4 cut", b: ip4(protoUDP, 0, 0, udp(resp))[:40], truncated: true, payload: resp[:12]},
		{name: "udp6", b: ip6(protoUDP, udp(resp)), payload: resp, v6: true},
		{name: "tcp6 hop-by-hop", b: ip6(protoTCP, tcp(0, resp), hopByHop), payload: resp, tcp: true, v6: true},
		{name: "udp6 first fragment", b: ip6(protoUDP, udp(resp), fragFirst), payload: resp, v6: true},
		{name: "udp6 later fragment", b: ip6(protoUDP, udp(resp), fragLater), drop: DropFragment},
		{name: "udp4 later fragment", b: ip4(protoUDP, 0, 185, udp(resp)), drop: DropFragment},
		{name: "icmp", b: ip4(1, 0, 0, make([]byte, 8)), drop: DropProtocol},
		{name: "empty", b: nil, drop: DropMalformed},
		{name: "version 5", b: append([]byte{0x50}, make([]byte, 40)...), drop: DropMalformed},
		{name: "ihl too long", b: ip4(protoUDP, 0, 0, udp(resp))[:20], drop: DropMalformed},
		{name: "tcp offset past end", b: ip4(protoTCP, 0, 0, tcp(0, ""))[:30], drop: DropMalformed},
		{name: "tcp offset under 20", b: func() []byte { b := ip4(protoTCP, 0, 0, tcp(0, resp)); b[32] = 0x40; return b }(), drop: DropMalformed},
	} {
		var p Packet
		drop, short := parse(c.b, &p)
		if drop != c.drop || short != c.truncated {
			t.Errorf("%s: drop %q truncated %v; want %q %v", c.name, drop, short, c.drop, c.truncated)
			continue
		}
		if drop != "" {
			continue
		}
		src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.7")
		dport := uint16(5062)
		if c.v6 {
			src, dst = netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::bad")
		}
		if c.tcp {
			dport = 40000
		}
		if string(p.Payload) != c.payload || p.TCP != c.tcp || p.Src != src || p.Dst != dst || p.SrcPort != 5060 || p.DstPort != dport {
			t.Errorf("%s: %+v", c.name, p)
		}
	}
}

// FuzzParse: any bytes the kernel could copy: no panic, and a payload
// handed on lies within the packet.
func FuzzParse(f *testing.F) {
	f.Add(ip4(protoUDP, 0, 0, udp("SIP/2.0 401 x")))
	f.Add(ip6(protoTCP, tcp(4, "SIP/2.0 200 OK"), []byte{protoDestOpts, 0, 0, 0, 0, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if drop, _ := parse(b, &p); drop == "" && len(p.Payload) > len(b) {
			t.Fatalf("payload of %d bytes from a packet of %d", len(p.Payload), len(b))
		}
	})
}
