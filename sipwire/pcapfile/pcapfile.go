// Package pcapfile reads the SIP responses of a packet capture (pcap or
// pcapng, as tcpdump, Wireshark or sngrep write them, gzip-compressed or
// not) as sipwire.Packets, for `sipguard scan --pcap`. It uses the
// standard library only: a packet decoding library such as gopacket
// registers hundreds of protocols at init, a cost every sipguard command
// would pay at start (24 ms, a sixth of a whole log scan).
//
// It hands on what the kernel filter of the live sensor passes: UDP and
// TCP payloads that start a SIP response ("SIP/2.0 "). TCP is taken
// segment by segment, as the live sensor sees it: no stream reassembly, so
// a response split across segments is lost. IP fragments are skipped, and
// so are tunnels (IP in IP, GRE): their outer addresses are not the
// attacker's.
package pcapfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/sipguard/sipguard/sipwire"
)

// Link types (LINKTYPE_* of the pcap and pcapng formats).
const (
	linkTypeNull      = 0
	linkTypeEthernet  = 1
	linkTypeRawOld1   = 12 // raw IP on some BSDs (DLT_RAW)
	linkTypeRawOld2   = 14
	linkTypeRaw       = 101
	linkTypeLoop      = 108 // OpenBSD loopback
	linkTypeLinuxSLL  = 113 // tcpdump -i any before libpcap 1.10
	linkTypeIPv4      = 228
	linkTypeIPv6      = 229
	linkTypeLinuxSLL2 = 276 // tcpdump -i any since libpcap 1.10
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

// frame is a packet as the capture file holds it. Data is valid until
// the next read.
type frame struct {
	linkType int
	time     time.Time
	data     []byte
}

// Reader reads SIP response packets from a capture.
type Reader struct {
	read  func() (frame, error) // the next packet of the pcap or pcapng file
	stats Stats
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
		ng := &ngReader{r: br}
		if err := ng.start(); err != nil {
			return nil, fmt.Errorf("read pcapng header: %w", err)
		}
		rd.read = ng.next
		return rd, nil
	}
	p, err := newPcapReader(br)
	if err != nil {
		return nil, err
	}
	rd.read = p.next
	return rd, nil
}

