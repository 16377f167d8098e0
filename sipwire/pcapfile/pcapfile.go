// Package pcapfile reads the SIP responses of a packet capture (pcap or
// pcapng, as tcpdump, Wireshark or sngrep write them, gzip-compressed or
// not) as sipwire.Packets, for `sipguard scan --pcap`. It is pure Go
// (gopacket's pcapgo and layers; never gopacket/pcap, which needs cgo).
//
// It hands on what the kernel filter of the live sensor passes: UDP and
// TCP payloads that start a SIP response ("SIP/2.0 "). TCP is taken
// segment by segment, as the live sensor sees it: no stream reassembly, so
// a response split across segments is lost. IP fragments are skipped.
package pcapfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/sipguard/sipguard/sipwire"
)

// Link types, as the capture file writes them: gopacket v1.1.19 keeps
// them in a byte (layers.LinkType), which cannot hold Linux SLL2 (276,
// tcpdump -i any since libpcap 1.10), so this reader reads them itself.
const (
	linkTypeIPv4      = 228
	linkTypeIPv6      = 229
	linkTypeLinuxSLL2 = 276
	linkTypeUnknown   = 1 << 16
)

// Bounds on what a capture file's lengths may make the reader allocate:
// tcpdump's largest snaplen, and a pcapng block with such a packet.
const (
	maxSnaplen = 262144
	maxBlock   = maxSnaplen + 64<<10
)

// Reasons a packet is skipped: the keys of Stats.Skipped.
const (
	SkipNoResponse = "no_response" // no UDP or TCP payload starting "SIP/2.0 " (requests, RTP, ...)
	SkipNotIP      = "not_ip"      // not IPv4 or IPv6 over a known link type (ARP, ...)
	SkipFragment   = "fragment"    // an IP fragment: not reassembled
	SkipLinkType   = "link_type"   // a link type this reader does not know
)

// Stats counts the packets read.
type Stats struct {
	Packets   int64            // packets in the capture
	Responses int64            // packets handed on
	Bytes     int64            // captured bytes read
	Skipped   map[string]int64 // by reason
}

// packetReader is what pcapgo's two readers share.
type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader reads SIP response packets from a capture.
type Reader struct {
	r        packetReader
	linkType func(ci gopacket.CaptureInfo) int
	stats    Stats
}

// NewReader reads the capture's header: pcap (microsecond or nanosecond,
// either byte order) or pcapng, gzip-compressed or not.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip header: %w", err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
		magic, err = br.Peek(4)
	}
	if err != nil {
		return nil, fmt.Errorf("read capture header: %w", err)
	}
	rd := &Reader{stats: Stats{Skipped: map[string]int64{}}}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		first := ngFirstLinkType(br)
		ng, err := pcapgo.NewNgReader(&ngLimiter{r: br}, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("read pcapng header: %w", err)
		}
		rd.r = ng
		rd.linkType = func(ci gopacket.CaptureInfo) int {
			iface, err := ng.Interface(ci.InterfaceIndex)
			if err != nil {
				return linkTypeUnknown
			}
			if lt := int(iface.LinkType); lt == first&0xff {
				return first // the byte gopacket kept of the first interface's
			} else {
				return lt
			}
		}
		return rd, nil
	}
	// The header's link type is 32 bits in the file's byte order (the
	// magic a1b2c3d4, or a1b23c4d for nanoseconds, written in it).
	hdr, err := br.Peek(24)
	if err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	order := binary.ByteOrder(binary.BigEndian)
	if hdr[0] == 0xd4 || hdr[0] == 0x4d {
		order = binary.LittleEndian
	}
	lt := int(order.Uint32(hdr[20:]) & 0xffff)
	p, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("read pcap header (not a pcap or pcapng file?): %w", err)
	}
	if p.Snaplen() > maxSnaplen {
		// pcapgo allocates what a record's length says, up to the
		// snaplen the header gives; a larger packet is an error.
		p.SetSnaplen(maxSnaplen)
	}
	rd.linkType = func(gopacket.CaptureInfo) int { return lt }
	rd.r = p
	return rd, nil
}

// ngFirstLinkType returns the link type of a pcapng file's first
// interface, read ahead in br: the section header block (its length in
// the byte order of its byte-order magic), then the interface description
// block, whose link type is 16 bits. It returns linkTypeUnknown when the
// blocks are not there.
func ngFirstLinkType(br *bufio.Reader) int {
	shb, err := br.Peek(12)
	if err != nil {
		return linkTypeUnknown
	}
	order := binary.ByteOrder(binary.BigEndian)
	if bytes.Equal(shb[8:], []byte{0x4d, 0x3c, 0x2b, 0x1a}) {
		order = binary.LittleEndian
	}
	n := int(order.Uint32(shb[4:]))
	if n < 12 || n > br.Size()-16 {
		return linkTypeUnknown
	}
	b, err := br.Peek(n + 10)
	if err != nil || order.Uint32(b[n:]) != 1 {
		return linkTypeUnknown
	}
	return int(order.Uint16(b[n+8:]))
}

