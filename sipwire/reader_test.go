package sipwire_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/sipwire"
)

// kamailio401 is a 401 as Kamailio 5.6 sends it (recorded in
// testdata/, Call-ID and CSeq past byte 256).
const kamailio401 = "SIP/2.0 401 Unauthorized\r\n" +
	"Via: SIP/2.0/UDP 198.18.0.2:5072;branch=z9hG4bK-1-0;rport=5072;received=198.18.0.2\r\n" +
	"From: sipp <sip:100@198.18.0.2:5072>;tag=1\r\n" +
	"To: sut <sip:100@198.18.0.1:5060>;tag=c6a8b4b4fd5c3ab5e4a0a11f06c5ce3b.3a4f\r\n" +
	"Call-ID: 1-12345@198.18.0.2\r\n" +
	"CSeq: 1 REGISTER\r\n" +
	"WWW-Authenticate: Digest realm=\"sipguard.test\", nonce=\"ZXCVbnmASDFghjk\", qop=\"auth\"\r\n" +
	"Server: kamailio (5.6.3 (x86_64/linux))\r\n" +
	"Content-Length: 0\r\n\r\n"

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		status  int
		host    string
		port    uint16
		recv    string
		rport   uint16
		hasRP   bool
		maddr   string
		callID  string
		cseq    uint32
		method  string
		stale   bool
		user    string
		branch  string
		trnsprt string
	}{
		{name: "kamailio", in: kamailio401, status: 401, host: "198.18.0.2", port: 5072, recv: "198.18.0.2", rport: 5072, hasRP: true,
			callID: "1-12345@198.18.0.2", cseq: 1, method: "REGISTER", user: "100", branch: "z9hG4bK-1-0", trnsprt: "UDP"},
		{name: "compact", in: "SIP/2.0 404 Not Found\r\nv: SIP/2.0/TCP 192.0.2.9;rport;branch=z9hG4bKx\r\nv: SIP/2.0/UDP 10.0.0.1\r\n" +
			"i: abc\r\nt: <sip:200@pbx>\r\nCSeq: 7 INVITE\r\nl: 0\r\n\r\n",
			status: 404, host: "192.0.2.9", hasRP: true, callID: "abc", cseq: 7, method: "INVITE", user: "200", branch: "z9hG4bKx", trnsprt: "TCP"},
		{name: "IPv6", in: "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP [2001:db8::2]:5060;received=2001:db8::3;rport=5062;branch=b\r\n" +
			"Call-ID: x\r\nCSeq: 2 REGISTER\r\nTo: \"a<b\" <sip:alice@[2001:db8::1]>\r\n\r\n",
			status: 401, host: "2001:db8::2", port: 5060, recv: "2001:db8::3", rport: 5062, hasRP: true,
			callID: "x", cseq: 2, method: "REGISTER", user: "alice", branch: "b", trnsprt: "UDP"},
		{name: "maddr and spaces", in: "SIP/2.0 401 Unauthorized\r\nVia :  SIP / 2.0 / UDP  198.51.100.1 : 5070 ; maddr = 203.0.113.5 ; received=198.51.100.9\r\n" +
			"Call-ID: y\r\nCSeq: 1 REGISTER\r\nTo: sip:bob@pbx;tag=1\r\n\r\n",
			status: 401, host: "198.51.100.1", port: 5070, recv: "198.51.100.9", maddr: "203.0.113.5", callID: "y", cseq: 1, method: "REGISTER",
			user: "bob", trnsprt: "UDP"},
		{name: "stale unquoted among quoted commas", in: "SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP 198.51.100.1\r\n" +
			"Call-ID: z\r\nCSeq: 3 INVITE\r\nTo: <tel:+4930123;phone-context=x>\r\n" +
			"Proxy-Authenticate: Digest realm=\"a,stale=true\", qop=\"auth,auth-int\", stale=TRUE, algorithm=MD5\r\n\r\n",
			status: 407, host: "198.51.100.1", callID: "z", cseq: 3, method: "INVITE", stale: true, user: "+4930123", trnsprt: "UDP"},
		{name: "stale only inside a quoted value", in: "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 198.51.100.1\r\n" +
			"Call-ID: z\r\nCSeq: 3 REGISTER\r\nTo: <sip:u:pw@h>\r\n" +
			"WWW-Authenticate: Digest realm=\"stale=true\", stale=false\r\nWWW-Authenticate: Digest realm=\"a\", algorithm=SHA-256\r\n\r\n",
			status: 401, host: "198.51.100.1", callID: "z", cseq: 3, method: "REGISTER", user: "u", trnsprt: "UDP"},
		{name: "stale in a second challenge, quoted", in: "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 198.51.100.1\r\n" +
			"Call-ID: z\r\nCSeq: 3 REGISTER\r\nWWW-Authenticate: Digest realm=\"a\"\r\nWWW-Authenticate: Digest realm=\"a\", stale=\"true\"\r\n\r\n",
			status: 401, host: "198.51.100.1", callID: "z", cseq: 3, method: "REGISTER", stale: true, trnsprt: "UDP"},
		{name: "folded lines and LF ends", in: "SIP/2.0 200 OK\nVia: SIP/2.0/UDP\n 198.51.100.1;received=198.51.100.2\nCall-ID:\n\tfolded\nCSeq: 4\n REGISTER\nTo: <sip:carol@h>\n\n",
			status: 200, host: "198.51.100.1", recv: "198.51.100.2", callID: "folded", cseq: 4, method: "REGISTER", user: "carol", trnsprt: "UDP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, reason := sipwire.Read([]byte(tc.in), false)
			if reason != "" {
				t.Fatalf("Read: dropped as %s", reason)
			}
			got := fmt.Sprintf("%d %s %d %s %d %v %s %s %d %s %v %s %s %s", r.Status, r.Via.Host, r.Via.Port, r.Via.Received, r.Via.RPort,
				r.Via.HasRPort, r.Via.MAddr, r.CallID, r.CSeq, r.Method, r.Stale, r.ToUser, r.Via.Branch, r.Via.Transport)
			want := fmt.Sprintf("%d %s %d %s %d %v %s %s %d %s %v %s %s %s", tc.status, tc.host, tc.port, tc.recv, tc.rport,
				tc.hasRP, tc.maddr, tc.callID, tc.cseq, tc.method, tc.stale, tc.user, tc.branch, tc.trnsprt)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if r.Len != len(tc.in) {
				t.Errorf("Len = %d; want %d", r.Len, len(tc.in))
			}
		})
	}
}

