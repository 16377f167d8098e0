package wirecap

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Packet is a captured response: its addresses, ports and transport
// payload. It has exactly the fields of sipwire.Packet, the sensor's
// input. Payload is the capture's own copy of the bytes the kernel sent.
type Packet struct {
	Time             time.Time
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	TCP              bool
	Payload          []byte
}

// Why a copied packet is not handed on (Stats.Dropped's keys).
const (
	// DropMalformed: not an IPv4 or IPv6 packet whose UDP or TCP header
	// can be read (a bad version, a header longer than the packet).
	DropMalformed = "malformed"
	// DropFragment: a non-first IP fragment, which has no ports.
	DropFragment = "fragment"
	// DropProtocol: neither UDP nor TCP (the rules copy only those).
	DropProtocol = "protocol"
)

// IP protocol numbers and IPv6 extension headers.
const (
	protoTCP      = 6
	protoUDP      = 17
	protoHopByHop = 0
	protoRouting  = 43
	protoFragment = 44
	protoDestOpts = 60
)

// parse reads the IP packet b (as NFLOG copies it: from the network
// header on, up to the snaplen) into p, whose Payload it sets to a slice
// of b. It returns "" or the reason the packet is dropped, and whether
// the capture cut the packet short (the payload then ends early).
func parse(b []byte, p *Packet) (drop string, truncated bool) {
	if len(b) < 1 {
		return DropMalformed, false
	}
	var proto byte
	var rest []byte // from the transport header on
	var total int   // the packet's length by its IP header
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return DropMalformed, false
		}
		ihl := int(b[0]&0x0f) * 4
		total = int(binary.BigEndian.Uint16(b[2:4]))
		if ihl < 20 || len(b) < ihl || total < ihl {
			return DropMalformed, false
		}
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return DropFragment, false
		}
		proto = b[9]
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		rest, total = b[ihl:], total-ihl
	case 6:
		if len(b) < 40 {
			return DropMalformed, false
		}
		total = int(binary.BigEndian.Uint16(b[4:6]))
		proto = b[6]
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		rest = b[40:]
		// Extension headers, up to a bound: each is at least 8 bytes.
	ext:
		for range 8 {
			switch proto {
			case protoHopByHop, protoRouting, protoDestOpts:
				if len(rest) < 8 {
					return DropMalformed, false
				}
				n := (int(rest[1]) + 1) * 8
				if len(rest) < n || total < n {
					return DropMalformed, false
				}
				proto, rest, total = rest[0], rest[n:], total-n
				continue
			case protoFragment:
				if len(rest) < 8 || total < 8 {
					return DropMalformed, false
				}
				if binary.BigEndian.Uint16(rest[2:4])&0xfff8 != 0 {
					return DropFragment, false
				}
				proto, rest, total = rest[0], rest[8:], total-8
				continue
			}
			break ext
		}
	default:
		return DropMalformed, false
	}
	// rest is what was captured of the transport header and payload;
	// total is their length on the wire.
	var hdr int
	switch proto {
	case protoUDP:
		if len(rest) < 8 {
			return DropMalformed, false
		}
		hdr = 8
		if ul := int(binary.BigEndian.Uint16(rest[4:6])); ul >= 8 && ul < total {
			total = ul // the UDP length bounds the payload more tightly
		}
	case protoTCP:
		if len(rest) < 20 {
			return DropMalformed, false
		}
		hdr = int(rest[12]>>4) * 4
		if hdr < 20 || len(rest) < hdr {
			return DropMalformed, false
		}
		p.TCP = true
	default:
		return DropProtocol, false
	}
	if total < hdr {
		return DropMalformed, false
	}
	p.SrcPort = binary.BigEndian.Uint16(rest[0:2])
	p.DstPort = binary.BigEndian.Uint16(rest[2:4])
	payload := rest[hdr:]
	if want := total - hdr; len(payload) > want {
		payload = payload[:want] // link-layer padding, never in a packet's length
	} else if len(payload) < want {
		truncated = true
	}
	p.Payload = payload
	return "", truncated
}
