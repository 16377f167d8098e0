package audit

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
)

// A Listener is a socket the PBX host listens on, as /proc/net says.
type Listener struct {
	Addr  netip.Addr
	Port  uint16
	Proto string // "udp" or "tcp"
}

func (l Listener) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(l.Addr, l.Port), l.Proto)
}

// procNet lists the files read for Listeners, and the socket state that
// means listening: TCP_LISTEN (0A) for TCP; for UDP, TCP_CLOSE (07), an
// unconnected socket, which is how a SIP server's socket looks.
var procNet = []struct {
	path, proto, state string
	v6                 bool
}{
	{"proc/net/tcp", "tcp", "0A", false},
	{"proc/net/tcp6", "tcp", "0A", true},
	{"proc/net/udp", "udp", "07", false},
	{"proc/net/udp6", "udp", "07", true},
}

// maxProcLines bounds what is read of each file: a host with more sockets
// than this is not one to guess about.
const maxProcLines = 100_000

// Listeners reads the listening TCP and unconnected UDP sockets from
// /proc/net/{tcp,tcp6,udp,udp6} of fsys (rooted at "/"). A file that
// cannot be read is skipped: the answer is what could be seen.
func Listeners(fsys fs.FS) []Listener {
	var out []Listener
	for _, f := range procNet {
		file, err := fsys.Open(f.path)
		if err != nil {
			continue
		}
		out = append(out, readProcNet(io.LimitReader(file, 64<<20), f.proto, f.state, f.v6)...)
		file.Close()
	}
	return out
}

// readProcNet reads one /proc/net table: "sl local_address rem_address st
// ...", addresses as hex words in host (little-endian) order, ports in
// big-endian hex.
func readProcNet(r io.Reader, proto, state string, v6 bool) []Listener {
	var out []Listener
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan() && n < maxProcLines; n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != state {
			continue
		}
		host, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			continue
		}
		raw, err := hex.DecodeString(host)
		if err != nil || (v6 && len(raw) != 16) || (!v6 && len(raw) != 4) {
			continue
		}
		// Each 32-bit word is in the kernel's (little-endian) order.
		var b [16]byte
		for i := 0; i+4 <= len(raw); i += 4 {
			binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(raw[i:]))
		}
		var a netip.Addr
		if v6 {
			a = netip.AddrFrom16(b).Unmap()
		} else {
			a = netip.AddrFrom4([4]byte(b[:4]))
		}
		out = append(out, Listener{Addr: a, Port: uint16(p), Proto: proto})
	}
	return out
}

// Public reports whether a is routed on the Internet: not loopback,
// private (RFC 1918, ULA), link-local, CGNAT, documentation or otherwise
// special.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var notPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}
