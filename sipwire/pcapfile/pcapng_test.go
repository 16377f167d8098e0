package pcapfile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/sipwire/pcapfile"
)

// order is a byte order that appends, as binary.BigEndian.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// ngBlock is a pcapng block of type typ and body, in byte order o: the
// body padded to 4 bytes between the two lengths.
func ngBlock(o order, typ uint32, body ...[]byte) []byte {
	b := o.AppendUint32(nil, typ)
	b = o.AppendUint32(b, 0)
	for _, part := range body {
		b = append(b, part...)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	o.PutUint32(b[4:], uint32(len(b)+4))
	return o.AppendUint32(b, uint32(len(b)+4))
}

func ngSection(o order) []byte {
	body := o.AppendUint32(nil, 0x1a2b3c4d)
	body = o.AppendUint16(body, 1)
	body = o.AppendUint16(body, 0)
	return ngBlock(o, 0x0a0d0d0a, body, bytes.Repeat([]byte{0xff}, 8))
}

// ngInterface describes an interface of link type lt, with options (code,
// value) of which the last may be opt_endofopt.
func ngInterface(o order, lt uint16, opts ...[]byte) []byte {
	body := o.AppendUint16(nil, lt)
	body = append(body, 0, 0)
	body = o.AppendUint32(body, 0)
	for _, opt := range opts {
		body = o.AppendUint16(body, uint16(opt[0]))
		body = o.AppendUint16(body, uint16(len(opt)-1))
		body = append(body, opt[1:]...)
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
	}
	return ngBlock(o, 1, body)
}

// ngPacket is an enhanced packet block (or an obsolete packet block) of
// interface id, at ts units.
func ngPacket(o order, typ uint32, id uint32, ts uint64, data []byte) []byte {
	var body []byte
	if typ == 2 {
		body = o.AppendUint16(nil, uint16(id))
		body = append(body, 0, 0)
	} else {
		body = o.AppendUint32(nil, id)
	}
	body = o.AppendUint32(body, uint32(ts>>32))
	body = o.AppendUint32(body, uint32(ts))
	body = o.AppendUint32(body, uint32(len(data)))
	body = o.AppendUint32(body, uint32(len(data)))
	return ngBlock(o, typ, body, data)
}

// vlan inserts an 802.1ad and an 802.1Q tag into an Ethernet frame.
func vlan(f []byte) []byte {
	return append(append(bytes.Clone(f[:12]), 0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20), f[12:]...)
}

// sll2 is a Linux SLL2 header of an IPv4 packet.
func sll2() []byte {
	return []byte{0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
}

// TestReader_Pcapng: sections in both byte orders, each with its
// interfaces (link types, timestamp units and offsets), enhanced, simple
// and obsolete packet blocks, unknown blocks skipped.
func TestReader_Pcapng(t *testing.T) {
	be, le := binary.BigEndian, binary.LittleEndian
	eth := udp4(t, response, false)
	ip := eth[14:]
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var file []byte
	for _, b := range [][]byte{
		ngSection(be),
		ngInterface(be, 1, []byte{9, 9}, []byte{0}), // Ethernet, nanoseconds
		ngInterface(be, 276),                        // SLL2, microseconds by default
		ngPacket(be, 6, 1, uint64(at.UnixMicro()), append(sll2(), ip...)),
		ngBlock(be, 0xbad, []byte("an unknown block")),
		ngPacket(be, 6, 0, uint64(at.Add(time.Nanosecond).UnixNano()), vlan(eth)),
		ngPacket(be, 6, 0, uint64(at.UnixNano()), udp4(t, response, true)), // a fragment
		ngSection(le), // a new section: interface 1 is gone
		ngInterface(le, 101, []byte{9, 0x80 | 10}, append([]byte{14}, le.AppendUint64(nil, uint64(at.Unix()))...)), // raw IP, 1/1024 s, offset
		ngPacket(le, 6, 0, 512, ip),
		ngBlock(le, 3, le.AppendUint32(nil, uint32(len(ip))), ip), // simple packet: no time
		ngPacket(le, 2, 0, 0, ip),                                 // obsolete packet block
		ngPacket(le, 6, 1, 0, ip),                                 // an interface of the last section
	} {
		file = append(file, b...)
	}
	r, err := pcapfile.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		n    int64
		time time.Time
	}{{1, at}, {2, at.Add(time.Nanosecond)}, {4, at.Add(500 * time.Millisecond)}, {5, time.Time{}}, {6, at}} {
		p, n, err := r.Next()
		if err != nil || n != want.n || !p.Time.Equal(want.time) || string(p.Payload) != response ||
			p.Src != netip.MustParseAddr("198.18.0.1") || p.Dst != netip.MustParseAddr("198.18.0.2") || p.SrcPort != 5060 {
			t.Fatalf("Next = %+v, %d, %v; want packet %d at %v", p, n, err, want.n, want.time)
		}
	}
	if _, _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "read packet 7: pcapng packet of interface 1: the section describes 1 interfaces") {
		t.Errorf("a packet of an interface of the previous section: %v", err)
	}
	if st := r.Stats(); st.Packets != 6 || st.Responses != 5 || st.Skipped[pcapfile.SkipFragment] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestReader_PcapngDamaged: a block's lengths are checked before they are
// used, each with its error.
func TestReader_PcapngDamaged(t *testing.T) {
	le := binary.LittleEndian
	head := append(ngSection(le), ngInterface(le, 1)...)
	pkt := ngPacket(le, 6, 0, 0, udp4(t, response, false))
	mod := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name, want string
		block      []byte
	}{
		{"length not a multiple of 4", "bad length 10", mod(pkt, func(b []byte) { le.PutUint32(b[4:], 10) })},
		{"huge length", "bad length 4294967292", mod(pkt, func(b []byte) { le.PutUint32(b[4:], 0xfffffffc) })},
		{"trailing length", "length 12 at its end", mod(pkt, func(b []byte) { le.PutUint32(b[len(b)-4:], 12) })},
		{"captured length", "captured bytes in a block", mod(pkt, func(b []byte) { le.PutUint32(b[20:], 1<<20) })},
		{"short packet block", "too short", ngBlock(le, 6, make([]byte, 16))},
		{"bad interface option", "runs past its block", ngInterface(le, 1, append([]byte{2}, make([]byte, 3)...))[:24]},
		{"timestamp resolution", "timestamp resolution 0x7f", ngInterface(le, 1, []byte{9, 0x7f})},
		{"cut", "unexpected EOF", pkt[:40]},
		{"cut header", "unexpected EOF", pkt[:6]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			block := tc.block
			if tc.name == "bad interface option" { // a block of 24 bytes whose option says more
				block = ngBlock(le, 1, le.AppendUint16(nil, 1), []byte{0, 0, 0, 0, 0, 0}, le.AppendUint16(nil, 2), le.AppendUint16(nil, 40))
			}
			r, err := pcapfile.NewReader(bytes.NewReader(append(bytes.Clone(head), block...)))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = r.Next()
			if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Next: %v; want an error with %q", err, tc.want)
			}
		})
	}
	// The first block: a section header in a byte order it tells.
	for _, in := range [][]byte{mod(ngSection(le), func(b []byte) { b[8] = 0 }), mod(ngSection(le), func(b []byte) { le.PutUint16(b[12:], 2) })} {
		if _, err := pcapfile.NewReader(bytes.NewReader(in)); err == nil {
			t.Errorf("NewReader(%x) accepted", in)
		}
	}
}

