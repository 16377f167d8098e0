package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

var updateWire = flag.Bool("update-wire", false, "rewrite the wire captures' .golden files")

// wireCaptures are the recorded captures (sipwire/testdata, recorded by
// sipwire/testdata/capture/record.sh) and what scan must find in them
// with the default rules: the events by kind and the banned addresses.
// The counts follow from what each tool did in the capture; the .golden
// files pin every field besides.
var wireCaptures = []struct {
	name     string
	kinds    map[string]int
	bans     []string
	diverted int
}{
	{"right", map[string]int{"auth_succeeded": 3}, nil, 0},
	{"wrong", map[string]int{"auth_failed": 5}, []string{"198.18.0.2/32"}, 0},
	{"svcrack", map[string]int{"auth_failed": 11}, []string{"198.18.0.2/32"}, 0},
	// 11 users refused (a random number first, then 101-110); user 100
	// exists: svwar never answers its challenge.
	{"svwar", map[string]int{"unknown_user": 11, "challenge_unanswered": 1}, []string{"198.18.0.2/32"}, 0},
	// svwar -m INVITE: its random probe and 201 refused with 403 (an
	// INVITE from a user Kamailio does not know), 200 challenged (svwar
	// stops there); then SIPp's 5 INVITEs from user "sipp": 403 each.
	{"invite", map[string]int{"unknown_extension": 7}, []string{"198.18.0.2/32"}, 0},
	{"ipv6", map[string]int{"auth_failed": 5, "auth_succeeded": 1}, []string{"fd00:61::/64"}, 0},
	// Kamailio (reply_to_via=1) answered the friend the Via named: the
	// friend is never an event, and nothing is banned.
	{"forged", map[string]int{}, nil, 6},
	{"tcp", map[string]int{"auth_failed": 5}, []string{"198.18.0.2/32"}, 0},
	// 300 calls, each a challenge and a refusal; SIPp sent 8 requests
	// again and Kamailio its answers: counted once.
	{"flood", map[string]int{"auth_failed": 300}, []string{"198.18.0.2/32"}, 0},
}

const wireTestdata = "../../sipwire/testdata"

var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

// TestScanPcap: scan --pcap finds exactly the expected events and bans in
// each recorded capture, and its whole output (events, bans, counts) is
// the golden file's.
func TestScanPcap(t *testing.T) {
	for _, c := range wireCaptures {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(wireTestdata, c.name+".pcap")
			if _, err := os.Stat(file + ".gz"); err == nil {
				file += ".gz"
			}
			events, stderr, code := run(t, "", "scan", "--pcap", file, "--events", "--json")
			if code != 0 {
				t.Fatalf("scan --events: exit %d: %s", code, stderr)
			}
			kinds := map[string]int{}
			for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
				if line == "" {
					continue
				}
				var ev eventJSON
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("event %q: %v", line, err)
				}
				kinds[ev.Kind]++
				if ev.IP == "198.18.0.3" && ev.Kind != "auth_succeeded" {
					t.Errorf("a failure of the friend: %s", line)
				}
				if ev.Service != "sip" || ev.Parser != "sipwire" || ev.Source != file {
					t.Errorf("event %s: want service sip, parser sipwire, source %s", line, file)
				}
			}
			if fmt.Sprint(kinds) != fmt.Sprint(c.kinds) {
				t.Errorf("events by kind %v; want %v", kinds, c.kinds)
			}
			if !strings.Contains(stderr, fmt.Sprintf(" %d diverted,", c.diverted)) {
				t.Errorf("want %d diverted:\n%s", c.diverted, stderr)
			}
			bans, stderrBans, code := run(t, "", "scan", "--pcap", file, "--json")
			if code != 0 {
				t.Fatalf("scan: exit %d: %s", code, stderrBans)
			}
			var banned []string
			for _, line := range strings.Split(strings.TrimSpace(bans), "\n") {
				var b struct {
					Prefix     string `json:"prefix"`
					Compromise bool   `json:"compromise"`
				}
				if line == "" || json.Unmarshal([]byte(line), &b) != nil || b.Compromise {
					continue
				}
				banned = append(banned, b.Prefix)
			}
			if fmt.Sprint(banned) != fmt.Sprint(c.bans) {
				t.Errorf("bans %v; want %v\n%s", banned, c.bans, bans)
			}
			timing := regexp.MustCompile(`in [0-9.]+s`)
			base := filepath.Base(file)
			if n := strings.Count(events, "\n"); n > 50 {
				events = fmt.Sprintf("(%d events)\n", n) // the counts above check them
			}
			got := "$ sipguard scan --pcap " + base + " --events --json\n" + events + stderr +
				"$ sipguard scan --pcap " + base + " --json\n" + bans + stderrBans
			got = timing.ReplaceAllString(strings.ReplaceAll(got, file, base), "in 0.000s")
			// The engine gives ban times in the local zone: the golden
			// file holds them in UTC.
			got = rfc3339.ReplaceAllStringFunc(got, func(s string) string {
				ts, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return s
				}
				return ts.UTC().Format(time.RFC3339Nano)
			})
			wireGolden(t, filepath.Join(wireTestdata, c.name+".golden"), got)
		})
	}
}

func wireGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateWire {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./cmd/sipguard -run TestScanPcap -update-wire rewrites it):\n%s", path, got)
	}
}

// TestScanPcap_Formats: the same packets read as pcapng, gzip-compressed,
// and with the other link types tcpdump writes (raw IP, Linux cooked v1
// and v2) give the same events.
func TestScanPcap_Formats(t *testing.T) {
	for _, name := range []string{"wrong", "ipv6", "tcp"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(wireTestdata, name+".pcap")
			want, _, _ := run(t, "", "scan", "--pcap", file, "--events", "--json")
			frames := readFrames(t, file)
			variants := map[string][]byte{
				"pcapng": writeNg(t, frames),
				"gzip":   gzipped(t, writePcap(t, 1, frames, func(f []byte) []byte { return f })),
				"raw":    writePcap(t, 101, frames, func(f []byte) []byte { return f[14:] }),
				"sll":    writePcap(t, 113, frames, func(f []byte) []byte { return append(sllHeader(f), f[14:]...) }),
				"sll2":   writePcap(t, 276, frames, func(f []byte) []byte { return append(sll2Header(f), f[14:]...) }),
				"ipv4/6": writePcap(t, 228+ipVersion(frames), frames, func(f []byte) []byte { return f[14:] }),
			}
			for v, data := range variants {
				if v == "ipv4/6" && name == "tcp" {
					continue
				}
				out, stderr, code := run(t, string(data), "scan", "--pcap", "-", "--events", "--json")
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", v, code, stderr)
				}
				if strings.ReplaceAll(out, `"stdin"`, fmt.Sprintf("%q", file)) != want || want == "" {
					t.Errorf("%s: events\n%s\nwant\n%s", v, out, want)
				}
			}
		})
	}
}

// TestScanPcap_Snaplen: a capture cut at 200 bytes a packet (tcpdump -s
// 200) loses every response, counted as truncated: never a guess.
func TestScanPcap_Snaplen(t *testing.T) {
	frames := readFrames(t, filepath.Join(wireTestdata, "wrong.pcap"))
	data := writePcap(t, 1, frames, func(f []byte) []byte { return f[:min(len(f), 200)] })
	out, stderr, code := run(t, string(data), "scan", "--pcap", "-", "--events")
	if code != 0 || out != "" || !strings.Contains(stderr, " 10 truncated,") {
		t.Errorf("exit %d, events %q; want none, 10 truncated:\n%s", code, out, stderr)
	}
}

func TestScanPcap_Errors(t *testing.T) {
	notPcap := writeFile(t, "x.pcap", "SIP/2.0 401 Unauthorized\r\n\r\n and more text to fill a header")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scan", "--pcap", notPcap}, "not a pcap or pcapng file"},
		{[]string{"scan", "--pcap", "/nonexistent.pcap"}, "no such file"},
		{[]string{"scan", "--pcap", notPcap, "other.log"}, "no log FILE"},
		{[]string{"scan", "--pcap", notPcap, "--parser", "asterisk"}, "no log FILE or --parser"},
	} {
		if _, stderr, code := run(t, "", tc.args...); code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want an error with %q", tc.args, code, stderr, tc.want)
		}
	}
	// A capture cut in the middle of a packet: the events before it, then
	// the error.
	data, err := os.ReadFile(filepath.Join(wireTestdata, "wrong.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, string(data[:len(data)-100]), "scan", "--pcap", "-", "--events")
	if code == 0 || strings.Count(out, "auth_failed") != 5 || !strings.Contains(stderr, "unexpected EOF") {
		t.Errorf("cut capture: exit %d\n%s\n%s", code, out, stderr)
	}
}

type frame struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func readFrames(t *testing.T, file string) []frame {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil || r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("%s: %v, link type %v", file, err, r.LinkType())
	}
	var frames []frame
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{ci, data})
	}
}

