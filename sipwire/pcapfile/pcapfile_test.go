package pcapfile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/sipguard/sipguard/sipwire/pcapfile"
)

const response = "SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 198.18.0.2\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\n\r\n"

// frame serializes an Ethernet frame of ls.
func frame(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func udp4(t *testing.T, payload string, frag bool) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 18, 0, 1}, DstIP: net.IP{198, 18, 0, 2}}
	if frag {
		ip.Flags = layers.IPv4MoreFragments
	}
	udp := &layers.UDP{SrcPort: 5060, DstPort: 5062}
	udp.SetNetworkLayerForChecksum(ip)
	return frame(t, eth, ip, udp, gopacket.Payload(payload))
}

// TestReader: what is handed on and what is skipped, and why.
func TestReader(t *testing.T) {
	arp := frame(t, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: []byte{198, 18, 0, 1},
			DstHwAddress: []byte{0, 0, 0, 0, 0, 0}, DstProtAddress: []byte{198, 18, 0, 2}})
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for i, f := range [][]byte{arp, udp4(t, response, true), udp4(t, "REGISTER sip:x SIP/2.0\r\n\r\n", false), udp4(t, response, false), {1, 2, 3}} {
		ci := gopacket.CaptureInfo{Timestamp: at.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	r, err := pcapfile.NewReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	p, n, err := r.Next()
	if err != nil || n != 4 || string(p.Payload) != response || p.TCP || p.Src != netip.MustParseAddr("198.18.0.1") ||
		p.Dst != netip.MustParseAddr("198.18.0.2") || p.SrcPort != 5060 || p.DstPort != 5062 || !p.Time.Equal(at.Add(3*time.Second)) {
		t.Fatalf("Next = %+v, %d, %v", p, n, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at the end: %v; want io.EOF", err)
	}
	st := r.Stats()
	if st.Packets != 5 || st.Responses != 1 || st.Skipped[pcapfile.SkipNotIP] != 2 || st.Skipped[pcapfile.SkipFragment] != 1 ||
		st.Skipped[pcapfile.SkipNoResponse] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReader_LinkType(t *testing.T) {
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65535, layers.LinkTypeFDDI)
	f := udp4(t, response, false)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(f), Length: len(f)}, f)
	r, err := pcapfile.NewReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) || r.Stats().Skipped[pcapfile.SkipLinkType] != 1 {
		t.Errorf("FDDI: %v, %+v; want it skipped as link_type", err, r.Stats())
	}
}

func TestNewReader_Errors(t *testing.T) {
	for _, in := range []string{"", "ab", "SIP/2.0 200 OK\r\n\r\n and some more bytes", "\x1f\x8bnot gzip", "\x0a\x0d\x0d\x0agarbage"} {
		if _, err := pcapfile.NewReader(bytes.NewReader([]byte(in))); err == nil {
			t.Errorf("NewReader(%q) accepted", in)
		}
	}
}

// FuzzReader: whatever the file, the reader returns packets or an error,
// never panics, and every packet it hands on starts a SIP response.
func FuzzReader(f *testing.F) {
	files, _ := filepath.Glob("../testdata/*.pcap")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1c, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := pcapfile.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 1000 {
			p, _, err := r.Next()
			if err != nil {
				return
			}
			if !bytes.HasPrefix(p.Payload, []byte("SIP/2.0 ")) || !p.Src.IsValid() || !p.Dst.IsValid() {
				t.Fatalf("packet %+v", p)
			}
		}
	})
}

// TestReader_HugeLengths: a damaged file's lengths (a 4 GiB snaplen, a
// 3 GiB packet) are an error, not an allocation of what they say.
func TestReader_HugeLengths(t *testing.T) {
	pcap := make([]byte, 24+16)
	binary.LittleEndian.PutUint32(pcap[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(pcap[4:], 2)
	binary.LittleEndian.PutUint16(pcap[6:], 4)
	binary.LittleEndian.PutUint32(pcap[16:], 0xffffffff) // snaplen
	binary.LittleEndian.PutUint32(pcap[20:], 1)
	binary.LittleEndian.PutUint32(pcap[24+8:], 3<<30) // captured length
	binary.LittleEndian.PutUint32(pcap[24+12:], 3<<30)

	ng := []byte{
		0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0, // section
		1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, // interface: Ethernet, no snaplen
		6, 0, 0, 0, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0xc0, // packet: 3 GiB captured
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	for name, data := range map[string][]byte{"pcap": pcap, "pcapng": ng} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := pcapfile.NewReader(bytes.NewReader(data))
		if err == nil {
			_, _, err = r.Next()
		}
		runtime.ReadMemStats(&after)
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: %v; want an error", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
			t.Errorf("%s: allocated %d bytes", name, n)
		}
	}
}