// TestReader_PcapFormats: big-endian nanosecond pcap, and the loopback
// link type (a family in the writer's byte order).
func TestReader_PcapFormats(t *testing.T) {
	ip := udp4(t, response, false)[14:]
	at := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name     string
		linkType uint32
		frame    []byte
	}{
		{"raw", 101, ip},
		{"null big-endian", 0, append([]byte{0, 0, 0, 2}, ip...)},
		{"loop little-endian", 108, append([]byte{2, 0, 0, 0}, ip...)},
		{"ipv4", 228, ip},
	} {
		be := binary.BigEndian
		file := be.AppendUint32(nil, 0xa1b23c4d)
		file = be.AppendUint16(file, 2)
		file = be.AppendUint16(file, 4)
		file = append(file, make([]byte, 8)...)
		file = be.AppendUint32(file, 65535)
		file = be.AppendUint32(file, tc.linkType)
		file = be.AppendUint32(file, uint32(at.Unix()))
		file = be.AppendUint32(file, uint32(at.Nanosecond()))
		file = be.AppendUint32(file, uint32(len(tc.frame)))
		file = be.AppendUint32(file, uint32(len(tc.frame)))
		file = append(file, tc.frame...)
		r, err := pcapfile.NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		p, n, err := r.Next()
		if err != nil || n != 1 || !p.Time.Equal(at) || string(p.Payload) != response || p.Src != netip.MustParseAddr("198.18.0.1") {
			t.Errorf("%s: Next = %+v, %d, %v", tc.name, p, n, err)
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Errorf("%s: at the end: %v", tc.name, err)
		}
	}
}