// Next returns the next packet that carries a SIP response, with its
// number in the capture (from 1), or io.EOF at the end. A capture cut
// short (a file still being written) ends with io.ErrUnexpectedEOF.
func (r *Reader) Next() (sipwire.Packet, int64, error) {
	for {
		data, ci, err := r.r.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sipwire.Packet{}, 0, io.EOF
			}
			return sipwire.Packet{}, 0, fmt.Errorf("read packet %d: %w", r.stats.Packets+1, err)
		}
		r.stats.Packets++
		r.stats.Bytes += int64(len(data))
		p, skip := decode(r.linkType(ci), data)
		if skip != "" {
			r.stats.Skipped[skip]++
			continue
		}
		r.stats.Responses++
		p.Time = ci.Timestamp.UTC() // a capture's times are UTC: no output depends on the reader's zone
		return p, r.stats.Packets, nil
	}
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats {
	st := r.stats
	st.Skipped = make(map[string]int64, len(r.stats.Skipped))
	for k, v := range r.stats.Skipped {
		st.Skipped[k] = v
	}
	return st
}

// decode reads one frame of link type lt down to its UDP or TCP payload.
func decode(lt int, data []byte) (sipwire.Packet, string) {
	var first gopacket.Decoder
	switch lt {
	case int(layers.LinkTypeEthernet), int(layers.LinkTypeLinuxSLL), int(layers.LinkTypeRaw), int(layers.LinkTypeNull), int(layers.LinkTypeLoop):
		first = layers.LinkType(lt)
	case 12, 14: // raw IP on some systems (DLT_RAW)
		first = layers.LinkTypeRaw
	case linkTypeIPv4:
		first = layers.LayerTypeIPv4
	case linkTypeIPv6:
		first = layers.LayerTypeIPv6
	case linkTypeLinuxSLL2:
		// Protocol type (2 bytes), reserved, interface index, ARPHRD
		// type, packet type, address length, address (8): 20 bytes.
		if len(data) < 20 {
			return sipwire.Packet{}, SkipNotIP
		}
		first = layers.EthernetType(binary.BigEndian.Uint16(data))
		data = data[20:]
	default:
		return sipwire.Packet{}, SkipLinkType
	}
	pkt := gopacket.NewPacket(data, first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var p sipwire.Packet
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			return p, SkipFragment
		}
		p.Src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		p.Dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	case *layers.IPv6:
		if pkt.Layer(layers.LayerTypeIPv6Fragment) != nil {
			return p, SkipFragment
		}
		p.Src, _ = netip.AddrFromSlice(ip.SrcIP.To16())
		p.Dst, _ = netip.AddrFromSlice(ip.DstIP.To16())
	default:
		return p, SkipNotIP
	}
	switch tl := pkt.TransportLayer().(type) {
	case *layers.UDP:
		p.SrcPort, p.DstPort, p.Payload = uint16(tl.SrcPort), uint16(tl.DstPort), tl.Payload
	case *layers.TCP:
		p.SrcPort, p.DstPort, p.Payload, p.TCP = uint16(tl.SrcPort), uint16(tl.DstPort), tl.Payload, true
	default:
		return p, SkipNoResponse
	}
	if !bytes.HasPrefix(p.Payload, []byte("SIP/2.0 ")) {
		return p, SkipNoResponse
	}
	return p, ""
}

// ngLimiter passes a pcapng stream on to pcapgo block by block, and
// refuses a block whose lengths would make pcapgo allocate more than
// maxBlock (it allocates a packet's length as the file gives it, up to
// 4 GiB): a clear error instead of memory exhausted by a damaged file.
type ngLimiter struct {
	r     *bufio.Reader
	order binary.ByteOrder
	left  int // bytes of the current block not yet passed on
}

func (l *ngLimiter) Read(p []byte) (int, error) {
	if l.left == 0 {
		if err := l.next(); err != nil {
			return 0, err
		}
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= n
	return n, err
}

// next checks the header of the block that starts here.
func (l *ngLimiter) next() error {
	hdr, err := l.r.Peek(24)
	if len(hdr) < 12 {
		if len(hdr) == 0 {
			return err
		}
		l.left = len(hdr) // a cut block: pcapgo reports it
		return nil
	}
	const shb, spb, epb = 0x0a0d0d0a, 3, 6
	if binary.BigEndian.Uint32(hdr) == shb {
		l.order = binary.BigEndian
		if bytes.Equal(hdr[8:12], []byte{0x4d, 0x3c, 0x2b, 0x1a}) {
			l.order = binary.LittleEndian
		}
	}
	if l.order == nil {
		return errors.New("pcapng: no section header first")
	}
	typ, n := l.order.Uint32(hdr), int(l.order.Uint32(hdr[4:]))
	bad := n < 12 || n > maxBlock
	switch {
	case typ == epb && len(hdr) >= 24:
		bad = bad || int(l.order.Uint32(hdr[20:])) > n-32 // the captured length
	case typ == spb:
		bad = bad || int(l.order.Uint32(hdr[8:])) > maxBlock // the original length, which pcapgo allocates
	}
	if bad {
		return fmt.Errorf("pcapng block of type %d: bad length %d (at most %d bytes are read)", typ, n, maxBlock)
	}
	l.left = n
	return nil
}