func TestRead_Drops(t *testing.T) {
	long := strings.Repeat("a", 9000)
	tests := []struct{ name, in, want string }{
		{"binary", "\x00\x01\x02", sipwire.ReasonNotSIP},
		{"middle of a message", "nonce=\"x\"\r\nContent-Length: 0\r\n\r\n", sipwire.ReasonNotSIP},
		{"request", "REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n", sipwire.ReasonNotResponse},
		{"snaplen cut", kamailio401[:200], sipwire.ReasonTruncated},
		{"status line only", "SIP/2.0 401 Unauthorized", sipwire.ReasonTruncated},
		{"bad status", "SIP/2.0 4x1 Unauthorized\r\n\r\n", sipwire.ReasonMalformed},
		{"status 700", "SIP/2.0 700 No\r\n\r\n", sipwire.ReasonMalformed},
		{"four digits", "SIP/2.0 4011 No\r\n\r\n", sipwire.ReasonMalformed},
		{"no Call-ID", strings.Replace(kamailio401, "Call-ID: 1-12345@198.18.0.2\r\n", "", 1), sipwire.ReasonMalformed},
		{"two Call-IDs", strings.Replace(kamailio401, "CSeq:", "i: other\r\nCSeq:", 1), sipwire.ReasonMalformed},
		{"two CSeqs", strings.Replace(kamailio401, "Server:", "CSeq: 2 REGISTER\r\nServer:", 1), sipwire.ReasonMalformed},
		{"CSeq without method", strings.Replace(kamailio401, "CSeq: 1 REGISTER", "CSeq: 1", 1), sipwire.ReasonMalformed},
		{"CSeq over 32 bits", strings.Replace(kamailio401, "CSeq: 1 REGISTER", "CSeq: 4294967296 REGISTER", 1), sipwire.ReasonMalformed},
		{"no Via", strings.Replace(kamailio401, "Via: SIP/2.0/UDP 198.18.0.2:5072;branch=z9hG4bK-1-0;rport=5072;received=198.18.0.2\r\n", "", 1), sipwire.ReasonMalformed},
		{"Via port 0", strings.Replace(kamailio401, "198.18.0.2:5072;", "198.18.0.2:0;", 1), sipwire.ReasonMalformed},
		{"Via two received", strings.Replace(kamailio401, ";rport=5072", ";received=192.0.2.1;rport=5072", 1), sipwire.ReasonMalformed},
		{"Via rport 70000", strings.Replace(kamailio401, "rport=5072", "rport=70000", 1), sipwire.ReasonMalformed},
		{"not a header", strings.Replace(kamailio401, "Server:", "Server", 1), sipwire.ReasonMalformed},
		{"bad Content-Length", strings.Replace(kamailio401, "Content-Length: 0", "Content-Length: -1", 1), sipwire.ReasonMalformed},
		{"long header", strings.Replace(kamailio401, "Server: ", "Server: "+long, 1), sipwire.ReasonTooLong},
		{"long cut line", "SIP/2.0 401 Unauthorized\r\nServer: " + long, sipwire.ReasonTooLong},
		{"many headers", strings.Replace(kamailio401, "Server:", strings.Repeat("X: y\r\n", 300)+"Server:", 1), sipwire.ReasonTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				if _, reason := sipwire.Read([]byte(tc.in), stream); reason != tc.want {
					t.Errorf("stream=%v: got %q; want %q", stream, reason, tc.want)
				}
			}
		})
	}
}