// writePcap writes a pcap file (microseconds, little-endian) of link type
// lt, each frame converted by conv; written by hand: pcapgo keeps link
// types in a byte.
func writePcap(t *testing.T, lt int, frames []frame, conv func([]byte) []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], uint32(lt))
	b.Write(hdr)
	for _, f := range frames {
		data := conv(slices.Clone(f.data))
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(f.ci.Timestamp.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(f.ci.Timestamp.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(data)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(data)))
		b.Write(rec)
		b.Write(data)
	}
	return b.Bytes()
}

func writeNg(t *testing.T, frames []frame) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		ci := f.ci
		ci.InterfaceIndex = 0
		if err := w.WritePacket(ci, f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sllHeader is a Linux cooked v1 header for an Ethernet frame: packet
// type, ARPHRD_ETHER, address length, address (8), protocol.
func sllHeader(f []byte) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[2:], 1)
	binary.BigEndian.PutUint16(h[4:], 6)
	copy(h[6:], f[6:12])
	copy(h[14:], f[12:14])
	return h
}

// sll2Header is a Linux cooked v2 header: protocol, reserved, interface
// index, ARPHRD_ETHER, packet type, address length, address (8).
func sll2Header(f []byte) []byte {
	h := make([]byte, 20)
	copy(h[0:], f[12:14])
	binary.BigEndian.PutUint32(h[4:], 2)
	binary.BigEndian.PutUint16(h[8:], 1)
	h[11] = 6
	copy(h[12:], f[6:12])
	return h
}

// ipVersion is 0 when every frame carries IPv4, 1 when IPv6 (link types
// 228 and 229 hold one version each).
func ipVersion(frames []frame) int {
	if binary.BigEndian.Uint16(frames[0].data[12:]) == 0x86dd {
		return 1
	}
	return 0
}

// TestScanPcap_ChallengeUnanswered: challenges nobody answers are events,
// but no default rule counts them (phones that give up do it too); a rule
// that names challenge_unanswered does.
func TestScanPcap_ChallengeUnanswered(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var frames []frame
	for i := range 10 {
		frames = append(frames, sipFrame(t, at.Add(time.Duration(i)*time.Second), fmt.Sprintf(
			"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=b%d;received=203.0.113.5\r\nTo: <sip:%d@pbx>\r\nCall-ID: probe-%d\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", i, 100+i, i)))
	}
	// A later response marks the time: the challenges are 32 s old.
	frames = append(frames, sipFrame(t, at.Add(time.Minute),
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=o\r\nCall-ID: options\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	capture := string(writePcap(t, 1, frames, func(f []byte) []byte { return f }))

	events, _, code := run(t, capture, "scan", "--pcap", "-", "--events")
	if code != 0 || strings.Count(events, "challenge_unanswered") != 10 {
		t.Fatalf("exit %d, events:\n%s\nwant 10 challenge_unanswered", code, events)
	}
	if bans, stderr, _ := run(t, capture, "scan", "--pcap", "-"); bans != "" {
		t.Errorf("default rules banned on challenge_unanswered:\n%s%s", bans, stderr)
	}
	config := writeFile(t, "rules.toml", `[[rule]]
name = "unanswered"
events = ["challenge_unanswered"]
max_retry = 10
find_time = "1m"
ban_time = "1h"
`)
	if bans, stderr, _ := run(t, capture, "scan", "-c", config, "--pcap", "-", "--json"); !strings.Contains(bans, `"prefix":"203.0.113.5/32","rule":"unanswered","count":10`) {
		t.Errorf("a rule naming challenge_unanswered: %s%s", bans, stderr)
	}
}

// sipFrame is an Ethernet frame of a UDP packet from the PBX (192.0.2.1)
// to 203.0.113.5 carrying payload.
func sipFrame(t *testing.T, at time.Time, payload string) frame {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{192, 0, 2, 1}, DstIP: []byte{203, 0, 113, 5}}
	udp := &layers.UDP{SrcPort: 5060, DstPort: 5060}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return frame{gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()}
}
