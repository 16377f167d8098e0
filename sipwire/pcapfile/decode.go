package pcapfile

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/sipguard/sipguard/sipwire"
)

// EtherTypes this reader follows.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100 // 802.1Q
	etherQinQ = 0x88a8 // 802.1ad, the outer tag of two
)

// IP protocol numbers: the transports and the IPv6 extension headers.
const (
	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoDestOpts = 60
)

// decode reads one frame of link type lt down to its UDP or TCP payload.
// It returns the packet, with Payload a slice of data, or the reason it
// is skipped. What it accepts, and the reasons, are those of the gopacket
// decoders this reader once used: a frame that is not IP is not_ip, a
// damaged IP or transport header no_response.
func decode(lt int, data []byte) (sipwire.Packet, string) {
	var etherType uint16
	switch lt {
	case linkTypeEthernet:
		if len(data) < 14 {
			return sipwire.Packet{}, SkipNotIP
		}
		etherType, data = binary.BigEndian.Uint16(data[12:]), data[14:]
	case linkTypeLinuxSLL:
		// Packet type, ARPHRD type, address length, address (8),
		// protocol: 16 bytes.
		if len(data) < 16 {
			return sipwire.Packet{}, SkipNotIP
		}
		etherType, data = binary.BigEndian.Uint16(data[14:]), data[16:]
	case linkTypeLinuxSLL2:
		// Protocol type, reserved, interface index, ARPHRD type, packet
		// type, address length, address (8): 20 bytes.
		if len(data) < 20 {
			return sipwire.Packet{}, SkipNotIP
		}
		etherType, data = binary.BigEndian.Uint16(data), data[20:]
	case linkTypeRaw, linkTypeRawOld1, linkTypeRawOld2:
		if len(data) == 0 {
			return sipwire.Packet{}, SkipNotIP
		}
		switch data[0] >> 4 {
		case 4:
			return decodeIPv4(data)
		case 6:
			return decodeIPv6(data)
		}
		return sipwire.Packet{}, SkipNotIP
	case linkTypeNull, linkTypeLoop:
		// The protocol family, 4 bytes in the byte order of the host
		// that wrote the capture: a small number, so the order shows.
		if len(data) < 4 {
			return sipwire.Packet{}, SkipNotIP
		}
		family := binary.LittleEndian.Uint32(data)
		if data[0] == 0 && data[1] == 0 {
			family = binary.BigEndian.Uint32(data)
		}
		switch family {
		case 2: // AF_INET
			return decodeIPv4(data[4:])
		case 10, 24, 28, 30: // AF_INET6: Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			return decodeIPv6(data[4:])
		}
		return sipwire.Packet{}, SkipNotIP
	case linkTypeIPv4:
		return decodeIPv4(data)
	case linkTypeIPv6:
		return decodeIPv6(data)
	default:
		return sipwire.Packet{}, SkipLinkType
	}
	// VLAN tags: each 4 bytes, the last with the EtherType of the packet.
	for etherType == etherVLAN || etherType == etherQinQ {
		if len(data) < 4 {
			return sipwire.Packet{}, SkipNotIP
		}
		etherType, data = binary.BigEndian.Uint16(data[2:]), data[4:]
	}
	switch etherType {
	case etherIPv4:
		return decodeIPv4(data)
	case etherIPv6:
		return decodeIPv6(data)
	}
	return sipwire.Packet{}, SkipNotIP
}