// TestRead_Length: on a stream Content-Length ends a response; over UDP
// the datagram does, and a Content-Length only shortens it.
func TestRead_Length(t *testing.T) {
	body := "v=0\r\n"
	withBody := strings.Replace(kamailio401, "Content-Length: 0", fmt.Sprintf("Content-Length: %d", len(body)), 1) + body
	next := "SIP/2.0 200 OK\r\n"
	noLength := strings.Replace(kamailio401, "Content-Length: 0\r\n", "", 1)
	tests := []struct {
		name   string
		in     string
		stream bool
		want   int
	}{
		{"body then next", withBody + next, true, len(withBody)},
		{"body cut", withBody[:len(withBody)-2], true, len(withBody) - 2},
		{"udp trailing bytes", withBody + "junk", false, len(withBody)},
		{"stream without length", noLength + next, true, len(noLength)},
		{"udp without length", noLength + "body", false, len(noLength) + 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, reason := sipwire.Read([]byte(tc.in), tc.stream)
			if reason != "" || r.Len != tc.want {
				t.Errorf("got Len %d, %q; want %d", r.Len, reason, tc.want)
			}
		})
	}
}

// TestRead_ToUser: the user part of To, whatever the form; nothing when it
// cannot be read, and at most 128 bytes.
func TestRead_ToUser(t *testing.T) {
	tests := []struct{ to, want string }{
		{`"Alice" <sip:alice@pbx>;tag=1`, "alice"},
		{`"quote \" <sip:evil@x>" <sip:real@pbx>`, "real"},
		{`<sips:100@pbx:5061;transport=tls>`, "100"},
		{`sip:100@pbx;tag=9`, "100"},
		{`<sip:pbx>`, ""},
		{`<mailto:a@b>`, ""},
		{`<sip:unclosed@pbx`, ""},
		{`"unclosed <sip:x@y>`, ""},
		{`<sip:` + strings.Repeat("9", 200) + `@pbx>`, strings.Repeat("9", 128)},
	}
	for _, tc := range tests {
		in := strings.Replace(kamailio401, "To: sut <sip:100@198.18.0.1:5060>;tag=c6a8b4b4fd5c3ab5e4a0a11f06c5ce3b.3a4f", "To: "+tc.to, 1)
		r, reason := sipwire.Read([]byte(in), false)
		if reason != "" || string(r.ToUser) != tc.want {
			t.Errorf("To: %s: got %q, %q; want %q", tc.to, r.ToUser, reason, tc.want)
		}
	}
}

// TestRead_NoAllocation: reading a response allocates nothing (the live
// sensor reads every response the PBX sends).
func TestRead_NoAllocation(t *testing.T) {
	b := []byte(strings.Replace(kamailio401, "qop=\"auth\"", "qop=\"auth\", stale=true", 1))
	if n := testing.AllocsPerRun(100, func() { sipwire.Read(b, true) }); n != 0 {
		t.Errorf("Read allocates %v times", n)
	}
}

// TestDependencies keeps the sensor pure: the standard library, parsers
// and what parsers import; the capture file reader is its own
// package.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/sipguard/sipguard/sipwire", "github.com/sipguard/sipguard/parsers", "github.com/sipguard/sipguard/logtime":
		default:
			t.Errorf("sipwire depends on %s", p)
		}
	}
}