// Next returns the next packet that carries a SIP response, with its
// number in the capture (from 1), or io.EOF at the end. A capture cut
// short (a file still being written) ends with io.ErrUnexpectedEOF.
func (r *Reader) Next() (sipwire.Packet, int64, error) {
	for {
		f, err := r.read()
		if err != nil {
			if err == io.EOF {
				return sipwire.Packet{}, 0, io.EOF
			}
			return sipwire.Packet{}, 0, fmt.Errorf("read packet %d: %w", r.stats.Packets+1, err)
		}
		r.stats.Packets++
		r.stats.Bytes += int64(len(f.data))
		p, skip := decode(f.linkType, f.data)
		if skip != "" {
			r.stats.Skipped[skip]++
			continue
		}
		r.stats.Responses++
		p.Payload = bytes.Clone(p.Payload) // f.data is read over by the next packet
		p.Time = f.time.UTC()              // a capture's times are UTC: no output depends on the reader's zone
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

// readFull reads len(b) bytes of a record whose first bytes are read: an
// end of file before them all is a capture cut short.
func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// grow returns b resliced to n bytes, reallocated when too small; n is
// bounded by the callers (maxSnaplen, maxBlock).
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// pcapReader reads a classic pcap file: a 24-byte header, then records
// of a 16-byte header and the captured bytes.
type pcapReader struct {
	r        *bufio.Reader
	order    binary.ByteOrder
	fraction int64  // nanoseconds in a unit of the timestamp's fraction
	snaplen  uint32 // at most maxSnaplen: no record is longer
	linkType int
	hdr      [16]byte
	buf      []byte
}

func newPcapReader(r *bufio.Reader) (*pcapReader, error) {
	hdr, err := r.Peek(24)
	if err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	p := &pcapReader{r: r}
	// The magic a1b2c3d4 (microseconds) or a1b23c4d (nanoseconds), in
	// the byte order of the whole file.
	switch binary.BigEndian.Uint32(hdr) {
	case 0xa1b2c3d4:
		p.order, p.fraction = binary.BigEndian, 1000
	case 0xd4c3b2a1:
		p.order, p.fraction = binary.LittleEndian, 1000
	case 0xa1b23c4d:
		p.order, p.fraction = binary.BigEndian, 1
	case 0x4d3cb2a1:
		p.order, p.fraction = binary.LittleEndian, 1
	default:
		return nil, fmt.Errorf("read pcap header (not a pcap or pcapng file?): unknown magic %x", hdr[:4])
	}
	if major, minor := p.order.Uint16(hdr[4:]), p.order.Uint16(hdr[6:]); major != 2 || minor != 4 {
		return nil, fmt.Errorf("read pcap header: unknown version %d.%d", major, minor)
	}
	// A larger packet than the snaplen is an error, so the snaplen
	// bounds what a record's length makes the reader allocate.
	p.snaplen = min(p.order.Uint32(hdr[16:]), maxSnaplen)
	// The link type's upper 16 bits tell of a frame check sequence,
	// which the IP lengths leave out anyway.
	p.linkType = int(p.order.Uint32(hdr[20:]) & 0xffff)
	r.Discard(24)
	return p, nil
}

func (p *pcapReader) next() (frame, error) {
	if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
		return frame{}, err // io.EOF between records, io.ErrUnexpectedEOF within one
	}
	caplen, origlen := p.order.Uint32(p.hdr[8:]), p.order.Uint32(p.hdr[12:])
	if caplen > p.snaplen {
		return frame{}, fmt.Errorf("capture length exceeds snap length: %d > %d", caplen, p.snaplen)
	}
	if caplen > origlen {
		return frame{}, fmt.Errorf("capture length exceeds original packet length: %d > %d", caplen, origlen)
	}
	p.buf = grow(p.buf, int(caplen))
	if err := readFull(p.r, p.buf); err != nil {
		return frame{}, err
	}
	sec, frac := p.order.Uint32(p.hdr[0:]), p.order.Uint32(p.hdr[4:])
	return frame{linkType: p.linkType, time: time.Unix(int64(sec), int64(frac)*p.fraction), data: p.buf}, nil
}

// pcapng block types.
const (
	ngSection     = 0x0a0d0d0a // the same in both byte orders
	ngInterface   = 1
	ngPacket      = 2 // obsolete, but still in old files
	ngSimple      = 3
	ngEnhanced    = 6
	ngByteOrderBE = 0x1a2b3c4d // the section's byte-order magic, read big-endian
	ngByteOrderLE = 0x4d3c2b1a
)

// ngReader reads a pcapng file block by block: sections (each with its
// byte order and its interfaces), interfaces (each with its link type and
// timestamp unit), packets; other blocks are skipped.
type ngReader struct {
	r      *bufio.Reader
	order  binary.ByteOrder // the current section's
	ifaces []ngIface        // the current section's
	block  []byte
}

type ngIface struct {
	linkType int
	snaplen  uint32
	units    uint64 // timestamp units a second
	offset   uint64 // seconds added to the timestamps (if_tsoffset)
}

// start reads the first block, which must be a section header.
func (n *ngReader) start() error {
	typ, body, err := n.readBlock()
	if err != nil {
		return err
	}
	if typ != ngSection {
		return errors.New("no section header first")
	}
	return n.section(body)
}

// readBlock reads the next block and returns its type and body (what lies
// between the two length fields). Its lengths are checked: a multiple of
// 4, at most maxBlock (a damaged file does not make it allocate what a
// length says), the same at both ends.
func (n *ngReader) readBlock() (uint32, []byte, error) {
	hdr, err := n.r.Peek(12)
	if len(hdr) < 8 {
		if len(hdr) == 0 && err == io.EOF {
			return 0, nil, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if binary.BigEndian.Uint32(hdr) == ngSection {
		// A new section, in the byte order its magic tells.
		if len(hdr) < 12 {
			return 0, nil, io.ErrUnexpectedEOF
		}
		switch binary.BigEndian.Uint32(hdr[8:]) {
		case ngByteOrderBE:
			n.order = binary.BigEndian
		case ngByteOrderLE:
			n.order = binary.LittleEndian
		default:
			return 0, nil, fmt.Errorf("pcapng section header: bad byte-order magic %x", hdr[8:12])
		}
	}
	typ, size := n.order.Uint32(hdr), n.order.Uint32(hdr[4:])
	if size < 12 || size%4 != 0 || size > maxBlock {
		return 0, nil, fmt.Errorf("pcapng block of type %#x: bad length %d (a multiple of 4 from 12 to %d)", typ, size, maxBlock)
	}
	n.block = grow(n.block, int(size))
	if err := readFull(n.r, n.block); err != nil {
		return 0, nil, err
	}
	if end := n.order.Uint32(n.block[size-4:]); end != size {
		return 0, nil, fmt.Errorf("pcapng block of type %#x: length %d at its end, %d at its start", typ, end, size)
	}
	return typ, n.block[8 : size-4], nil
}

// tooShort is the error for a block too short for its fixed fields.
func tooShort(what string, body []byte) error {
	return fmt.Errorf("pcapng %s block of %d bytes: too short", what, len(body)+12)
}

// section reads a section header's body: a new section has no interfaces
// yet.
func (n *ngReader) section(body []byte) error {
	if len(body) < 16 {
		return tooShort("section header", body)
	}
	// Version 1.0; libpcap writes 1.2 in some versions, the same format.
	if major, minor := n.order.Uint16(body[4:]), n.order.Uint16(body[6:]); major != 1 || minor != 0 && minor != 2 {
		return fmt.Errorf("pcapng section header: unknown version %d.%d", major, minor)
	}
	n.ifaces = n.ifaces[:0]
	return nil
}

// iface reads an interface description: link type, snaplen and the
// options that set the timestamps' unit and offset.
func (n *ngReader) iface(body []byte) error {
	if len(body) < 8 {
		return tooShort("interface", body)
	}
	in := ngIface{linkType: int(n.order.Uint16(body)), snaplen: n.order.Uint32(body[4:]), units: 1e6}
	for opts := body[8:]; len(opts) >= 4; {
		code, size := n.order.Uint16(opts), int(n.order.Uint16(opts[2:]))
		if code == 0 { // opt_endofopt
			break
		}
		if 4+size > len(opts) {
			return fmt.Errorf("pcapng interface %d: option %d of %d bytes runs past its block", len(n.ifaces), code, size)
		}
		val := opts[4 : 4+size]
		switch {
		case code == 9 && size == 1: // if_tsresol: 10^-x, or 2^-x with the top bit set
			exp := uint64(val[0] & 0x7f)
			switch {
			case val[0]&0x80 != 0 && exp < 64:
				in.units = 1 << exp
			case val[0]&0x80 == 0 && exp < 20:
				in.units = 1
				for range exp {
					in.units *= 10
				}
			default:
				return fmt.Errorf("pcapng interface %d: timestamp resolution %#x out of range", len(n.ifaces), val[0])
			}
		case code == 14 && size == 8: // if_tsoffset
			in.offset = n.order.Uint64(val)
		}
		opts = opts[4+(size+3)&^3:]
	}
	n.ifaces = append(n.ifaces, in)
	return nil
}

// timestamp converts a packet block's timestamp, in the units of
// interface in. The fraction of a second is rounded down to nanoseconds
// (frac < units, so the quotient fits).
func (in *ngIface) timestamp(ts uint64) time.Time {
	hi, lo := bits.Mul64(ts%in.units, 1e9)
	ns, _ := bits.Div64(hi, lo, in.units)
	return time.Unix(int64(ts/in.units+in.offset), int64(ns))
}

// next returns the next packet, reading the blocks before it.
func (n *ngReader) next() (frame, error) {
	for {
		typ, body, err := n.readBlock()
		if err != nil {
			return frame{}, err
		}
		switch typ {
		case ngSection:
			err = n.section(body)
		case ngInterface:
			err = n.iface(body)
		case ngEnhanced, ngPacket:
			return n.packet(typ, body)
		case ngSimple:
			return n.simple(body)
		}
		if err != nil {
			return frame{}, err
		}
	}
}

// packet reads an enhanced packet block, or an obsolete packet block (the
// same but for a 16-bit interface number and a drops count).
func (n *ngReader) packet(typ uint32, body []byte) (frame, error) {
	if len(body) < 20 {
		return frame{}, tooShort("packet", body)
	}
	id := n.order.Uint32(body)
	if typ == ngPacket {
		id = uint32(n.order.Uint16(body))
	}
	if id >= uint32(len(n.ifaces)) {
		return frame{}, fmt.Errorf("pcapng packet of interface %d: the section describes %d interfaces", id, len(n.ifaces))
	}
	in := &n.ifaces[id]
	caplen := n.order.Uint32(body[12:])
	if caplen > uint32(len(body)-20) {
		return frame{}, fmt.Errorf("pcapng packet of %d captured bytes in a block of %d", caplen, len(body)+12)
	}
	ts := uint64(n.order.Uint32(body[4:]))<<32 | uint64(n.order.Uint32(body[8:]))
	return frame{linkType: in.linkType, time: in.timestamp(ts), data: body[20 : 20+caplen]}, nil
}

// simple reads a simple packet block: the first interface's, with no
// timestamp (the zero time), captured up to that interface's snaplen.
func (n *ngReader) simple(body []byte) (frame, error) {
	if len(body) < 4 {
		return frame{}, tooShort("simple packet", body)
	}
	if len(n.ifaces) == 0 {
		return frame{}, errors.New("pcapng simple packet: the section describes no interface")
	}
	in := &n.ifaces[0]
	caplen := min(n.order.Uint32(body), uint32(len(body)-4))
	if in.snaplen != 0 {
		caplen = min(caplen, in.snaplen)
	}
	return frame{linkType: in.linkType, data: body[4 : 4+caplen]}, nil
}