// decodeIPv4 reads an IPv4 packet. Its total length cuts off link-layer
// padding; a length of 0 is a segment of TCP segmentation offload, as
// long as what was captured.
func decodeIPv4(b []byte) (sipwire.Packet, string) {
	var p sipwire.Packet
	if len(b) < 20 {
		return p, SkipNoResponse
	}
	if flags := binary.BigEndian.Uint16(b[6:]); flags&0x2000 != 0 || flags&0x1fff != 0 { // more fragments, or an offset
		return p, SkipFragment
	}
	ihl, total := int(b[0]&0x0f)*4, int(binary.BigEndian.Uint16(b[2:]))
	if total == 0 {
		total = len(b)
	}
	if total < 20 || ihl < 20 || ihl > total || ihl > len(b) || !optionsValid(b[20:ihl]) {
		return p, SkipNoResponse
	}
	if len(b) > total {
		b = b[:total]
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	return decodeTransport(p, b[9], b[ihl:])
}

// decodeIPv6 reads an IPv6 packet and its extension headers. Its payload
// length cuts off link-layer padding (a jumbogram, of length 0, is
// skipped).
func decodeIPv6(b []byte) (sipwire.Packet, string) {
	var p sipwire.Packet
	if len(b) < 40 {
		return p, SkipNoResponse
	}
	total, proto, rest := int(binary.BigEndian.Uint16(b[4:])), b[6], b[40:]
	if total == 0 {
		return p, SkipNoResponse
	}
	if len(rest) > total {
		rest = rest[:total]
	}
	if proto == protoHopByHop { // read with the fixed header, as gopacket
		n, ok := extLen(rest, true)
		if !ok {
			return p, SkipNoResponse
		}
		proto, rest = rest[0], rest[n:]
	}
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	// Extension headers: each at least 8 bytes of the packet, so the
	// loop ends.
	for {
		switch proto {
		case protoHopByHop, protoDestOpts, protoRouting:
			n, ok := extLen(rest, proto != protoRouting)
			// A routing header of type 0 only (with its addresses),
			// as gopacket.
			if !ok || proto == protoRouting && (rest[2] != 0 || (n-8)%16 != 0) {
				return p, SkipNoResponse
			}
			proto, rest = rest[0], rest[n:]
			continue
		case protoFragment:
			if len(rest) < 8 {
				return p, SkipNoResponse
			}
			return p, SkipFragment
		}
		return decodeTransport(p, proto, rest)
	}
}

// extLen returns the length of the IPv6 extension header at the start of
// b, and whether it lies within b (and, for tlv, its options within it).
func extLen(b []byte, tlv bool) (int, bool) {
	if len(b) < 8 {
		return 0, false
	}
	n := (int(b[1]) + 1) * 8
	if len(b) < n {
		return 0, false
	}
	if tlv {
		// Options of a type, a length and a value; type 0 is a pad
		// byte.
		for o := b[2:n]; len(o) > 0; {
			if o[0] == 0 {
				o = o[1:]
				continue
			}
			if len(o) < 2 || int(o[1])+2 > len(o) {
				return 0, false
			}
			o = o[int(o[1])+2:]
		}
	}
	return n, true
}

// optionsValid reports whether IPv4 options (a kind, a length of at
// least 3 bytes and a value; kind 1 a pad byte, kind 0 the end) lie
// within their header.
func optionsValid(b []byte) bool {
	for len(b) > 0 {
		switch b[0] {
		case 0:
			return true
		case 1:
			b = b[1:]
		default:
			if len(b) < 3 || b[1] < 3 || int(b[1]) > len(b) {
				return false
			}
			b = b[b[1]:]
		}
	}
	return true
}

// decodeTransport reads the UDP or TCP header of p's IP payload b and
// sets p's ports and payload: a SIP response's, or the packet is skipped.
func decodeTransport(p sipwire.Packet, proto byte, b []byte) (sipwire.Packet, string) {
	switch proto {
	case protoUDP:
		if len(b) < 8 {
			return p, SkipNoResponse
		}
		// The UDP length cuts the payload when it is within what was
		// captured; 0 is a jumbogram's.
		switch n := int(binary.BigEndian.Uint16(b[4:])); {
		case n >= 8:
			p.Payload = b[8:min(n, len(b))]
		case n == 0:
			p.Payload = b[8:]
		default:
			return p, SkipNoResponse
		}
	case protoTCP:
		if len(b) < 20 {
			return p, SkipNoResponse
		}
		n := int(b[12]>>4) * 4
		// Its options are not read: gopacket handed on the payload of
		// a segment whose options it could not read.
		if n < 20 || n > len(b) {
			return p, SkipNoResponse
		}
		p.Payload, p.TCP = b[n:], true
	default:
		return p, SkipNoResponse
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:])
	p.DstPort = binary.BigEndian.Uint16(b[2:])
	if !bytes.HasPrefix(p.Payload, []byte("SIP/2.0 ")) {
		return p, SkipNoResponse
	}
	return p, ""
}
